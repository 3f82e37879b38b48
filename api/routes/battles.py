"""PK battles (API.md "PK battles and guests"): invite, accept, decline, end early, read."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from spaktok.api.auth import Principal
from spaktok.api.deps import BattlePath, CommandMeta, CurrentUser, IdempotencyKey, Services, ServicesDep
from spaktok.api.problems import Problem
from spaktok.api.responses import answer
from spaktok.api.schemas import BattleBody
from spaktok.commands.base import Command
from spaktok.commands.battles import AcceptBattle, DeclineBattle, EndBattle, InviteBattle
from spaktok.events.envelope import derive_id
from spaktok.projections import battles, streams_views

router = APIRouter(prefix="/v1/pk-battles", tags=["pk-battles"])


async def _live_stream(services: Services, stream_id: str, which: str) -> dict[str, Any]:
    """A first check against the read model, for a clear answer; the streams decide for sure when
    they link (a stream that ended or joined another battle meanwhile cancels the battle)."""
    doc = await run_in_threadpool(streams_views.get_stream, services.engine, stream_id)
    if doc is None:
        raise Problem(404, "stream-not-found", f"no {which} stream {stream_id!r}")
    if doc["status"] != "live":
        raise Problem(409, "stream-not-live", f"the {which} stream has ended")
    if doc.get("pkBattleId"):
        raise Problem(409, "stream-in-battle", f"the {which} stream is in a PK battle already")
    return doc


@router.post("")
async def invite(
    body: BattleBody, user: CurrentUser, services: ServicesDep, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """The broadcaster of `streamId` challenges the broadcaster of `opponentStreamId` (who is told)."""
    settings = services.settings
    duration = body.duration_seconds or settings.pk_default_duration_s
    if not settings.pk_min_duration_s <= duration <= settings.pk_max_duration_s:
        raise Problem(
            422,
            "invalid-duration",
            f"a battle lasts {settings.pk_min_duration_s}-{settings.pk_max_duration_s} seconds",
        )
    own = await _live_stream(services, body.stream_id, "your")
    if own["userId"] != user.user_id:
        raise Problem(403, "not-stream-owner", "only the broadcaster of a stream can start a battle with it")
    opponent = await _live_stream(services, body.opponent_stream_id, "opponent's")
    meta = CommandMeta.for_request(user, f"pk-invite:{body.stream_id}", idempotency_key)
    battle_id = derive_id("pk-battle", meta.command_id)
    command = InviteBattle(
        command_id=meta.command_id,
        issued_at=meta.issued_at,
        actor_id=user.user_id,
        battle_id=battle_id,
        stream_id=body.stream_id,
        broadcaster_name=user.name,
        opponent_stream_id=body.opponent_stream_id,
        opponent_broadcaster_id=opponent["userId"],
        duration_s=duration,
        invite_ttl_s=settings.pk_invite_ttl_s,
        winner_bonus=settings.pk_winner_bonus_coins,
    )
    outcome = await services.bus.execute(command)

    def build(_: Any) -> dict[str, Any]:
        return {
            "battleId": battle_id,
            "status": "invited",
            "stream1Id": body.stream_id,
            "stream2Id": body.opponent_stream_id,
            "broadcaster1Id": user.user_id,
            "broadcaster2Id": opponent["userId"],
            "duration": duration,
            "winnerBonus": settings.pk_winner_bonus_coins,
            "expiresInSeconds": settings.pk_invite_ttl_s,
        }

    return answer(outcome, meta.command_id, build, status=201)


async def _answer(
    services: Services, user: Principal, battle_id: str, build: Any, status: str
) -> JSONResponse:
    meta = CommandMeta.for_request(user, f"pk-{status}:{battle_id}")
    command: Command = build(
        command_id=meta.command_id, issued_at=meta.issued_at, actor_id=user.user_id, battle_id=battle_id
    )
    outcome = await services.bus.execute(command)
    return answer(outcome, meta.command_id, lambda o: {"battleId": battle_id, "status": o.stats["status"]})


@router.post("/{battle_id}/accept")
async def accept(battle_id: BattlePath, user: CurrentUser, services: ServicesDep) -> JSONResponse:
    """The invited broadcaster agrees; the battle starts once both streams linked (status `linking`,
    then `active`; watch GET or the live feed's `pk_started`)."""
    return await _answer(services, user, battle_id, AcceptBattle, "accept")


@router.post("/{battle_id}/decline")
async def decline(battle_id: BattlePath, user: CurrentUser, services: ServicesDep) -> JSONResponse:
    return await _answer(services, user, battle_id, DeclineBattle, "decline")


@router.post("/{battle_id}/end")
async def end_early(battle_id: BattlePath, user: CurrentUser, services: ServicesDep) -> JSONResponse:
    """Either broadcaster ends a running battle now (or withdraws / declines an invitation)."""
    return await _answer(services, user, battle_id, EndBattle, "end")


@router.get("/{battle_id}")
async def get_battle(battle_id: BattlePath, user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    doc = await run_in_threadpool(battles.get_battle, services.engine, battle_id)
    if doc is None:
        raise Problem(404, "battle-not-found", "no battle with this id")
    return doc

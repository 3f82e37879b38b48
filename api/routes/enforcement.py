"""Platform enforcement (API.md "Platform enforcement"): the platform team (roles `admin` or
`moderation`) suspends live streams and accounts and works the reports queue.

Every action is a command decided by an aggregate — the stream for a stream suspension and a report
resolution, the user's channel for an account suspension — so each is an event in the log, in the
moderation log and in `GET /v1/audit/moderation`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from spaktok.api.auth import Principal
from spaktok.api.deps import (
    CommandMeta,
    CurrentUser,
    IdempotencyKey,
    ReportPath,
    ServicesDep,
    StreamPath,
    UserPath,
)
from spaktok.api.problems import Problem
from spaktok.api.responses import answer, event_payload
from spaktok.api.routes.moderation import is_platform_moderator
from spaktok.api.schemas import AccountSuspensionBody, ResolveReportBody, SuspendStreamBody
from spaktok.commands.enforcement import ReinstateAccount, ResolveReports, SuspendAccount, SuspendStream
from spaktok.commands.enforcement_decide import parse_report_id
from spaktok.commands.outcome import Outcome
from spaktok.projections import enforcement

router = APIRouter(prefix="/v1/admin", tags=["enforcement"])


def _platform_only(user: Principal) -> None:
    if not is_platform_moderator(user):
        raise Problem(403, "not-platform-moderator", "only the platform's moderation team can do this")


@router.post("/streams/{stream_id}/suspend")
async def suspend_stream(
    stream_id: StreamPath,
    body: SuspendStreamBody,
    user: CurrentUser,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Ends a live stream with reason `suspended`; its feeds close."""
    _platform_only(user)
    meta = CommandMeta.for_request(user, f"suspend-stream:{stream_id}", idempotency_key)
    command = SuspendStream(
        command_id=meta.command_id,
        issued_at=meta.issued_at,
        actor_id=user.user_id,
        stream_id=stream_id,
        reason=body.reason,
        platform_moderator=True,
    )
    outcome = await services.bus.execute(command)

    def build(outcome: Outcome) -> dict[str, Any]:
        ended = event_payload(outcome, "streams.StreamEnded") or {}
        return {
            "streamId": stream_id,
            "status": "ended",
            "endReason": "suspended",
            "moderationStatus": "suspended",
            "reason": body.reason,
            "endedAt": ended.get("ended_at"),
        }

    return answer(outcome, meta.command_id, build)


@router.put("/users/{user_id}/suspension")
async def suspend_account(
    user_id: UserPath,
    body: AccountSuspensionBody,
    user: CurrentUser,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """No going live, commenting or gifting until reinstated or `until`; a live stream ends."""
    _platform_only(user)
    meta = CommandMeta.for_request(user, f"suspend-account:{user_id}", idempotency_key)
    command = SuspendAccount(
        command_id=meta.command_id,
        issued_at=meta.issued_at,
        actor_id=user.user_id,
        user_id=user_id,
        reason=body.reason,
        until=body.until,
        platform_moderator=True,
    )
    outcome = await services.bus.execute(command)

    def build(outcome: Outcome) -> dict[str, Any]:
        suspended = event_payload(outcome, "broadcasters.AccountSuspended") or {}
        return {
            "userId": user_id,
            "suspended": True,
            "reason": body.reason,
            "until": suspended.get("until"),
            "suspendedAt": suspended.get("suspended_at"),
            "endedStreamId": suspended.get("stream_id"),
        }

    return answer(outcome, meta.command_id, build)


@router.delete("/users/{user_id}/suspension")
async def reinstate_account(
    user_id: UserPath, user: CurrentUser, services: ServicesDep, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Lifts the suspension; reinstating an account that is not suspended changes nothing."""
    _platform_only(user)
    meta = CommandMeta.for_request(user, f"reinstate-account:{user_id}", idempotency_key)
    command = ReinstateAccount(
        command_id=meta.command_id,
        issued_at=meta.issued_at,
        actor_id=user.user_id,
        user_id=user_id,
        platform_moderator=True,
    )
    outcome = await services.bus.execute(command)
    return answer(outcome, meta.command_id, lambda _: {"userId": user_id, "suspended": False})


@router.get("/users/{user_id}/suspension")
async def account_suspension(user_id: UserPath, user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """The account's last suspension as the read model has it (`suspended`: in force now)."""
    _platform_only(user)
    row = await run_in_threadpool(enforcement.account_suspension, services.engine, user_id)
    suspended = await run_in_threadpool(enforcement.is_account_suspended, services.engine, user_id)
    if row is None:
        return {"userId": user_id, "suspended": False, "lastSuspension": None}
    last = {
        "reason": row["reason"],
        "suspendedBy": row["suspended_by"],
        "suspendedAt": _iso(row["suspended_at"]),
        "until": _iso(row["until"]),
        "reinstatedAt": _iso(row["reinstated_at"]),
        "reinstatedBy": row["reinstated_by"],
    }
    return {"userId": user_id, "suspended": suspended, "lastSuspension": last}


@router.get("/reports")
async def list_reports(
    user: CurrentUser,
    services: ServicesDep,
    status: Literal["open", "resolved"] = "open",
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """Reports grouped per stream and round, most recently reported first, with their reporters."""
    _platform_only(user)
    try:
        reports, next_cursor = await run_in_threadpool(
            enforcement.list_reports, services.engine, status=status, cursor=cursor, limit=limit
        )
    except (ValueError, TypeError) as exc:
        raise Problem(400, "invalid-cursor", "the cursor is not one this API returned") from exc
    return {"reports": reports, "nextCursor": next_cursor}


@router.post("/reports/{report_id}/resolve")
async def resolve_report(
    report_id: ReportPath,
    body: ResolveReportBody,
    user: CurrentUser,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """`dismiss`, `suspend-stream` (ends it if live) or `suspend-user` (the stream's owner)."""
    _platform_only(user)
    parsed = parse_report_id(report_id)
    if parsed is None:
        raise Problem(404, "report-not-found", f"no report {report_id!r}")
    stream_id, report_round = parsed
    meta = CommandMeta.for_request(user, f"resolve-report:{report_id}", idempotency_key)
    command = ResolveReports(
        command_id=meta.command_id,
        issued_at=meta.issued_at,
        actor_id=user.user_id,
        stream_id=stream_id,
        report_round=report_round,
        action=body.action,
        note=body.note,
        platform_moderator=True,
    )
    outcome = await services.bus.execute(command)

    def build(outcome: Outcome) -> dict[str, Any]:
        resolved = event_payload(outcome, "streams.ReportsResolved") or {}
        return {
            "reportId": report_id,
            "streamId": stream_id,
            "status": "resolved",
            "action": body.action,
            "note": body.note,
            "reporters": resolved.get("reporters"),
            "resolvedAt": resolved.get("resolved_at"),
        }

    return answer(outcome, meta.command_id, build)


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")

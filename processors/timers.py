"""The worker's clocks: each timer picks the aggregates of its kind this worker holds whose state
says it is time, and sends each a command through its own partition."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import faust

from spaktok import clock
from spaktok.commands import battle_decide, schedule_decide, stream_shard_decide
from spaktok.commands.base import Command
from spaktok.commands.battles import EndBattle, ExpireBattle
from spaktok.commands.media import CheckIngest, ExpireRecordings
from spaktok.commands.schedules import FireSchedule, RemindSchedule
from spaktok.commands.stream_shards import FoldShard, SweepShardViewers, shard_address
from spaktok.commands.streams import RecordAnalyticsSnapshot, ReleaseViewers, SweepViewers
from spaktok.infra import topics
from spaktok.processors.aggregate import LONG_BATCH_S, AggregateRunner
from spaktok.settings import Settings

SYSTEM_ACTOR = "system"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timer:
    """Every `interval` seconds, each `aggregate` this worker holds whose state `wanted(state, now_ms)`
    picks is sent `build(aggregate_id, now)`."""

    name: str
    interval: float
    aggregate: str
    wanted: Callable[[Any, int], bool]
    build: Callable[[str, datetime], Command]


def timers(settings: Settings) -> list[Timer]:
    """The worker's clocks. Each only says "it is time": the aggregate decides from the command's
    time, through its own partition, ordered with everything else it decides and logged for replay
    (a battle ended late by the timer still closes at its `ends_at`; a schedule fires for its time).
    """
    return [
        *_stream_timers(settings),
        *_shard_timers(settings),
        *_schedule_timers(settings),
        *_battle_timers(settings),
    ]


def _live(state: Any, now_ms: int) -> bool:
    return bool(state.status == "live")


def _stream_timers(settings: Settings) -> list[Timer]:
    grace_ms = int(settings.reconnect_grace_s * 1000)
    retention_ms = settings.recording_retention_days * 86400 * 1000

    def ingest_lost(state: Any, now_ms: int) -> bool:
        return bool(
            state.status == "live" and state.ingest == "lost" and now_ms - state.ingest_changed_ms >= grace_ms
        )

    def recordings_expired(state: Any, now_ms: int) -> bool:
        return any(ready_ms <= now_ms - retention_ms for ready_ms, *_ in state.recordings.values())

    return [
        Timer(  # viewers silent for too long leave; a stream whose broadcaster vanished ends
            "viewer-sweep",
            settings.viewer_sweep_interval_s,
            "stream",
            _live,
            lambda sid, at: SweepViewers(
                **_system(at),
                stream_id=sid,
                silent_ms=settings.viewer_timeout_s * 1000,
                broadcaster_grace_ms=settings.broadcaster_grace_s * 1000,
            ),
        ),
        Timer(  # the spec's 5-minute analytics snapshots (§3.6)
            "analytics-snapshots",
            settings.analytics_snapshot_s,
            "stream",
            _live,
            lambda sid, at: RecordAnalyticsSnapshot(**_system(at), stream_id=sid),
        ),
        Timer(  # ingest gone for the whole reconnect grace: the stream ends (unless it came back)
            "ingest-grace",
            settings.ingest_check_interval_s,
            "stream",
            ingest_lost,
            lambda sid, at: CheckIngest(**_system(at), stream_id=sid, grace_ms=grace_ms),
        ),
        Timer(  # an ended stream still letting its viewers go a part at a time (a lost forward)
            "viewer-release",
            settings.viewer_sweep_interval_s,
            "stream",
            lambda state, now_ms: bool(state.status == "ended" and state.audience.viewers),
            lambda sid, at: ReleaseViewers(**_system(at), stream_id=sid),
        ),
        Timer(  # recordings past retention are deleted
            "recording-retention",
            settings.viewer_sweep_interval_s,
            "stream",
            recordings_expired,
            lambda sid, at: ExpireRecordings(**_system(at), stream_id=sid, retention_s=retention_ms // 1000),
        ),
    ]


def _shard_timers(settings: Settings) -> list[Timer]:
    return [
        Timer(  # a hot stream's viewers heartbeat to its shards, which time out the silent ones
            "shard-viewer-sweep",
            settings.viewer_sweep_interval_s,
            "stream_shard",
            lambda state, now_ms: stream_shard_decide.is_active(state),
            lambda shard_id, at: SweepShardViewers(
                **_system(at), **shard_address(shard_id), silent_ms=settings.viewer_timeout_s * 1000
            ),
        ),
        Timer(  # a hot stream's shards hand the likes they counted to the stream, K folds per interval
            "shard-like-folds",
            settings.shard_fold_interval_s,
            "stream_shard",
            lambda state, now_ms: stream_shard_decide.fold_due(state),
            lambda shard_id, at: FoldShard(**_system(at), **shard_address(shard_id)),
        ),
    ]


def _schedule_timers(settings: Settings) -> list[Timer]:
    lead_s = settings.schedule_reminder_lead_s

    def schedule_due(state: Any, now_ms: int) -> bool:
        return bool(state.status == "scheduled" and state.scheduled_for_ms <= now_ms)

    def schedule_reminder_due(state: Any, now_ms: int) -> bool:
        return schedule_decide.reminder_due(state, now_ms, lead_s * 1000)

    return [
        Timer(  # reminder holders and followers are told when a schedule's time comes
            "schedule-timer",
            settings.viewer_sweep_interval_s,
            "schedule",
            schedule_due,
            lambda schedule_id, at: FireSchedule(**_system(at), schedule_id=schedule_id),
        ),
        Timer(  # ... and, `schedule_reminder_lead_s` ahead of that time, reminded once
            "schedule-reminders",
            settings.viewer_sweep_interval_s,
            "schedule",
            schedule_reminder_due,
            lambda schedule_id, at: RemindSchedule(**_system(at), schedule_id=schedule_id, lead_s=lead_s),
        ),
    ]


def _battle_timers(settings: Settings) -> list[Timer]:
    return [
        Timer(  # PK battles whose time is up
            "battle-timer",
            settings.battle_timer_interval_s,
            "battle",
            battle_decide.is_due,
            lambda battle_id, at: EndBattle(**_system(at), battle_id=battle_id, reason="time_up"),
        ),
        Timer(  # PK invitations nobody answered in time
            "battle-invites",
            settings.battle_timer_interval_s,
            "battle",
            battle_decide.invite_expired,
            lambda battle_id, at: ExpireBattle(**_system(at), battle_id=battle_id),
        ),
    ]


def _system(issued_at: datetime) -> dict[str, Any]:
    return {"command_id": str(uuid.uuid4()), "issued_at": issued_at, "actor_id": SYSTEM_ACTOR}


def register_timer(
    app: faust.App,
    settings: Settings,
    timer: Timer,
    runner: AggregateRunner,
    send: Any,
    recovered: asyncio.Event,
) -> None:
    """`timer` as a Faust timer of `app`, idle until `recovered` (a half-restored table picks wrongly)."""

    async def tick() -> None:
        if not recovered.is_set():
            return  # a half-restored table would pick wrongly
        issued_at = clock.now(settings)
        now_ms = int(issued_at.timestamp() * 1000)
        started = time.perf_counter()
        picked = runner.select(lambda state: timer.wanted(state, now_ms))
        scan_s = time.perf_counter() - started
        if scan_s >= LONG_BATCH_S:  # the scan decodes what a recovery restored, once
            log.warning("the %s timer's scan held the event loop %.2f s", timer.name, scan_s)
        for aggregate_id in picked:
            await _send_command(send, timer.build(aggregate_id, issued_at))

    tick.__name__ = tick.__qualname__ = timer.name.replace("-", "_")
    app.timer(interval=timer.interval, name=timer.name)(tick)


async def _send_command(send: Any, command: Command) -> None:
    """A timer's command onto its aggregate's command topic (a lost one is simply sent next time)."""
    topic = topics.COMMAND_TOPIC_BY_AGGREGATE[command.aggregate_type].name
    await send(topic, command.aggregate_id, command.to_bytes(), [("command-type", command.type.encode())])

"""Analytics (spec §3.6, §10): a stream's analytics for its broadcaster, platform metrics and audits
for admins. Every figure comes from ClickHouse (live gauges from Postgres); see docs/analytics.md."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import AfterValidator

from spaktok import clock
from spaktok.api.auth import Principal
from spaktok.api.clickhouse_host import on_clickhouse_host
from spaktok.api.deps import CurrentUser, Services, ServicesDep, StreamPath
from spaktok.api.problems import Problem
from spaktok.api.readable import AnalyticsStream
from spaktok.projections import analytics, audit, platform_metrics
from spaktok.projections.clickhouse import ClickHouse

router = APIRouter(tags=["analytics"])
log = logging.getLogger(__name__)

AUDIT_ROLES = {"gifts": frozenset({"admin", "payments"}), "moderation": frozenset({"admin", "moderation"})}
METRICS_WINDOW_HOURS = 24.0  # the window of the Prometheus gauges
METRICS_TTL_S = 30.0  # how long a scrape reuses the ClickHouse figures


def _clickhouse(services: Services) -> ClickHouse:
    if services.clickhouse is None:
        raise Problem(503, "analytics-unavailable", "ClickHouse is not configured for this API process")
    return services.clickhouse


def _require(user: Principal, roles: frozenset[str], what: str) -> None:
    if not user.roles & roles:
        raise Problem(403, "forbidden", f"{what} needs one of the roles: {', '.join(sorted(roles))}")


@router.get("/v1/streams/{stream_id}/analytics")
@on_clickhouse_host
async def stream_analytics(
    stream_id: StreamPath, stream: AnalyticsStream, user: CurrentUser, services: ServicesDep
) -> dict[str, Any]:
    """getStreamAnalytics: the broadcaster's (or an admin's) view of one stream, live or ended; the
    access policy decides first (`owner_access`: a private stream's outsider gets 404)."""
    ch = _clickhouse(services)
    result = await run_in_threadpool(
        analytics.stream_analytics,
        ch,
        stream_id,
        now=clock.now(services.settings),
        coin_value_usd=services.settings.coin_value_usd,
    )
    if result is None:
        raise Problem(404, "stream-not-found", f"no stream {stream_id!r} in the analytics store (yet)")
    if result["broadcasterId"] != user.user_id and not user.is_admin:
        raise Problem(403, "forbidden", "only the broadcaster or an admin can read a stream's analytics")
    return result


@router.get("/v1/admin/metrics")
@on_clickhouse_host
async def admin_metrics(
    request: Request,
    user: CurrentUser,
    services: ServicesDep,
    hours: Annotated[float, Query(gt=0, le=24 * 90)] = 24.0,
) -> dict[str, Any]:
    """Platform metrics (spec §10.1): live now, a window's figures, and this process's error counts."""
    _require(user, frozenset({"admin"}), "platform metrics")
    ch = _clickhouse(services)
    live = await run_in_threadpool(platform_metrics.live_now, services.engine)
    window = await run_in_threadpool(
        platform_metrics.window_figures,
        ch,
        now=clock.now(services.settings),
        hours=hours,
        coin_value_usd=services.settings.coin_value_usd,
    )
    return {**live, "window": window, "errors": await run_in_threadpool(error_figures, request)}


def error_figures(request: Request) -> dict[str, Any]:
    counters = request.app.state.http_counters
    classes = counters.by_class()
    total = sum(classes.values())
    runner = getattr(request.app.state, "clickhouse_runner", None)
    deadletters = getattr(request.app.state, "deadletters", None)
    return {
        "responses": total,
        "responsesByClass": classes,
        "clientErrorRate": round(classes["4xx"] / total, 4) if total else 0.0,
        "serverErrorRate": round(classes["5xx"] / total, 4) if total else 0.0,
        "deadLetteredRecords": deadletters.value() if deadletters is not None else None,
        "projectorDeadLettered": runner.stats.deadlettered if runner is not None else 0,
    }


def _audit_filter(
    stream: str | None, user: str | None, since: datetime | None, until: datetime | None
) -> audit.AuditFilter:
    def utc(value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value

    return audit.AuditFilter(stream_id=stream, user_id=user, since=utc(since), until=utc(until))


async def _audit(
    kind: audit.Kind,
    user: Principal,
    services: Services,
    flt: audit.AuditFilter,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    _require(user, AUDIT_ROLES[kind], f"the {kind} audit")
    ch = _clickhouse(services)
    try:
        rows, next_cursor = await run_in_threadpool(audit.page, ch, kind, flt, cursor=cursor, limit=limit)
    except ValueError as exc:
        raise Problem(400, "invalid-cursor", "the cursor is not one this API returned") from exc
    return {"items": [audit.as_json(r) for r in rows], "nextCursor": next_cursor}


def _audit_time(value: datetime | None) -> datetime | None:
    return None if value is None else audit.in_range(value)


# ISO-8601; naive means UTC; the range ClickHouse's DateTime64 holds (a far-past date is a 422)
AuditTime = Annotated[
    datetime | None,
    Query(description="ISO-8601 date-time, naive means UTC, between 1900-01-01 and 2299-12-31"),
    AfterValidator(_audit_time),
]
Stream = Annotated[str | None, Query(max_length=64)]
User = Annotated[str | None, Query(max_length=128)]
Cursor = Annotated[str | None, Query(max_length=512)]
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get("/v1/audit/gifts")
@on_clickhouse_host
async def gift_audit(
    user: CurrentUser,
    services: ServicesDep,
    stream: Stream = None,
    user_id: Annotated[str | None, Query(alias="user", max_length=128)] = None,
    since: AuditTime = None,
    until: AuditTime = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    """Every gift taken or refused, from the log, oldest first (admin or payments)."""
    return await _audit("gifts", user, services, _audit_filter(stream, user_id, since, until), cursor, limit)


@router.get("/v1/audit/moderation")
@on_clickhouse_host
async def moderation_audit(
    user: CurrentUser,
    services: ServicesDep,
    stream: Stream = None,
    user_id: Annotated[str | None, Query(alias="user", max_length=128)] = None,
    since: AuditTime = None,
    until: AuditTime = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    """Every ban, unban, timeout, comment deletion, moderator change and report, from the log."""
    flt = _audit_filter(stream, user_id, since, until)
    return await _audit("moderation", user, services, flt, cursor, limit)


class CachedWindow:
    """The Prometheus gauges' ClickHouse figures, computed at most every METRICS_TTL_S."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at = 0.0
        self._value: dict[str, Any] | None = None

    def get(self, services: Services) -> dict[str, Any] | None:
        with self._lock:
            if self._value is None or time.monotonic() - self._at > METRICS_TTL_S:
                if services.clickhouse is None:
                    return None
                self._value = platform_metrics.window_figures(
                    services.clickhouse,
                    now=clock.now(services.settings),
                    hours=METRICS_WINDOW_HOURS,
                    coin_value_usd=services.settings.coin_value_usd,
                )
                self._at = time.monotonic()
            return self._value


def prometheus_lines(request: Request, services: Services) -> list[str]:
    """The platform metrics of §10.1 in Prometheus text format (blocking: call in a thread)."""
    lines: list[str] = []

    def gauge(name: str, value: Any, help_: str, labels: str = "") -> None:
        lines.extend([f"# HELP {name} {help_}", f"# TYPE {name} gauge", f"{name}{labels} {value}"])

    counters = request.app.state.http_counters
    lines += ["# HELP spaktok_http_responses_total HTTP answers by status code (errors are problem+json)"]
    lines += ["# TYPE spaktok_http_responses_total counter"]
    for status, n in sorted(counters.snapshot().items()):
        lines.append(f'spaktok_http_responses_total{{code="{status}",class="{status // 100}xx"}} {n}')
    try:
        live = platform_metrics.live_now(services.engine)
        gauge("spaktok_live_streams", live["concurrentStreams"], "streams live now")
        gauge("spaktok_live_viewers", live["totalViewers"], "viewers of the live streams now")
    except Exception:  # noqa: BLE001 - a scrape reports what it can; /readyz tells what is down
        log.warning("live gauges unavailable", exc_info=True)
    deadletters = getattr(request.app.state, "deadletters", None)
    value = deadletters.value() if deadletters is not None else None
    if value is not None:
        gauge("spaktok_deadletter_records", value, "records parked on the dead-letter topic, every stage")
    try:
        window = request.app.state.metrics_window.get(services)
    except Exception:  # noqa: BLE001
        log.warning("analytics gauges unavailable", exc_info=True)
        window = None
    if window is not None:
        labels = f'{{window="{int(METRICS_WINDOW_HOURS)}h"}}'
        for name, key, help_ in (
            ("spaktok_streams_started", "streamsStarted", "streams started in the window"),
            ("spaktok_watch_time_average_seconds", "averageWatchTimeSeconds", "per viewer and stream"),
            ("spaktok_gift_revenue_coins", "giftRevenue", "coins of gifts to streams started in the window"),
            (
                "spaktok_gift_revenue_per_stream_coins",
                "giftRevenuePerStream",
                "gift coins per stream started",
            ),
        ):
            gauge(name, window[key], help_, labels)
    return lines

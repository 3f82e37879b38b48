"""Operations: liveness, readiness, pending command status, and a stream's raw event log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import text

from spaktok.api.batching import member_answer
from spaktok.api.clickhouse_host import on_clickhouse_host
from spaktok.api.deps import CommandPath, CurrentUser, ServicesDep, StreamPath
from spaktok.api.problems import Problem
from spaktok.api.readable import EventLogStream
from spaktok.api.routes import analytics

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    checks: dict[str, str] = {}

    def postgres() -> None:
        with services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def clickhouse() -> None:
        if services.clickhouse is not None:
            services.clickhouse.query("SELECT 1 AS ok")

    def broker() -> None:
        if not services.bus.listener.ready:
            raise RuntimeError("outcome listener not following the broker")

    for name, check in (("broker", broker), ("postgres", postgres), ("clickhouse", clickhouse)):
        try:
            await run_in_threadpool(check)
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
            checks[name] = f"unavailable: {exc}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not-ready", "checks": checks}, 200 if ready else 503
    )


@router.get("/v1/commands/{command_id}")
async def command_status(command_id: CommandPath, services: ServicesDep, user: CurrentUser) -> dict[str, Any]:
    """The command's actor or an admin only (docs/security.md "Command status"). Anyone else gets
    404 `command-not-found`, the answer an id that never existed gets, so ids cannot be probed. An id
    this process knows nothing of is `pending` for every caller: it may be on its way from another
    API process, and the answer reveals nothing."""
    outcome = services.bus.status(command_id)
    actors = services.bus.actors_of(command_id)
    known = actors is not None or outcome is not None
    if known and not user.is_admin and (actors is None or user.user_id not in actors):
        raise Problem(404, "command-not-found", f"no command {command_id!r} of yours")
    if outcome is None:
        return {"commandId": command_id, "status": "pending"}
    if outcome.answers and not user.is_admin:
        outcome = member_answer(outcome, user.user_id)  # an edge batch: the caller's own answer only
    body: dict[str, Any] = {
        "commandId": command_id,
        "status": outcome.status,
        "stats": outcome.stats,
        "events": [{"type": e["type"], "payload": e["payload"]} for e in outcome.events],
    }
    if outcome.status == "rejected":
        body.update(reason=outcome.reason, detail=outcome.detail)
    if outcome.answers:
        body["answers"] = outcome.answers
    return body


@router.get("/v1/streams/{stream_id}/log")
@on_clickhouse_host
async def stream_event_log(
    stream_id: StreamPath,
    stream: EventLogStream,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    """The stream's events as stored in ClickHouse (owner or admin): what the log says happened."""
    if services.clickhouse is None:
        raise Problem(503, "analytics-unavailable", "ClickHouse is not configured for this API process")
    rows = await run_in_threadpool(
        services.clickhouse.query,
        "SELECT event_id, type, sequence, occurred_at, actor_id, user_id, payload FROM events FINAL "
        "WHERE aggregate_type = 'stream' AND aggregate_id = {s:String} AND sequence > 0 "
        "ORDER BY sequence LIMIT {n:UInt32}",
        {"s": stream_id, "n": limit},
    )
    for row in rows:
        row["occurred_at"] = row["occurred_at"].isoformat()
    return {"streamId": stream_id, "events": rows}


@router.get("/metrics")
async def metrics(request: Request, services: ServicesDep, user: CurrentUser) -> PlainTextResponse:
    """Prometheus text format: command traffic, projector progress hosted by this process, and the
    platform metrics of spec §10.1 (api/routes/analytics.py). Admins only: it shows revenue and
    traffic (a scraper sends an admin bearer token, `authorization` in Prometheus' scrape config)."""
    if not user.is_admin:
        raise Problem(403, "forbidden", "/metrics is for admins; scrape it with an admin token")
    lines = [
        "# TYPE spaktok_edge_batches_sent_total counter",
        f"spaktok_edge_batches_sent_total {services.batcher.batches_sent}",
        "# TYPE spaktok_outcomes_received_total counter",
        f"spaktok_outcomes_received_total {services.bus.listener.received}",
    ]
    feed = services.feed
    if feed is not None:
        lines += [
            "# TYPE spaktok_live_connections gauge",
            f"spaktok_live_connections {feed.connections}",
            "# TYPE spaktok_live_frames_sent_total counter",
            f"spaktok_live_frames_sent_total {feed.frames_sent}",
            "# TYPE spaktok_live_items_sent_total counter",
            f"spaktok_live_items_sent_total {feed.items_sent}",
            "# TYPE spaktok_live_slow_disconnects_total counter",
            f"spaktok_live_slow_disconnects_total {feed.slow_disconnects}",
        ]
    runner = getattr(request.app.state, "clickhouse_runner", None)
    if runner is not None:
        name = runner.projector.name
        stats = runner.stats
        for metric, value in (
            ("records_total", stats.records),
            ("rows_total", stats.rows),
            ("batches_total", stats.batches),
            ("deadlettered_total", stats.deadlettered),
            ("busy_seconds_total", round(stats.busy_seconds, 6)),
        ):
            lines.append(f"# TYPE spaktok_projector_{metric} counter")
            lines.append(f'spaktok_projector_{metric}{{projection="{name}"}} {value}')
    lines += await run_in_threadpool(analytics.prometheus_lines, request, services)
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

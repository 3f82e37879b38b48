"""The FastAPI application: thin command endpoints, read queries, operations.

With an embedded ClickHouse (`chdb:` DSN) the API process also hosts the ClickHouse projector,
because a chDB directory can be opened by one process only (DESIGN §4); with several API processes,
the others forward their ClickHouse routes to it (api/clickhouse_host.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from spaktok.api.batching import EdgeBatcher
from spaktok.api.bus import CommandBus, OutcomeListener
from spaktok.api.clickhouse_host import ForwardToClickHouseHost
from spaktok.api.deps import Services
from spaktok.api.idempotency import check_idempotency_key
from spaktok.api.live import FeedHub
from spaktok.api.metrics import CountResponses, DeadLetterGauge, HttpCounters
from spaktok.api.openapi import install_openapi
from spaktok.api.problems import install_problem_handlers
from spaktok.api.ratelimit import RateLimits, limit_mutations
from spaktok.api.recordings import RecordingJanitor
from spaktok.api.routes import (
    analytics,
    battles,
    channels,
    chat,
    console,
    contracts,
    dev,
    enforcement,
    live,
    media,
    media_health,
    moderation,
    money,
    notify,
    ops,
    replay,
    schedules,
    social,
    sql,
    streams,
    viewers,
    webhooks,
)
from spaktok.commands.gifts import load_catalog
from spaktok.infra import topics
from spaktok.infra.collector import restore_collector, tune_collector
from spaktok.infra.kafka import EventProducer
from spaktok.infra.nginx import MediaLayout
from spaktok.projections import clickhouse, postgres
from spaktok.settings import Settings, get_settings

log = logging.getLogger(__name__)


async def guard_mutation(request: HTTPConnection) -> None:
    """On every route, present and future (docs/security.md "Limits"): the rate limits first, so
    that a flood never reaches Postgres for its keys, then the Idempotency-Key binding. One
    dependency for both: FastAPI resolves each dependency with its own pass over the request."""
    await limit_mutations(request)
    await check_idempotency_key(request)


# A request is matched against the routes in this order, one regular expression each (py-spy: a
# gift's matching through the nine routers before `money` was an eighth of its event-loop time), so
# the busiest commands come first. No two routers have templates one path could match, so the order
# changes which route is tried first, never which one answers.
ROUTERS = (
    ops.router,
    money.router,
    chat.router,
    streams.router,
    viewers.router,
    live.router,
    social.router,
    notify.router,
    channels.router,
    schedules.router,
    moderation.router,
    enforcement.router,
    battles.router,
    media.router,
    media_health.router,
    analytics.router,
    sql.router,
    replay.router,
    dev.router,
    contracts.router,  # the event contracts: /asyncapi.json, /docs/events (docs/events.md)
    webhooks.router,
    console.router,  # the pages last: the API's own routes are matched first
)


def create_app(settings: Settings | None = None, *, host_clickhouse_projector: bool | None = None) -> FastAPI:
    settings = settings or get_settings()
    # with chDB and several API processes, one holds it and the others forward (api/clickhouse_host.py)
    forwarding = settings.is_embedded_clickhouse and bool(settings.clickhouse_host_url)
    hosting = (
        settings.is_embedded_clickhouse and not forwarding
        if host_clickhouse_projector is None
        else host_clickhouse_projector
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(topics.ensure_topics, settings)
        engine = postgres.make_engine(settings.postgres_dsn)
        await run_in_threadpool(postgres.apply_schema, engine)
        producer = EventProducer(settings)
        listener = OutcomeListener(settings, deadletters=producer)
        await run_in_threadpool(listener.start, asyncio.get_running_loop())
        ch = None
        if not forwarding:
            ch = await run_in_threadpool(clickhouse.ClickHouse, settings.clickhouse_dsn)
            await run_in_threadpool(clickhouse.apply_schema, ch)
        ch_runner = None
        if hosting and ch is not None:
            ch_runner = clickhouse.events_runner(settings, ch, producer)
            ch_runner.start()
        partitions = await run_in_threadpool(topics.partition_counts, settings)
        bus = CommandBus(settings, producer, listener, partitions)
        batcher = EdgeBatcher(
            bus,
            window_ms=settings.edge_batch_window_ms,
            max_items=settings.edge_batch_max,
            join_window_ms=settings.join_batch_window_ms,
        )
        feed = FeedHub(settings)
        await run_in_threadpool(feed.start, asyncio.get_running_loop())
        catalog = load_catalog(settings.gift_catalog_path)
        app.state.services = Services(settings, bus, batcher, engine, ch, feed, catalog=catalog)
        await run_in_threadpool(app.state.services.chat_filter.mask, "warm up")  # loads the model
        app.state.clickhouse_runner = ch_runner
        janitor = None
        if settings.media_control_url:  # this API fronts a media server and owns its recordings
            janitor = RecordingJanitor(settings, MediaLayout(settings.media_root))
            janitor.start()
        app.state.deadletters = DeadLetterGauge(settings)
        app.state.metrics_window = analytics.CachedWindow()
        tune_collector()
        try:
            yield
        finally:
            restore_collector()
            if janitor is not None:
                await run_in_threadpool(janitor.stop)
            await run_in_threadpool(feed.stop)
            if app.state.clickhouse_runner is not None:  # a replay may have replaced the first one
                await run_in_threadpool(app.state.clickhouse_runner.stop)
            bus.bundler.flush_all()
            await run_in_threadpool(listener.stop)
            await run_in_threadpool(producer.close)
            if ch is not None:
                await run_in_threadpool(ch.close)
            engine.dispose()

    app = FastAPI(
        title="Spaktok Live API",
        version="1",
        lifespan=lifespan,
        description="Commands go to Kafka; reads come from Postgres and ClickHouse read models.",
        dependencies=[Depends(guard_mutation)],
    )
    app.state.settings = settings  # for routes that need no services (api/routes/dev.py)
    app.state.rate_limits = RateLimits(settings)
    install_problem_handlers(app)
    app.state.http_counters = HttpCounters()
    app.add_middleware(CountResponses, counters=app.state.http_counters)
    if forwarding:
        app.add_middleware(ForwardToClickHouseHost, host_url=settings.clickhouse_host_url)
    for router in ROUTERS:
        app.include_router(router)
    install_openapi(app)
    return app

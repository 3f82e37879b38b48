"""`spaktok project`: run the projectors of this process until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading

from spaktok.infra import topics
from spaktok.infra.kafka import EventProducer
from spaktok.infra.push import ProviderNotConfigured
from spaktok.projections import clickhouse, postgres
from spaktok.projections.notifier import notifier_runner
from spaktok.projections.runner import ProjectionRunner
from spaktok.projections.streams import PostgresStreamsProjector
from spaktok.settings import Settings

log = logging.getLogger(__name__)


def build_runners(
    settings: Settings, producer: EventProducer, *, include_clickhouse: bool
) -> list[ProjectionRunner]:
    engine = postgres.make_engine(settings.postgres_dsn)
    postgres.apply_schema(engine)
    runners = [ProjectionRunner(settings, PostgresStreamsProjector(engine), producer)]
    runners.append(notifier_runner(settings, engine, producer))  # pushes (docs/notifications.md)
    if include_clickhouse:
        ch = clickhouse.ClickHouse(settings.clickhouse_dsn)
        clickhouse.apply_schema(ch)
        runners.append(clickhouse.events_runner(settings, ch, producer))
    return runners


def run_projectors(settings: Settings) -> None:
    """Blocks until a signal; the ClickHouse projector runs here only with a ClickHouse server."""
    topics.ensure_topics(settings)
    producer = EventProducer(settings)
    try:
        runners = build_runners(settings, producer, include_clickhouse=not settings.is_embedded_clickhouse)
    except ProviderNotConfigured as exc:
        producer.close()
        raise SystemExit(f"spaktok project: the notifier cannot start: {exc}") from exc
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    for runner in runners:
        runner.start()
    log.info("projectors running: %s", ", ".join(r.projector.name for r in runners))
    stop.wait()
    for runner in runners:
        runner.stop()
    producer.close()

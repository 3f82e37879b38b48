"""Webhooks in the worker process: the outbox consumer and the deliverer, started and stopped with it.

Why in the worker, and why not as a Faust agent: the worker is the process every deployment already
runs and scales (one more process type would be one more thing to forget), and a worker kill is the
crash the design must survive. But a Faust agent costs ~200 µs of Faust's machinery per Kafka
message (DESIGN §4) — on every event of the platform, subscribed or not — and acks by Kafka offset
commits, which are at-least-once; the read models' consume loop (projections/runner.py,
confluent-kafka) reads the same topics for a fraction of that and keeps its position in Postgres in
the same transaction as the outbox rows. So the worker hosts that loop in a thread, and the
deliverer on an event loop of its own in another: neither can stall Faust's loop, nor Faust them.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import faust
import mode

from spaktok.infra.kafka import EventProducer
from spaktok.processors.webhook_delivery import Deliverer
from spaktok.projections import postgres
from spaktok.projections.runner import BACKGROUND_LINGER_S, ProjectionRunner
from spaktok.projections.webhook_outbox import WebhookOutbox
from spaktok.settings import Settings

log = logging.getLogger(__name__)


class WebhookHost:
    """The outbox projector and the deliverer of one process, in two threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.deliverer: Deliverer | None = None
        self._runner: ProjectionRunner | None = None
        self._producer: EventProducer | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        engine = postgres.make_engine(self.settings.postgres_dsn)
        postgres.apply_schema(engine)  # the worker may start before the API has created the tables
        self.deliverer = Deliverer(self.settings, engine)
        self._producer = EventProducer(self.settings)  # for undecodable records (dead letters)
        outbox = WebhookOutbox(engine, on_written=self.deliverer.wake)
        # nobody reads the outbox waiting, and it runs in every worker
        self._runner = ProjectionRunner(
            self.settings, outbox, self._producer, batch_size=500, linger_s=BACKGROUND_LINGER_S
        )
        self._runner.start()
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._deliver, args=(started,), name="webhook-deliverer", daemon=True
        )
        self._thread.start()
        started.wait(10)

    def _deliver(self, started: threading.Event) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            started.set()
            assert self.deliverer is not None
            await self.deliverer.run(self._stop)

        asyncio.run(main())

    def stop(self) -> None:
        if self._runner is not None:
            self._runner.stop()
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(self.settings.webhook_timeout_s + 5)
        if self._producer is not None:
            self._producer.close()


def register_webhooks(app: faust.App, settings: Settings) -> None:
    """Run the webhook outbox and deliverer while the worker runs (a Faust service)."""
    host = WebhookHost(settings)

    class Webhooks(mode.Service):
        async def on_start(self) -> None:
            await asyncio.to_thread(host.start)
            log.info("webhooks: outbox and deliverer running")

        async def on_stop(self) -> None:
            await asyncio.to_thread(host.stop)

    app.service(Webhooks)
    app.spaktok_webhooks = host  # type: ignore[attr-defined]

"""The webhook deliverer: sends the outbox's due deliveries, records every attempt, retries, disables.

Each attempt is recorded before its request leaves (`sending`, keyed by subscription, event and
attempt number) and completed after the answer, so the log never loses or repeats an attempt: a
process killed mid-request leaves its row `sending` and its delivery leased; when the lease runs out
a deliverer claims the delivery again, marks that row `interrupted` (the receiver may or may not have
had it) and makes the next attempt. The request itself is therefore at least once; receivers
de-duplicate by the event id (`Spaktok-Webhook-Id`), which every attempt carries.

Several worker processes share the outbox: a delivery is claimed with `FOR UPDATE SKIP LOCKED` and
a lease, so each is in flight in one place. Requests run concurrently (a bound per process) on
their own event loop in a thread of the worker, so a slow receiver never holds up Faust's agents.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy import Connection, Engine, text

from spaktok.processors import webhook_signing as signing
from spaktok.settings import Settings

log = logging.getLogger(__name__)

USER_AGENT = "Spaktok-Webhooks/1"
LEASE_MARGIN_S = 5.0  # a claim outlives its request's timeout by this much before others may retry


@dataclass(frozen=True, slots=True)
class Claimed:
    """One delivery taken for one attempt."""

    subscription_id: str
    event_id: str
    attempt: int
    url: str
    secret: str
    body: str


@dataclass(frozen=True, slots=True)
class Result:
    """What one attempt came to: `error` is None when the receiver answered 2xx."""

    status_code: int | None
    error: str | None
    duration_ms: int


# One statement: take the due deliveries (each for one more attempt, under a lease), mark an attempt
# a dead deliverer left `sending` as `interrupted`, and log the new attempt as `sending`.
_CLAIM = text(
    """
    WITH due AS (
        SELECT d.subscription_id, d.event_id FROM webhooks.deliveries d
        JOIN webhooks.subscriptions s ON s.id = d.subscription_id
        WHERE d.state = 'pending' AND s.status = 'active' AND d.next_attempt_at <= now()
          AND (d.lease_until IS NULL OR d.lease_until < now())
        ORDER BY d.next_attempt_at LIMIT :n
        FOR UPDATE OF d SKIP LOCKED
    ), claimed AS (
        UPDATE webhooks.deliveries d
        SET attempts = d.attempts + 1, lease_until = now() + make_interval(secs => :lease)
        FROM due WHERE d.subscription_id = due.subscription_id AND d.event_id = due.event_id
        RETURNING d.subscription_id, d.event_id, d.attempts, d.body
    ), interrupted AS (
        UPDATE webhooks.attempts a SET outcome = 'interrupted',
            error = 'the deliverer stopped before the answer was recorded; the receiver may have it'
        FROM claimed c WHERE a.subscription_id = c.subscription_id AND a.event_id = c.event_id
          AND a.outcome = 'sending'
    ), sending AS (
        INSERT INTO webhooks.attempts (subscription_id, event_id, attempt, outcome, started_at)
        SELECT subscription_id, event_id, attempts, 'sending', now() FROM claimed
    )
    SELECT c.subscription_id, c.event_id, c.attempts, s.url, s.secret, c.body
    FROM claimed c JOIN webhooks.subscriptions s ON s.id = c.subscription_id
    """
)
# Completing an attempt is one statement (an executemany of them is one round trip): the attempt's
# row, then its delivery, then its subscription, each step only if the one before matched, so an
# attempt whose lease ran out (another deliverer took the delivery over) changes nothing.
_DELIVERED = text(
    """
    WITH a AS (
        UPDATE webhooks.attempts SET outcome = 'delivered', status_code = :code, duration_ms = :ms
        WHERE subscription_id = :s AND event_id = :e AND attempt = :a AND outcome = 'sending'
        RETURNING subscription_id, event_id, attempt
    ), d AS (
        UPDATE webhooks.deliveries d SET state = 'delivered', delivered_at = now(), lease_until = NULL
        FROM a WHERE d.subscription_id = a.subscription_id AND d.event_id = a.event_id
          AND d.attempts = a.attempt
        RETURNING d.subscription_id
    )
    UPDATE webhooks.subscriptions s SET consecutive_failures = 0, last_success_at = now()
    FROM d WHERE s.id = d.subscription_id
    """
)
_FAILED = text(
    """
    WITH a AS (
        UPDATE webhooks.attempts SET outcome = 'failed', status_code = :code, error = :error,
            duration_ms = :ms
        WHERE subscription_id = :s AND event_id = :e AND attempt = :a AND outcome = 'sending'
        RETURNING subscription_id, event_id, attempt
    ), d AS (
        UPDATE webhooks.deliveries d
        SET next_attempt_at = now() + make_interval(secs => :delay), lease_until = NULL
        FROM a WHERE d.subscription_id = a.subscription_id AND d.event_id = a.event_id
          AND d.attempts = a.attempt
        RETURNING d.subscription_id
    )
    UPDATE webhooks.subscriptions s SET
        consecutive_failures = s.consecutive_failures + 1,
        last_error = :error,
        status = CASE WHEN s.consecutive_failures + 1 >= :limit THEN 'disabled' ELSE s.status END,
        disabled_at = CASE WHEN s.consecutive_failures + 1 >= :limit AND s.status = 'active'
                           THEN now() ELSE s.disabled_at END,
        disabled_reason = CASE WHEN s.consecutive_failures + 1 >= :limit AND s.status = 'active'
                               THEN :reason ELSE s.disabled_reason END
    FROM d WHERE s.id = d.subscription_id
    """
)


def claim(conn: Connection, limit: int, lease_s: float) -> list[Claimed]:
    """Take up to `limit` due deliveries for one attempt each, recorded as `sending`."""
    return [Claimed(*row) for row in conn.execute(_CLAIM, {"n": limit, "lease": lease_s})]


def record(conn: Connection, done: list[tuple[Claimed, Result, float]], *, disable_after: int) -> None:
    """Complete attempts (item, result, retry delay) and move their deliveries and subscriptions on.
    Successes are written before failures: within one batch (attempts that finished within a few
    milliseconds) the order is not the answers' order, which only the failure count could notice."""
    delivered, failed = [], []
    for item, result, delay in done:
        row = {
            "s": item.subscription_id,
            "e": item.event_id,
            "a": item.attempt,
            "code": result.status_code,
            "ms": result.duration_ms,
        }
        if result.error is None:
            delivered.append(row)
        else:
            reason = f"{disable_after} delivery attempts in a row failed; the last: {result.error}"
            failed.append(
                {**row, "error": result.error, "delay": delay, "limit": disable_after, "reason": reason}
            )
    if delivered:
        conn.execute(_DELIVERED, delivered)
    if failed:
        conn.execute(_FAILED, failed)


async def send(session: aiohttp.ClientSession, item: Claimed, timeout_s: float) -> Result:
    """One signed POST; any answer but 2xx, a timeout or a connection error is a failure."""
    payload = item.body.encode()
    headers = signing.headers(item.secret, item.event_id, int(time.time()), payload)
    headers[signing.ATTEMPT_HEADER] = str(item.attempt)
    headers[signing.SUBSCRIPTION_HEADER] = item.subscription_id
    headers["User-Agent"] = USER_AGENT
    started = time.perf_counter()
    code: int | None = None
    try:
        async with session.post(
            item.url,
            data=payload,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
        ) as response:
            code = response.status
            await response.content.readany()  # a little of the answer, never a huge body
        error = None if 200 <= code < 300 else f"HTTP {code}"
    except TimeoutError:
        error = f"no answer within {timeout_s:g} s"
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        error = (f"{type(exc).__name__}: {exc}"[:500]) or type(exc).__name__
    return Result(code, error, int((time.perf_counter() - started) * 1000))


class Deliverer:
    """Claims due deliveries while it has free slots and sends them; `run` until `stop` is set."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.lease_s = settings.webhook_timeout_s + LEASE_MARGIN_S
        self.attempts = 0  # attempts finished by this process (bench, logs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken: asyncio.Event | None = None

    def wake(self) -> None:
        """From any thread: new deliveries were written (the outbox calls it after its commit)."""
        loop, woken = self._loop, self._woken
        if loop is not None and woken is not None and not loop.is_closed():
            loop.call_soon_threadsafe(woken.set)

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._woken = woken = asyncio.Event()
        concurrency = self.settings.webhook_concurrency
        in_flight: set[asyncio.Task[None]] = set()  # sending or waiting to be recorded
        backlog = False  # the last claim filled every free slot: more may be due
        recorded: asyncio.Queue[Finished] = asyncio.Queue()
        recorder = asyncio.create_task(self._recorder(recorded))

        def finished(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            if backlog:
                woken.set()  # a slot is free and work is waiting

        # aiohttp, not httpx: at 32 requests in flight httpx's pool answered ~100/s where aiohttp
        # answered 4,000/s from the same receiver on this machine (encode/httpx#3215)
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as client:
            while not stop.is_set():
                woken.clear()
                free = concurrency - len(in_flight)
                # behind a backlog, claim in batches (a quarter of the slots at least), not one
                # delivery per transaction each time a request finishes
                worth_it = free > 0 and (not backlog or free >= max(1, concurrency // 4))
                claimed = await self._claim(free) if worth_it else []
                for item in claimed:
                    task = asyncio.create_task(self._attempt(client, item, recorded))
                    in_flight.add(task)
                    task.add_done_callback(finished)
                backlog = free <= 0 or (backlog and not worth_it) or (worth_it and len(claimed) == free)
                await _either(woken.wait(), stop.wait(), timeout=self.settings.webhook_poll_s)
            if in_flight:
                await asyncio.wait(in_flight, timeout=self.settings.webhook_timeout_s)
        recorder.cancel()

    async def _claim(self, limit: int) -> list[Claimed]:
        try:
            return await asyncio.to_thread(self._claim_sync, limit)
        except Exception:  # noqa: BLE001 - the store may be away: the next poll tries again
            log.exception("webhooks: claiming due deliveries failed")
            return []

    def _claim_sync(self, limit: int) -> list[Claimed]:
        with self.engine.begin() as conn:
            return claim(conn, limit, self.lease_s)

    async def _attempt(
        self, client: aiohttp.ClientSession, item: Claimed, recorded: asyncio.Queue[Finished]
    ) -> None:
        """Send, then hand the result to the recorder and wait until it is written: the slot stays
        taken until then, so a slow database slows claiming instead of piling results up."""
        result = await send(client, item, self.settings.webhook_timeout_s)
        s = self.settings
        delay = signing.backoff_s(item.attempt, s.webhook_backoff_s, s.webhook_backoff_max_s)
        done = asyncio.get_running_loop().create_future()
        await recorded.put(Finished(item, result, delay, done))
        if await done and result.error is not None and self._woken is not None:
            woken = self._woken
            asyncio.get_running_loop().call_later(delay, woken.set)  # due then: look again

    async def _recorder(self, queue: asyncio.Queue[Finished]) -> None:
        """Write finished attempts, as many as have finished meanwhile in one transaction."""
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < 500:
                batch.append(queue.get_nowait())
            try:
                await asyncio.to_thread(self._record_sync, batch)
                ok = True
            except Exception:  # noqa: BLE001 - unrecorded: the lease runs out and they are retried
                log.exception("webhooks: recording %d attempts failed", len(batch))
                ok = False
            self.attempts += len(batch) if ok else 0
            for entry in batch:
                if not entry.done.done():
                    entry.done.set_result(ok)

    def _record_sync(self, batch: list[Finished]) -> None:
        with self.engine.begin() as conn:
            done = [(entry.item, entry.result, entry.delay) for entry in batch]
            record(conn, done, disable_after=self.settings.webhook_disable_after)


@dataclass(frozen=True, slots=True)
class Finished:
    """An attempt whose answer is in, waiting for the recorder; `done` gets whether it was written."""

    item: Claimed
    result: Result
    delay: float
    done: asyncio.Future[bool]


async def _either(*waits: Any, timeout: float) -> None:
    """Until the first of `waits` finishes or `timeout` passes; the others are cancelled."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()

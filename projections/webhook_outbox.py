"""The webhook outbox: the events topics folded into one pending delivery per (subscription, event).

A projector like the read models' (projections/runner.py drives it): the rows and the outbox's
position are written in one transaction, and the outbox's key (subscription id, event id) makes a
record read twice — after a crash, a rebalance, or an event the worker re-emitted with its
deterministic id — one delivery. The deliverer (processors/webhook_delivery.py) sends from here, so
a process killed mid-send loses nothing: the row is still pending.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, text

import spaktok.events.catalog  # noqa: F401 - every event type must be decodable here
from spaktok.events.base import EVENT_TYPES
from spaktok.events.envelope import Envelope
from spaktok.projections.runner import Record, highest_offsets

STREAM_STARTED = "streams.StreamStarted"


@dataclass(frozen=True, slots=True)
class Subscription:
    """What the outbox needs of a subscription to pick its events."""

    id: str
    owner_id: str
    scope: str  # "streams": events of streams the owner started; "app": every stream and topic
    event_types: frozenset[str]
    created_at: datetime


def subscribable(event_type: str, scope: str) -> bool:
    """Whether a subscription of `scope` may name `event_type`. Notices (who was notified) are left
    out: they are per-recipient bookkeeping for the notifier, not facts about a stream. A broadcaster
    ("streams") gets the events of its streams' own log; the platform ("app") every fact."""
    cls = EVENT_TYPES.get(event_type)
    if cls is None or cls.notice:
        return False
    return scope == "app" or cls.aggregate_type == "stream"


def stream_of(env: Envelope) -> str | None:
    """The stream an event is about: the aggregate of a stream event, else a `stream_id` in it."""
    if env.aggregate_type == "stream":
        return env.aggregate_id
    value = env.payload.get("stream_id")
    return value if isinstance(value, str) else None


def body(env: Envelope) -> str:
    """The delivery's JSON, fixed once so that every attempt sends (and signs) the same bytes.

    `data` is the payload as the current schema version has it (upcast), so receivers see one shape."""
    data = env.event().model_dump(mode="json", exclude={"type"})
    document = {
        "id": env.event_id,
        "type": env.type,
        "time": env.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "streamId": stream_of(env),
        "data": data,
    }
    return orjson.dumps(document).decode()


def deliveries(
    envelopes: Iterable[Envelope], subscriptions: list[Subscription], owners: dict[str, str]
) -> list[dict[str, Any]]:
    """Outbox rows: each event for each subscription that wants it (its type, its scope, and not
    older than the subscription: a new subscription is not sent the past)."""
    rows: list[dict[str, Any]] = []
    for env in envelopes:
        wanted = [
            s
            for s in subscriptions
            if env.type in s.event_types
            and env.occurred_at >= s.created_at
            and subscribable(env.type, s.scope)
            and (s.scope == "app" or owners.get(env.aggregate_id) == s.owner_id)
        ]
        if not wanted:
            continue
        text_body = body(env)
        rows += [
            {
                "s": s.id,
                "e": env.event_id,
                "t": env.type,
                "o": env.occurred_at,
                "b": text_body,
            }
            for s in wanted
        ]
    return rows


class WebhookOutbox:
    """The projector: `apply` writes deliveries, stream owners and its position atomically."""

    name = "webhooks-outbox"

    def __init__(self, engine: Engine, on_written: Callable[[], None] = lambda: None) -> None:
        """`on_written` is called after a commit that added deliveries (wakes the deliverer)."""
        self.engine = engine
        self.on_written = on_written

    def checkpoints(self) -> dict[tuple[str, int], int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    'SELECT topic, partition, "offset" FROM webhooks.checkpoints '
                    f"WHERE public_oid = {_PUBLIC}"
                )
            )
            return {(topic, partition): offset for topic, partition, offset in rows}

    def apply(self, records: list[Record], skipped: dict[tuple[str, int], int]) -> int:
        with self.engine.begin() as conn:
            fresh = _claim(conn, records)
            envelopes = [r.envelope for r in fresh]
            owners = _remember_owners(conn, envelopes)
            subscriptions = _active_subscriptions(conn)
            rows: list[dict[str, Any]] = []
            if subscriptions:
                owners.update(_owners_of(conn, envelopes, owners))
                rows = deliveries(envelopes, subscriptions, owners)
            if rows:
                conn.execute(
                    text(
                        "INSERT INTO webhooks.deliveries (subscription_id, event_id, event_type, "
                        "occurred_at, body, next_attempt_at) VALUES (:s, :e, :t, :o, :b, now()) "
                        "ON CONFLICT (subscription_id, event_id) DO NOTHING"
                    ),
                    rows,
                )
            _save(conn, highest_offsets(records, skipped))
        if rows:
            self.on_written()
        return len(rows)


# The incarnation of `public` (docs/webhooks.md "Where it runs"): positions of another one are void.
_PUBLIC = "(SELECT oid::bigint FROM pg_namespace WHERE nspname = 'public')"


def _claim(conn: Connection, records: list[Record]) -> list[Record]:
    """The records past the stored position, with the position rows locked: two processes that both
    hold a partition for a moment (a rebalance) take turns, and the second skips what the first
    wrote (as projections/postgres.py `claim_records` does for the read models)."""
    parts = sorted({(r.topic, r.partition) for r in records})
    if not parts:
        return records
    conn.execute(
        text(
            'INSERT INTO webhooks.checkpoints (topic, partition, "offset", public_oid) '
            f"VALUES (:t, :n, -1, {_PUBLIC}) ON CONFLICT (topic, partition) DO NOTHING"
        ),
        [{"t": t, "n": n} for t, n in parts],
    )
    rows = conn.execute(
        text(
            f'SELECT topic, partition, CASE WHEN public_oid = {_PUBLIC} THEN "offset" ELSE -1 END '
            "FROM webhooks.checkpoints WHERE topic = ANY(:t) AND partition = ANY(:n) "
            "ORDER BY topic, partition FOR UPDATE"
        ),
        {"t": sorted({t for t, _ in parts}), "n": sorted({n for _, n in parts})},
    )
    applied = {(topic, partition): offset for topic, partition, offset in rows}
    return [r for r in records if r.offset > applied.get((r.topic, r.partition), -1)]


def _save(conn: Connection, offsets: dict[tuple[str, int], int]) -> None:
    if offsets:
        conn.execute(
            text(
                'INSERT INTO webhooks.checkpoints AS c (topic, partition, "offset", public_oid) '
                f"VALUES (:t, :n, :o, {_PUBLIC}) ON CONFLICT (topic, partition) DO UPDATE SET "
                '"offset" = CASE WHEN c.public_oid = EXCLUDED.public_oid '
                'THEN GREATEST(c."offset", EXCLUDED."offset") ELSE EXCLUDED."offset" END, '
                "public_oid = EXCLUDED.public_oid"
            ),
            [{"t": t, "n": n, "o": o} for (t, n), o in offsets.items()],
        )


def _remember_owners(conn: Connection, envelopes: list[Envelope]) -> dict[str, str]:
    """Stream owners from this batch's StreamStarted, kept for every later batch (and subscription)."""
    owners = {
        env.aggregate_id: str(env.payload["user_id"]) for env in envelopes if env.type == STREAM_STARTED
    }
    if owners:
        conn.execute(
            text(
                "INSERT INTO webhooks.stream_owners (stream_id, owner_id) VALUES (:s, :o) "
                "ON CONFLICT (stream_id) DO NOTHING"
            ),
            [{"s": s, "o": o} for s, o in owners.items()],
        )
    return owners


def _owners_of(conn: Connection, envelopes: list[Envelope], known: dict[str, str]) -> dict[str, str]:
    wanted = sorted({e.aggregate_id for e in envelopes if e.aggregate_type == "stream"} - known.keys())
    if not wanted:
        return {}
    rows = conn.execute(
        text("SELECT stream_id, owner_id FROM webhooks.stream_owners WHERE stream_id = ANY(:s)"),
        {"s": wanted},
    )
    return {stream_id: owner_id for stream_id, owner_id in rows}


def _active_subscriptions(conn: Connection) -> list[Subscription]:
    rows = conn.execute(
        text(
            "SELECT id, owner_id, scope, event_types, created_at FROM webhooks.subscriptions "
            "WHERE status = 'active'"
        )
    )
    return [Subscription(i, o, s, frozenset(t), c) for i, o, s, t, c in rows]

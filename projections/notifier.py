"""The notifier: consumes `spaktok.notifications` and pushes each notice to its recipients' devices.

It runs in the projector process, on the projectors' consume loop (`ProjectionRunner`), rather than
as a Faust agent in the worker: it needs Postgres (devices, preferences, delivery records) and an
HTTP client, which the worker has neither of and must not wait on (processors are thin and never
call HTTP; the Faust loop is the system's throughput ceiling). See docs/notifications.md.

Delivery is at least once, and once per (notice, recipient, device) within reason: every push is
recorded in `notify.deliveries` right after it is sent, in its own transaction, and a notice seen
again (a replayed batch after a crash, a rebalance) skips what is recorded. Only a crash between
a send and its record sends that one push again. The offsets live in `notify.checkpoints`, fenced
like the projectors' (the batch's checkpoint rows are locked while it is handled), so two notifier
processes never handle the same records at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from sqlalchemy import Connection, Engine, text

from spaktok.infra import topics
from spaktok.infra.kafka import EventProducer
from spaktok.infra.push import Device, Provider, PushResult, build_provider
from spaktok.projections.notices import (
    NOTICE_WIRE_NAMES,
    Notice,
    Preferences,
    PushMessage,
    is_user,
    message_for,
    push_recipients,
)
from spaktok.projections.runner import BACKGROUND_LINGER_S, ProjectionRunner, Record, highest_offsets
from spaktok.settings import Settings

log = logging.getLogger(__name__)


class Notifier:
    """A `Projector` whose "rows" are pushes; `apply` answers how many it sent."""

    name = "notifier"

    def __init__(self, engine: Engine, provider: Provider, attempts: int = 3, backoff_s: float = 0.5) -> None:
        self.engine = engine
        self.provider = provider
        self.attempts = attempts
        self.backoff_s = backoff_s

    def checkpoints(self) -> dict[tuple[str, int], int]:
        with self.engine.connect() as conn:
            rows = conn.execute(text('SELECT topic, "partition", "offset" FROM notify.checkpoints'))
            return {(topic, partition): offset for topic, partition, offset in rows}

    def apply(self, records: list[Record], skipped: dict[tuple[str, int], int]) -> int:
        """Deliver the batch's notices, then move the checkpoints, holding their rows locked."""
        sent = 0
        with self.engine.begin() as conn:
            for record in _claim(conn, records):
                if record.envelope.type in NOTICE_WIRE_NAMES:
                    notice = record.envelope.event()
                    assert isinstance(notice, Notice)
                    sent += self.deliver(notice)
            offsets = highest_offsets(records, skipped)
            if offsets:
                conn.execute(
                    text(
                        'INSERT INTO notify.checkpoints (topic, "partition", "offset") VALUES (:t, :p, :o) '
                        'ON CONFLICT (topic, "partition") DO UPDATE SET '
                        '"offset" = GREATEST(notify.checkpoints."offset", EXCLUDED."offset")'
                    ),
                    [{"t": t, "p": p, "o": o} for (t, p), o in offsets.items()],
                )
        return sent

    def deliver(self, notice: Notice) -> int:
        """Push `notice` to every device of every recipient who wants it and has not had it."""
        users = [r for r in dict.fromkeys(notice.recipients) if is_user(r)]
        if not users:
            return 0
        with self.engine.connect() as conn:
            wanted = push_recipients(notice, load_preferences(conn, users))
            devices = load_devices(conn, wanted, self.provider.platforms)
            done = delivered(conn, notice.notification_id, wanted)
        message = message_for(notice)
        sent = 0
        for device in devices:
            if (device.user_id, device.device_id) in done:
                continue
            result = self._send(device, message)
            self._record(notice.notification_id, device, result)
            sent += result.status == "sent"
        return sent

    def _send(self, device: Device, message: PushMessage) -> PushResult:
        """A failed send (service unavailable, network) is tried again with a growing pause, up to
        `attempts` times; a dead token is not."""
        result = self.provider.send(device, message)
        for attempt in range(1, self.attempts):
            if result.status != "failed":
                break
            time.sleep(self.backoff_s * 2 ** (attempt - 1))
            result = self.provider.send(device, message)
        return result

    def _record(self, notification_id: str, device: Device, result: PushResult) -> None:
        """At once and on its own: a crash after this never sends this push again."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO notify.deliveries (notification_id, recipient_id, device_id, platform, "
                    "status, detail, delivered_at) VALUES (:n, :u, :d, :p, :s, :x, now()) "
                    "ON CONFLICT DO NOTHING"
                ),
                {
                    "n": notification_id,
                    "u": device.user_id,
                    "d": device.device_id,
                    "p": device.platform,
                    "s": result.status,
                    "x": result.detail[:500],
                },
            )
            if result.status == "invalid-token":  # the app was removed: the token is dead
                conn.execute(text("DELETE FROM notify.devices WHERE device_id = :d"), {"d": device.device_id})
        if result.status == "failed":
            log.warning("push %s to device %s failed: %s", notification_id, device.device_id, result.detail)


def _claim(conn: Connection, records: list[Record]) -> list[Record]:
    """The records no other notifier process handled: lock the batch's checkpoint rows, then drop
    what they already cover (the projectors' fence, `postgres.claim_records`, on our own table)."""
    parts = sorted({(r.topic, r.partition) for r in records})
    if not parts:
        return records
    conn.execute(
        text(
            'INSERT INTO notify.checkpoints (topic, "partition", "offset") VALUES (:t, :p, -1) '
            "ON CONFLICT DO NOTHING"
        ),
        [{"t": t, "p": p} for t, p in parts],
    )
    rows = conn.execute(
        text(
            'SELECT topic, "partition", "offset" FROM notify.checkpoints WHERE topic = ANY(:t) '
            'AND "partition" = ANY(:p) ORDER BY topic, "partition" FOR UPDATE'
        ),
        {"t": sorted({t for t, _ in parts}), "p": sorted({p for _, p in parts})},
    )
    applied = {(topic, partition): offset for topic, partition, offset in rows}
    return [r for r in records if r.offset > applied.get((r.topic, r.partition), -1)]


def load_preferences(conn: Connection, users: Iterable[str]) -> dict[str, Preferences]:
    rows = conn.execute(
        text("SELECT user_id, muted_channels, muted_kinds FROM notify.preferences WHERE user_id = ANY(:u)"),
        {"u": list(users)},
    )
    return {u: Preferences(frozenset(channels), frozenset(kinds)) for u, channels, kinds in rows}


def load_devices(conn: Connection, users: list[str], platforms: tuple[str, ...]) -> list[Device]:
    """The users' devices on `platforms` (a `dev` token is never sent to FCM)."""
    if not users:
        return []
    rows = conn.execute(
        text(
            "SELECT device_id, user_id, platform, token FROM notify.devices WHERE user_id = ANY(:u) "
            "AND platform = ANY(:p) ORDER BY user_id, device_id"
        ),
        {"u": users, "p": list(platforms)},
    )
    return [Device(*row) for row in rows]


def delivered(conn: Connection, notification_id: str, users: list[str]) -> set[tuple[str, str]]:
    """(recipient, device) pairs this notice already went to."""
    if not users:
        return set()
    rows = conn.execute(
        text(
            "SELECT recipient_id, device_id FROM notify.deliveries WHERE notification_id = :n "
            "AND recipient_id = ANY(:u)"
        ),
        {"n": notification_id, "u": users},
    )
    return {(recipient, device) for recipient, device in rows}


def notifier_runner(settings: Settings, engine: Engine, producer: EventProducer) -> ProjectionRunner:
    """The notifier on the projectors' consume loop, reading the notices topic only. Raises
    `ProviderNotConfigured` when the chosen push provider lacks its credentials."""
    return ProjectionRunner(
        settings,
        Notifier(engine, build_provider(settings), attempts=settings.notify_send_attempts),
        producer,
        batch_size=500,
        linger_s=BACKGROUND_LINGER_S,  # a push is not awaited to the millisecond
        subscribe=[topics.NOTIFICATIONS.name],
    )

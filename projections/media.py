"""Postgres read model of a stream's media: ingest status, key generation, recordings."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from sqlalchemy import Connection, text

from spaktok.events.envelope import Envelope
from spaktok.events.media import (
    IngestHealthSampled,
    IngestStarted,
    IngestStopped,
    RecordingDeleted,
    RecordingReady,
    StreamKeyRotated,
)


def _key_rotated(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, StreamKeyRotated)
    conn.execute(
        text("UPDATE live_streams SET key_generation = :g, last_updated = :at WHERE stream_id = :s"),
        {"s": env.aggregate_id, "g": e.generation, "at": e.rotated_at},
    )
    return 1


def _ingest(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, IngestStarted | IngestStopped)
    status, at = ("live", e.started_at) if isinstance(e, IngestStarted) else ("reconnecting", e.stopped_at)
    conn.execute(
        text(
            "UPDATE live_streams SET ingest_status = :st, ingest_changed_at = :at, last_updated = :at "
            "WHERE stream_id = :s AND status = 'live'"
        ),
        {"s": env.aggregate_id, "st": status, "at": at},
    )
    return 1


def _recording_ready(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, RecordingReady)
    conn.execute(
        text(
            """INSERT INTO stream_recordings (recording_id, stream_id, path, thumbnail, duration, size_bytes,
                ready_at) VALUES (:r, :s, :p, :t, :d, :b, :at) ON CONFLICT (recording_id) DO NOTHING"""
        ),
        {
            "r": e.recording_id,
            "s": env.aggregate_id,
            "p": e.path,
            "t": e.thumbnail,
            "d": e.duration,
            "b": e.size_bytes,
            "at": e.ready_at,
        },
    )
    # the document points at the endpoint that signs a fresh URL: a signed one would expire in the row
    conn.execute(
        text("UPDATE live_streams SET recording_url = :u WHERE stream_id = :s"),
        {"s": env.aggregate_id, "u": f"/v1/streams/{env.aggregate_id}/replay"},
    )
    return 2


def _recording_deleted(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, RecordingDeleted)
    conn.execute(
        text("UPDATE stream_recordings SET deleted_at = :at WHERE recording_id = :r AND deleted_at IS NULL"),
        {"r": e.recording_id, "at": e.deleted_at},
    )
    conn.execute(
        text(
            "UPDATE live_streams SET recording_url = NULL WHERE stream_id = :s AND NOT EXISTS "
            "(SELECT 1 FROM stream_recordings WHERE stream_id = :s AND deleted_at IS NULL)"
        ),
        {"s": env.aggregate_id},
    )
    return 2


def _health(conn: Connection, env: Envelope) -> int:
    """The latest sample replaces the last; the document's `bitrate` is the ingest's."""
    e = env.event()
    assert isinstance(e, IngestHealthSampled)
    sample = e.model_dump(mode="json", exclude={"type"})
    conn.execute(
        text(
            "INSERT INTO stream_health (stream_id, sample, sampled_at) VALUES (:s, CAST(:j AS jsonb), :at) "
            "ON CONFLICT (stream_id) DO UPDATE SET sample = EXCLUDED.sample, "
            "sampled_at = EXCLUDED.sampled_at "
            "WHERE stream_health.sampled_at <= EXCLUDED.sampled_at"
        ),
        {"s": env.aggregate_id, "j": orjson.dumps(sample).decode(), "at": e.sampled_at},
    )
    conn.execute(
        text(
            "UPDATE live_streams SET bitrate = :kbps, live_thumbnail = live_thumbnail OR :thumb "
            "WHERE stream_id = :s AND status = 'live'"
        ),
        {"s": env.aggregate_id, "kbps": e.bitrate_kbps, "thumb": e.thumbnail},
    )
    return 2


HANDLERS: dict[str, Callable[[Connection, Envelope], int]] = {
    "streams.StreamKeyRotated": _key_rotated,
    "streams.IngestStarted": _ingest,
    "streams.IngestStopped": _ingest,
    "streams.RecordingReady": _recording_ready,
    "streams.RecordingDeleted": _recording_deleted,
    "streams.IngestHealthSampled": _health,
}

"""Read queries for replays, next to the projection that owns `stream_recordings`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from spaktok.projections.streams_views import camel


def recordings_of(engine: Engine, stream_id: str) -> list[dict[str, Any]]:
    """The stream's recordings that still exist, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT recording_id, path, thumbnail, duration, ready_at FROM stream_recordings "
                "WHERE stream_id = :s AND deleted_at IS NULL ORDER BY ready_at, recording_id"
            ),
            {"s": stream_id},
        ).all()
    return [{**row._mapping, "ready_at": row.ready_at.isoformat().replace("+00:00", "Z")} for row in rows]


def health_of(engine: Engine, stream_id: str) -> dict[str, Any] | None:
    """The stream's latest health sample (camelCase, as the API shows it), or None."""
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT sample, sampled_at FROM stream_health WHERE stream_id = :s"), {"s": stream_id}
        ).first()
    if row is None:
        return None
    sample = {camel(k): v for k, v in row.sample.items() if k != "sampled_at"}
    return {**sample, "sampledAt": row.sampled_at}

"""Read queries for replays, next to the projection that owns `stream_recordings`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text


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

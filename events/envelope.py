"""The envelope every event travels in (DESIGN §2) and its JSON (de)serialisation."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict

from spaktok.events.base import EVENT_TYPES, Event, upcast

# Namespace for deterministic ids: uuid5(NAMESPACE, f"{command_id}:{index}").
NAMESPACE = uuid.UUID("5b1f7e0c-9d3a-4c1e-8f5e-7a2b6c4d9e01")
TYPE_HEADER = "event-type"


_NAMESPACE_BYTES = NAMESPACE.bytes


def derive_id(*parts: object) -> str:
    """A stable id from its parts: the same command always yields the same event ids.

    `uuid.uuid5(NAMESPACE, name)` computed without its UUID object (a third of a comment's cost
    in the worker went to two of these): SHA-1 of namespace and name, version 5 and the RFC 4122
    variant set, formatted 8-4-4-4-12. tests/unit/test_envelope.py holds it equal to uuid5."""
    name = ":".join(p if isinstance(p, str) else str(p) for p in parts)
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])  # noqa: S324 - uuid5's hash
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Envelope(BaseModel):
    """Metadata around one event payload; `sequence` is gap-free per aggregate."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    type: str
    schema_version: int
    aggregate_type: str
    aggregate_id: str
    sequence: int
    occurred_at: datetime
    causation_id: str
    correlation_id: str
    actor_id: str
    payload: dict[str, Any]

    def event(self) -> Event:
        """The typed event, upcast from older schema versions if needed."""
        cls = EVENT_TYPES[self.type]
        payload = upcast(self.type, self.schema_version, dict(self.payload))
        return cls.model_validate({**payload, "type": self.type})

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


def seal(
    event: Event,
    *,
    aggregate_id: str,
    sequence: int,
    command_id: str,
    index: int | str,
    correlation_id: str,
    actor_id: str,
    occurred_at: datetime,
) -> Envelope:
    """Wrap a decided event; its id derives from the command and the event's index."""
    payload = event.model_dump(mode="json", exclude={"type"})
    return Envelope(
        event_id=derive_id(command_id, index),
        type=event.type,
        schema_version=type(event).schema_version,
        aggregate_type=type(event).aggregate_type,
        aggregate_id=aggregate_id,
        sequence=sequence,
        occurred_at=occurred_at,
        causation_id=command_id,
        correlation_id=correlation_id,
        actor_id=actor_id,
        payload=payload,
    )


def decode_envelope(raw: bytes) -> Envelope:
    """Parse an envelope; raises ValueError (incl. pydantic's) on anything malformed or unknown."""
    data = orjson.loads(raw)
    envelope = Envelope.model_validate(data)
    if envelope.type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {envelope.type!r}")
    return envelope


def decode_projectable(raw: bytes) -> Envelope:
    """`decode_envelope`, with the payload validated against its event type (upcast first): what a
    projector accepts. Every projector and replay checks the same way, so a record one store parks
    is parked by all; unchecked, ClickHouse stored a payload Postgres refused, under the sequence
    of the aggregate's next real event, and then dropped that event as a duplicate."""
    envelope = decode_envelope(raw)
    envelope.event()
    return envelope


def utcnow() -> datetime:
    return datetime.now(UTC)

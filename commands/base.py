"""Base class of every command, the command registry and wire (de)serialisation."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

from spaktok.events.base import Event


class Command(BaseModel):
    """An intent in the imperative. `command_id` is the idempotency key: same id, one effect."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    command_id: str = Field(min_length=1, max_length=128)
    correlation_id: str = ""
    issued_at: datetime
    actor_id: str = Field(min_length=1, max_length=128)

    aggregate_type: ClassVar[str] = ""

    @property
    def aggregate_id(self) -> str:
        raise NotImplementedError

    @property
    def correlation(self) -> str:
        return self.correlation_id or self.command_id

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


COMMAND_TYPES: dict[str, type[Command]] = {}


def register_command(cls: type[Command]) -> type[Command]:
    """Class decorator: make a command type decodable by its wire name."""
    wire_name = cls.model_fields["type"].default
    if not isinstance(wire_name, str) or "." not in wire_name:
        raise TypeError(f"{cls.__name__} needs a literal `type` default like 'streams.StartStream'")
    COMMAND_TYPES[wire_name] = cls
    return cls


def decode_command(raw: bytes) -> Command:
    """Parse a command; raises ValueError (incl. pydantic's) when malformed or of unknown type."""
    return command_from(orjson.loads(raw))


def command_from(data: Any) -> Command:
    """The command a decoded JSON value describes; raises ValueError like `decode_command`."""
    if not isinstance(data, dict):
        raise ValueError("a command must be a JSON object")
    cls = COMMAND_TYPES.get(str(data.get("type")))
    if cls is None:
        raise ValueError(f"unknown command type {data.get('type')!r}")
    return cls.model_validate(data)


class Rejection(Exception):
    """Raised inside a decider to refuse a command; becomes a *CommandRejected event."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


Decision = list[Event]

"""Base class of every event payload and the registry that maps wire names to models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class Event(BaseModel):
    """A fact in the past tense. `type` is an explicit wire literal, never the class path."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    schema_version: ClassVar[int] = 1
    aggregate_type: ClassVar[str] = ""
    # a notice is a decided fact that changes no aggregate state (e.g. "these users were notified"):
    # sealed with sequence 0, so consumers make it idempotent by its own ids, not by sequence
    notice: ClassVar[bool] = False
    # a refusal of some members of an edge batch (e.g. a batch of joins), decided beside the others'
    # events: sealed with sequence 0 on the aggregate's own topic, like a whole command's refusal,
    # and it changes nothing (every consumer drops sequence 0 or keeps it as the audit's record)
    refusal: ClassVar[bool] = False


EVENT_TYPES: dict[str, type[Event]] = {}

# (type, from_version) -> function turning a payload of that version into the next version
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def register_event(cls: type[Event]) -> type[Event]:
    """Class decorator: make an event type decodable by its wire name."""
    wire_name = cls.model_fields["type"].default
    if not isinstance(wire_name, str) or "." not in wire_name:
        raise TypeError(f"{cls.__name__} needs a literal `type` default like 'streams.StreamStarted'")
    if wire_name in EVENT_TYPES and EVENT_TYPES[wire_name] is not cls:
        raise TypeError(f"event type {wire_name!r} registered twice")
    EVENT_TYPES[wire_name] = cls
    return cls


def register_upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Decorator: register a function that lifts `event_type` payloads from `from_version` by one."""

    def wrap(fn: Upcaster) -> Upcaster:
        UPCASTERS[(event_type, from_version)] = fn
        return fn

    return wrap


def upcast(event_type: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
    """Lift a stored payload to the current schema version, one registered step at a time."""
    current = EVENT_TYPES[event_type].schema_version
    while version < current:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise ValueError(f"no upcaster for {event_type} v{version} -> v{version + 1}")
        payload = step(payload)
        version += 1
    return payload

"""The broadcaster decider: a user holds at most one live stream at a time."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from spaktok.commands.base import Command, Rejection
from spaktok.commands.broadcasters import ReleaseBroadcast, StartStream
from spaktok.events.base import Event
from spaktok.events.broadcasters import BroadcastClaimed, BroadcastReleased


@dataclass(frozen=True, slots=True)
class BroadcasterState:
    active_stream_id: str | None = None
    version: int = 0

    def stats(self) -> dict[str, Any]:
        return {"activeStreamId": self.active_stream_id}

    def to_dict(self) -> dict[str, Any]:
        return {"active_stream_id": self.active_stream_id, "version": self.version}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BroadcasterState:
        return cls(**data)


def decide(command: Command, state: BroadcasterState) -> list[Event]:
    match command:
        case StartStream():
            if state.active_stream_id is not None:
                raise Rejection(
                    "stream-already-active",
                    f"you are already live in stream {state.active_stream_id}; end it first",
                )
            return [BroadcastClaimed(stream_id=command.stream_id, claimed_at=command.issued_at)]
        case ReleaseBroadcast():
            if state.active_stream_id != command.stream_id:
                return []  # an old stream's release arriving late changes nothing
            return [BroadcastReleased(stream_id=command.stream_id, released_at=command.issued_at)]
    raise Rejection("unsupported-command", f"the broadcaster aggregate does not handle {command.type}")


def evolve(state: BroadcasterState, event: Event) -> BroadcasterState:
    version = state.version + 1
    match event:
        case BroadcastClaimed():
            return replace(state, version=version, active_stream_id=event.stream_id)
        case BroadcastReleased():
            return replace(state, version=version, active_stream_id=None)
    return replace(state, version=version)

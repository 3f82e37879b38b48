"""What every context of the stream shares: the shapes of its rules and folds, and the refusals of a
command to a stream that does not exist or has ended."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spaktok.commands.base import Command, Rejection
from spaktok.commands.stream.state import StreamState
from spaktok.events.base import Event

# a context's rule for one command type: the events it yields (raises `Rejection` when refused)
Decider = Callable[[Any, StreamState], list[Event]]
Deciders = dict[type[Command], Decider]


def require_stream(state: StreamState) -> None:
    """Refuses a command to a stream never opened (an ended one still answers)."""
    if state.status == "none":
        raise Rejection("stream-not-found", "no stream with this id")


def require_live(state: StreamState) -> None:
    """Refuses a command that only a live stream takes."""
    require_stream(state)
    if state.status != "live":
        raise Rejection("stream-not-live", "the stream has ended")

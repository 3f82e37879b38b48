"""The stream's `evolve`: each event goes to the contexts that fold it, found by its type.

Most events belong to one context; a few change two (a heartbeat moves viewers and tells that the
broadcaster is alive; a ban takes the banned off stage). The registry below is the one place that
says which, so a context's fold never reaches into another's part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from spaktok.commands.stream import audience, chat, gifting, guests, lifecycle, media, moderation, pk
from spaktok.commands.stream.state import PARTS, StreamState, copy_with
from spaktok.events.base import Event

# part of the StreamState -> how its context's events change it
CONTEXT_FOLDS: dict[str, Mapping[type[Event], Callable[[Any, Any], Any]]] = {
    "audience": audience.FOLDS,
    "chat": chat.FOLDS,
    "moderation": moderation.FOLDS,
    "stage": guests.FOLDS,
    "gifting": gifting.FOLDS,
    "media": media.FOLDS,
    "pk": pk.FOLDS,
}
assert CONTEXT_FOLDS.keys() == PARTS.keys(), "every part of the state has its folds"


def _routes() -> dict[type[Event], list[tuple[str, Callable[[Any, Any], Any]]]]:
    """Event type -> (part, fold) for each context that folds it."""
    routes: dict[type[Event], list[tuple[str, Callable[[Any, Any], Any]]]] = {}
    for part, folds in CONTEXT_FOLDS.items():
        for event_type, fold in folds.items():
            routes.setdefault(event_type, []).append((part, fold))
    return routes


_ROUTES = _routes()


def evolve(state: StreamState, event: Event) -> StreamState:
    """Apply one event to a thawed state (`storage.thaw`): the contexts change their maps in place
    (copying a 100k-viewer map per join would make a mega-stream quadratic), the rest is replaced.

    Rejections and events this aggregate does not fold still take a sequence number.
    """
    changes: dict[str, Any] = {"version": state.version + 1}
    for part, fold in _ROUTES.get(type(event), ()):
        changes[part] = fold(getattr(state, part), event)
    own = lifecycle.FOLDS.get(type(event))
    if own is not None:
        changes.update(own(state, event))
    return copy_with(state, **changes)

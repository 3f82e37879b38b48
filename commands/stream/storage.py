"""The stream's stored form (`split`/`join`) and `thaw`, the copy `evolve` may change in place."""

from __future__ import annotations

from typing import Any

from spaktok.commands.parted_map import PartedMap
from spaktok.commands.stream.state import StreamState, copy_with

BULKY = frozenset({"viewers", "watch_time", "recent_like_ids", "gifters", "combos"})


def split(state: StreamState) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored form: scalars in the main record; viewers, watch times, gifters, combos and like
    ids in parts (`commands.parts`).

    The per-user maps are PartedMaps: their parts are handed over as they are, so a part no batch
    wrote since the last store is the very object the store holds and costs nothing, and a batch of
    joins on a 1 M-viewer stream rewrites the few parts it touched (before: every part re-cut and
    re-serialised, ~4.7 s a batch at 1 M viewers). Each map's parts go as one group under the map's
    name, so a map the batch did not touch (the viewers, for a fold of likes) costs the store
    nothing per part either.
    """
    main = state.to_dict(exclude=BULKY)
    audience, gifting = state.audience, state.gifting
    contents: dict[str, Any] = {
        "viewers": audience.viewers.parts("viewers"),
        "watch": audience.watch_time.parts("watch"),
        "gifters": gifting.gifters.parts("gifters"),
        "combos": gifting.combos.parts("combos"),
    }
    if state.chat.recent_like_ids:
        contents["likes"] = list(state.chat.recent_like_ids)
    return main, contents


def join(main: dict[str, Any], contents: dict[str, Any]) -> StreamState:
    return StreamState.from_dict(
        {
            **main,
            "viewers": PartedMap.from_parts(contents, "viewers"),
            "watch_time": PartedMap.from_parts(contents, "watch"),
            "recent_like_ids": contents.get("likes", []),
            # "gifters" and "combos": one part each, as stored before they were PartedMaps
            "gifters": PartedMap.from_parts(contents, "gifters"),
            "combos": PartedMap.from_parts(contents, "combos"),
        }
    )


def thaw(state: StreamState) -> StreamState:
    """A copy whose collections belong to the caller, who may then `evolve` it.

    `evolve` updates the collections in place (copying a 100k-viewer map for every join would make
    a mega-stream quadratic); the worker thaws each aggregate once per batch, so the state it has
    stored and cached is never touched. The per-user maps are not copied at all: a thawed
    PartedMap copies a part when the batch first writes to it.
    """
    audience, chat, moderation, gifting = state.audience, state.chat, state.moderation, state.gifting
    return copy_with(
        state,
        audience=copy_with(
            audience, viewers=audience.viewers.thawed(), watch_time=audience.watch_time.thawed()
        ),
        chat=copy_with(
            chat, last_comment_ms=dict(chat.last_comment_ms), recent_like_ids=dict(chat.recent_like_ids)
        ),
        moderation=copy_with(
            moderation,
            banned=dict(moderation.banned),
            muted_until=dict(moderation.muted_until),
            reporters=dict(moderation.reporters),
            reported_by=dict(moderation.reported_by),
        ),
        gifting=copy_with(gifting, gifters=gifting.gifters.thawed(), combos=gifting.combos.thawed()),
    )

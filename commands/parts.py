"""Per-user maps of a state stored in parts, so no stored record grows with an audience.

A stream's viewers, watch times and gifters, an audience shard's followers and a schedule's reminder
holders are maps keyed by user id that can reach hundreds of thousands of entries. Stored as one
record each, they outgrow what a producer request holds (4 MiB) and are rewritten whole by every
change. `by_user` cuts such a map into parts of about `USERS_PER_PART` users by a stable hash of the
user id (a power-of-two count, so a growing map re-splits rarely); the worker then rewrites only the
parts a batch changed (`AggregateRunner._store`), and `joined` puts the map back together.
`commands/parted_map.py` keeps such a map in its parts while the worker changes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

USERS_PER_PART = 2_000
MAX_PARTS = 256


def part_count(users: int) -> int:
    """A power of two (1 part up to 2,000 users), at most MAX_PARTS."""
    parts = 1
    while parts * USERS_PER_PART < users and parts < MAX_PARTS:
        parts *= 2
    return parts


@lru_cache(maxsize=1 << 20)
def user_hash(user_id: str) -> int:
    # stable across processes (Python's hash() is not); cached: every store assigns every user
    return int.from_bytes(hashlib.blake2b(user_id.encode(), digest_size=4).digest(), "big")


def by_user(name: str, column: dict[str, Any], count: int | None = None) -> dict[str, dict[str, Any]]:
    """`column` in `count` parts (by default as many as its size calls for), named
    `<name>-<count>-<i>`; an empty map has no parts."""
    if not column:
        return {}
    count = part_count(len(column)) if count is None else count
    if count == 1:  # most maps: no hashing at all
        return {f"{name}-1-0": column}
    shards: list[dict[str, Any]] = [{} for _ in range(count)]
    for user_id, value in column.items():
        shards[user_hash(user_id) % count][user_id] = value
    return {f"{name}-{count}-{i}": shard for i, shard in enumerate(shards) if shard}


def joined(contents: dict[str, Any], name: str) -> dict[str, Any]:
    """The map `by_user` split into the parts named after `name` (or stored whole as `name`)."""
    column: dict[str, Any] = {}
    for part, content in contents.items():
        if part == name or part.startswith(f"{name}-"):
            column.update(content)
    return column


def inline_or_split(main: dict[str, Any], name: str, column: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A map that fits one part stays in the main record (`main[name]`: one record per change, as
    if it were never split); a bigger one goes to parts, and `main` leaves it out."""
    if part_count(len(column)) == 1:
        main[name] = column
        return {}
    main.pop(name, None)
    return by_user(name, column)


def inline_or_joined(main: dict[str, Any], contents: dict[str, Any], name: str) -> dict[str, Any]:
    """The map `inline_or_split` stored."""
    return main[name] if name in main else joined(contents, name)


class PartGroup(dict[str, dict[str, Any]]):
    """A map's stored parts by name, as `PartedMap.parts` answers them. A spec's `split` hands it
    over under the map's name; the worker's store (`processors/storage.py`) recognises a group it
    stored before by identity and names its parts again without looking at any of them."""

    __slots__ = ()


def flattened(contents: Mapping[str, Any]) -> dict[str, Any]:
    """A `split`'s contents as a load hands them to `join`: every part by its own name, the parts
    of each `PartGroup` among them."""
    flat: dict[str, Any] = {}
    for name, content in contents.items():
        if isinstance(content, PartGroup):
            flat.update(content)
        else:
            flat[name] = content
    return flat

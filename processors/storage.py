"""How an aggregate lives in the worker's table: a main record, parts, and a decoded cache.

The main record holds the state's small fields, the newest entries of its command memory
(`processors.memory`), the names and versions of its parts, and the command partition it is written
from. Parts hold what grows: a big state's per-user maps (the spec's `split`) and the memory's
segments. A changed part is written under a new key (`part_key` with a new version), never over the
old one, and the main record, written last, names the versions it uses: a crash before the main
record leaves the new parts unreferenced and the stored aggregate exactly as it was (DESIGN §3).
Parts a new main record no longer names are deleted.

Unchanged parts are not rewritten: a part whose content is the very object stored (or loaded) last
is unchanged without being serialised. Stored objects are never changed in place (`thaw` and
`Memory.copy` give the batch its own copies of what it may change), so a batch pays for the parts
it changed and nothing for the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from spaktok.processors.memory import Memory, is_segment

DECODED_KEPT = 50_000  # aggregates whose decoded state is cached in the worker process


class TableLike(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...
    def put(self, key: str, value: bytes, partition: int) -> None:
        """Store `value` and write its changelog record to `partition` (the command's partition)."""
        ...

    def items(self) -> Iterable[tuple[str, bytes]]: ...

    def delete(self, key: str, partition: int) -> None:
        """Remove `key` and write its tombstone to `partition`."""
        ...


def part_key(aggregate_id: str, name: str, version: int) -> str:
    # NUL cannot occur in aggregate ids: part keys never collide with aggregates or positions
    return f"{aggregate_id}\x00{name}\x00{version}"


@dataclass(frozen=True, slots=True)
class StoredPart:
    """One part as the table holds it, and the object it was stored from or loaded as: while the
    aggregate still holds that very object, the part is unchanged."""

    version: int
    raw: bytes
    content: Any


@dataclass(slots=True)
class Held:
    """An aggregate while a batch is decided: loaded once, stored once."""

    state: Any
    memory: Memory
    partition: int
    parts: dict[str, StoredPart] = field(default_factory=dict)  # as stored, by name
    changed: bool = False
    top: int = 0  # above every part version stored (the next store's parts go at least here)


@dataclass(frozen=True, slots=True)
class Decoded:
    """What the table holds for one aggregate, decoded; valid while `stored` is the table's object."""

    stored: bytes
    state: Any
    memory: Memory
    parts: dict[str, StoredPart]
    partition: int | None = None  # the command partition it is stored from (None: not yet kept)
    top: int = 0  # above every version in `parts`


class AggregateStore:
    """Loads and stores one kind of aggregate in a table, caching the decoded form."""

    def __init__(self, spec: Any, table: TableLike, memory: int) -> None:
        self.spec = spec
        self.table = table
        self.memory = memory
        # decoded form of the value last stored per aggregate: valid while the table still holds
        # that very bytes object (recovery after a rebalance replaces it, invalidating the entry)
        self._decoded: dict[str, Decoded] = {}

    def hold(self, aggregate_id: str, partition: int) -> Held:
        """The aggregate to decide a batch against: a copy the batch may change."""
        stored = self.table.get(aggregate_id)
        if stored is None:
            return Held(self.spec.initial(), Memory(), partition)
        decoded = self.decoded(aggregate_id, stored)
        # thawed: evolve may change the copy in place; the cached state stays as stored
        return Held(
            self.spec.thaw(decoded.state),
            decoded.memory.copy(),
            partition if decoded.partition is None else decoded.partition,
            dict(decoded.parts),
            top=decoded.top,
        )

    def decoded(self, aggregate_id: str, stored: bytes) -> Decoded:
        cached = self._decoded.get(aggregate_id)
        if cached is not None and cached.stored is stored:
            return cached
        data = orjson.loads(stored)
        parts: dict[str, StoredPart] = {}
        for name, version in data.get("parts", {}).items():
            raw = self.table.get(part_key(aggregate_id, name, version))
            if raw is None:
                raise RuntimeError(f"part {name}@{version} of {aggregate_id} is missing from the table")
            parts[name] = StoredPart(version, raw, orjson.loads(raw))
        segments = {name: part.content for name, part in parts.items() if is_segment(name)}
        contents = {name: part.content for name, part in parts.items() if not is_segment(name)}
        if self.spec.join is not None and (contents or "parts" in data):
            state = self.spec.join(data["state"], contents)
        else:
            state = self.spec.load(data["state"])
        memory = Memory.loaded(data["memory"], segments, data.get("remembered"))
        top = max((part.version for part in parts.values()), default=-1) + 1
        decoded = Decoded(stored, state, memory, parts, data.get("partition"), top)
        self._remember(aggregate_id, decoded)
        return decoded

    def forget(self) -> None:
        """Drop the decoded cache (tests: as if the worker process restarted)."""
        self._decoded.clear()

    def _remember(self, aggregate_id: str, decoded: Decoded) -> None:
        if len(self._decoded) >= DECODED_KEPT:
            self._decoded.clear()
        self._decoded[aggregate_id] = decoded

    def store(self, aggregate_id: str, aggregate: Held) -> None:
        """The state's parts and the memory's segments first, the main record naming them last."""
        memory = aggregate.memory
        memory.compacted(self.memory)
        state, partition = aggregate.state, aggregate.partition
        # above every part it names now: a changed part never overwrites a part a record names
        version = max(state.version, aggregate.top)
        contents: dict[str, Any] = dict(memory.segments)
        if self.spec.split is None:
            main: Any = state.to_dict()
        else:
            main, state_parts = self.spec.split(state)
            contents.update(state_parts)
        # a big stream names ~1,000 parts: the unchanged ones (the very objects stored) cost one
        # lookup each, and only the others are serialised
        held = aggregate.parts
        parts: dict[str, StoredPart] = {}
        for name, content in contents.items():
            previous = held.get(name)
            if previous is not None and previous.content is content:
                parts[name] = previous
            else:
                key = part_key(aggregate_id, name, version)
                parts[name] = self._written(previous, key, version, partition, content)
        record: dict[str, Any] = {
            "state": main,
            "memory": memory.inline,
            "remembered": memory.counted,
            "partition": partition,
        }
        if parts:
            record["parts"] = {name: part.version for name, part in parts.items()}
        value = orjson.dumps(record)
        self.table.put(aggregate_id, value, partition)
        for name, part in held.items():
            kept = parts.get(name)
            if kept is not part and (kept is None or kept.version != part.version):
                self.table.delete(part_key(aggregate_id, name, part.version), partition)
        aggregate.parts, aggregate.top = parts, max(aggregate.top, version + 1)
        self._remember(aggregate_id, Decoded(value, state, memory, parts, partition, aggregate.top))

    def _written(
        self, previous: StoredPart | None, key: str, version: int, partition: int, content: Any
    ) -> StoredPart:
        """A part that is not the object stored: written as `key` (at `version`), unless its bytes
        are the ones stored."""
        raw = orjson.dumps(content)
        if previous is not None and previous.raw == raw:
            return StoredPart(previous.version, previous.raw, content)
        self.table.put(key, raw, partition)
        return StoredPart(version, raw, content)

    def select(self, wanted: Any) -> list[str]:
        """Aggregates in the table whose state `wanted` picks (decoded once, then by identity)."""
        ids = []
        for aggregate_id, stored in self.table.items():
            if "\x00" in aggregate_id:
                continue  # bookkeeping keys (command positions) and parts
            if wanted(self.decoded(aggregate_id, stored).state):
                ids.append(aggregate_id)
        return ids

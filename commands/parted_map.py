"""A per-user map kept in its stored parts (`commands/parts.py` cuts them) while the worker changes
it, so that neither a batch's CPU nor the bytes it stores grow with the audience."""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, MutableMapping
from typing import Any

from spaktok.commands.parts import MAX_PARTS, USERS_PER_PART, PartGroup, part_count, user_hash

FOLD_PER_CHANGE = 10  # entries a store may fold into base parts per entry it logs (see PartedMap)
LOG_SHARE = 4  # the log holds at most 1/LOG_SHARE of the map's entries; beyond, a store folds all
# entries a log segment holds at most (a store's change is cut, merges stop there): a segment is one
# record of the worker's changelog, and the log may hold a quarter of a 1 M-viewer map, 10 MB in one
# merged segment, over what a producer request may carry (a 1 M-viewer run crashed both its workers
# on a 4.6 MB segment). 8,192 viewer entries are ~330 KB, ~570 KB with uuid user ids.
SEGMENT_ENTRIES = 8_192


class PartedMap(MutableMapping[str, Any]):
    """A per-user map kept in its stored parts, with the changes since each part was last stored
    beside it (an overlay), and stored by change: a store writes the batch's changed entries as one
    log segment and folds the overlay of a few parts into them, so neither a batch's CPU nor its
    bytes grow with the audience.

    The worker thaws a state once per batch so `evolve` may change it in place without touching
    the stored and cached state. Copying a 1 M-viewer map per batch made every batch cost in
    proportion to the audience (issue #17: 4.7 s a batch of 100 joins at 1 M viewers); copying each
    part a write lands in (~4,000 users) still cost ~60 ms for 100 joins, which touch ~100 parts. So
    a part is never written: a write goes to that part's overlay (`_pending`, the part's changes
    since it was last folded, None for removed), which is small and copied on its first write in a
    batch; a read looks in the overlay, then in the part. The stored parts stay the very objects the
    store holds, which it recognises by identity as unchanged (`processors/storage.py`).

    A map stores:
    - base parts `<name>-<count>-<i>`: the part as it was last folded (maybe older than now);
    - log segments `<name>-log-<n>`: the entries stores changed (None: removed), each store's
      written once as a segment (or several: at most SEGMENT_ENTRIES entries to a segment, a
      record the broker must take) and merged with the newest older ones while those are no
      bigger (`_merge_newest`: ~log2 segments, not one per store);
    and folds parts' overlays, round-robin over the parts that have one: a folded part is stored as
    it is now. A segment every part has been folded after is deleted. How much a store folds is paid
    for by what it logs: each logged entry earns FOLD_PER_CHANGE entries of folding, and a fold
    spends the folded part's size (the credit may go below zero: a part is folded whole). So a store
    writes bytes in proportion to its change, whatever the part size, and in a steady state the
    log stays near 1/FOLD_PER_CHANGE of the map (every part is folded once in N/(FOLD_PER_CHANGE x
    c) stores of c changes; the log holds those stores' changes, up to twice that while a merged
    segment waits for the parts to be folded past its newest store). A log past 1/LOG_SHARE of the map's
    entries (a burst of big batches) is folded whole, so a load never replays more than that.
    Loading applies the segments, in order, to the overlays: entries hold whole values, so applying
    one a part already holds changes nothing.
    A map small against a store's change (a log past 1/LOG_SHARE of it: a stream's first viewers)
    is thus folded whole at every store, one record per changed part and no log; a part of a few
    hundred gifters or viewers changed by a few entries a store logs them and is folded now and then
    (before, every map under 8 parts was folded at every store: a gift rewrote its stream's whole
    gifters and combos parts, ~27 KB with 250 senders, for one entry each).

    The parts are the `by_user` cut (a power-of-two count of parts of ~USERS_PER_PART users, by
    `user_hash`); the count doubles as the map grows (every part is then new, the log is dropped)
    and never shrinks. Values are never None (None marks a removal in overlays and segments).
    """

    __slots__ = (
        "_changed",
        "_count",
        "_credit",
        "_cursor",
        "_folded_at",
        "_len",
        "_log",
        "_owned",
        "_pending",
        "_recut",
        "_seq",
        "_shards",
        "_stored",
    )

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._count = 1
        self._shards: list[dict[str, Any]] = [{}]  # base parts: never changed in place once made
        self._pending: list[dict[str, Any]] = [{}]  # per part: key -> value (None: removed) since its fold
        self._owned: set[int] = {0}  # overlays this copy may write in place (the others are shared)
        self._len = 0
        self._recut = True  # the parts were cut since the last store: every part is stored whole
        self._folded_at: list[int] = [0]  # the log sequence each base part holds everything up to
        self._changed: dict[str, Any] = {}  # key -> value (None: removed) since the last store
        self._log: dict[int, dict[str, Any]] = {}  # kept segments by sequence, oldest first
        self._seq = 0
        self._cursor = 0
        self._credit = 0  # entries the next stores may fold (below zero: owed)
        self._stored: tuple[str, PartGroup] | None = None  # parts() since the last write
        if data:
            self._reshard(part_count(len(data)), list(data.items()))

    @classmethod
    def from_parts(cls, contents: Mapping[str, Any], name: str) -> PartedMap:
        """The map stored as `name`'s parts and log, adopting base parts as they are when they are
        `by_user`'s cut (so they stay the stored objects); any other layout is re-cut."""
        log_prefix = f"{name}-log-"
        segments = sorted(
            (int(part[len(log_prefix) :]), content)
            for part, content in contents.items()
            if part.startswith(log_prefix)
        )
        stored = {
            part: content
            for part, content in contents.items()
            if (part == name or part.startswith(f"{name}-")) and not part.startswith(log_prefix)
        }
        counts = {part.split("-")[-2] for part in stored if part.count("-") >= 2}
        if not (len(counts) == 1 and all(part.count("-") >= 2 for part in stored)):
            column: dict[str, Any] = {}
            for content in stored.values():
                column.update(content)
            result = cls(column)
        else:
            result = cls._adopted(int(counts.pop()), stored)
        for seq, segment in segments:
            result._seq = seq
            result._log[seq] = segment
            for key, value in segment.items():
                if value is None:
                    result.pop(key, None)
                else:
                    result[key] = value
        result._changed = {}
        if part_count(result._len) > result._count:
            result._reshard(part_count(result._len), list(result.items()))
        return result

    @classmethod
    def _adopted(cls, count: int, stored: Mapping[str, Any]) -> PartedMap:
        result = cls()
        result._count = count
        result._shards = [{} for _ in range(count)]
        result._pending = [{} for _ in range(count)]
        result._owned = set(range(count))
        result._folded_at = [0] * count
        result._recut = False
        for part, content in stored.items():
            result._shards[int(part.rsplit("-", 1)[1])] = content
        result._len = sum(map(len, result._shards))
        return result

    def thawed(self) -> PartedMap:
        """A copy that shares every part, overlay and log segment until it writes to an overlay."""
        copy = PartedMap.__new__(PartedMap)
        copy._count, copy._len, copy._seq, copy._cursor = self._count, self._len, self._seq, self._cursor
        copy._recut, copy._credit = self._recut, self._credit
        copy._shards = list(self._shards)
        copy._pending = list(self._pending)
        copy._owned = set()
        copy._folded_at = list(self._folded_at)
        copy._changed = dict(self._changed)
        copy._log = dict(self._log)
        copy._stored = self._stored
        return copy

    def parts(self, name: str) -> PartGroup:
        """What to store now, called once per store: base parts `<name>-<count>-<i>` and log
        segments `<name>-log-<n>`, the very objects stored before where they did not change.

        A map nothing wrote to since its last store answers with that store's very dict (which the
        caller must not change): a store with no change logs nothing and has no credit to fold, so
        it would name the same parts, and naming them costs per part (~120 µs at 256 parts, which a
        hot stream's like fold paid twice per record for maps it never touched)."""
        if self._stored is not None and self._stored[0] == name:
            return self._stored[1]
        self._owned = set()  # the overlays are kept with the stored state: a later write copies first
        if self._recut:
            self._fold_all()
        else:
            self._log_and_fold()
        result = PartGroup((f"{name}-{self._count}-{i}", part) for i, part in enumerate(self._shards) if part)
        result.update((f"{name}-log-{seq}", segment) for seq, segment in self._log.items())
        self._stored = (name, result)
        return result

    def _fold(self, index: int) -> None:
        """The part as it is now, a new object: its base with its overlay applied."""
        if self._pending[index]:
            self._shards[index], self._pending[index] = self._part_now(index), {}

    def _part_now(self, index: int) -> dict[str, Any]:
        """What part `index` holds now: its base itself when it has no overlay (the caller must not
        change it), else a new dict, the base with the overlay applied."""
        part, pending = self._shards[index], self._pending[index]
        if not pending:
            return part
        merged = dict(part)
        for key, value in pending.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return merged

    def _fold_all(self) -> None:
        for index in range(self._count):
            self._fold(index)
        self._log, self._changed, self._recut, self._credit = {}, {}, False, 0
        self._folded_at = [self._seq] * self._count

    def _log_and_fold(self) -> None:
        if self._changed:
            self._credit += FOLD_PER_CHANGE * len(self._changed)
            for segment in _cut(self._changed):
                self._seq += 1
                self._log[self._seq] = segment
                self._merge_newest()
            self._changed = {}
        if sum(map(len, self._log.values())) > self._len // LOG_SHARE:
            # batches big against the map (a backlog of 10,000 joins a batch): fold every part
            # rather than let the log a load replays grow towards the map's own size
            self._fold_all()
            return
        for _ in range(self._count):  # the next parts with an overlay, round-robin, as paid for
            if self._credit <= 0:
                break
            if self._pending[self._cursor]:
                self._fold(self._cursor)
                self._credit -= len(self._shards[self._cursor])
            self._cursor = (self._cursor + 1) % self._count
        self._credit = min(self._credit, 0)  # nothing left to fold: no credit saved up for later
        for index, pending in enumerate(self._pending):
            if not pending:
                self._folded_at[index] = self._seq  # the base part is the part as it is now
        folded = min(self._folded_at)
        for seq in [seq for seq in self._log if seq <= folded]:
            del self._log[seq]

    def _merge_newest(self) -> None:
        """Merge the newest segment into the one before while that one is no bigger (a binary
        counter): the log stays a few segments, each ~twice the next, instead of one per store,
        so a store names and checks ~log2(log / change) segments, and an entry is rewritten about
        as many times. A merged segment holds the newest value per key of the stores it covers and
        takes the newest one's sequence: applied in order, segments still end at the newest values,
        and it is deleted once every part has been folded after the newest store it covers. Two
        segments that together hold more than SEGMENT_ENTRIES stay apart."""
        seqs = list(self._log)
        while len(seqs) >= 2 and _mergeable(len(self._log[seqs[-2]]), len(self._log[seqs[-1]])):
            newer, older = self._log.pop(seqs[-1]), self._log.pop(seqs[-2])
            self._log[seqs[-1]] = {**older, **newer}
            del seqs[-2]

    @property
    def cut(self) -> int:
        """How many parts the map is cut into (they are numbered from 0)."""
        return self._count

    def part_of(self, key: str) -> int:
        """The number of the part `key` lives in (whether or not the map holds it)."""
        return self._index(key)

    def part_keys(self, index: int) -> list[str]:
        """The keys part `index` holds now, sorted: the same whatever its overlay and log hold, so a
        decision that takes a map a part at a time takes the same part when it is decided again on
        the state loaded after a restart (the map's own order may differ there)."""
        return sorted(self._part_now(index))

    def part_views(self) -> Iterator[Mapping[str, Any]]:
        """Each part as a plain mapping of what it holds now, for a pass over the whole map at C
        speed (the caller must not change them)."""
        return (self._part_now(index) for index in range(self._count))

    def _index(self, key: str) -> int:
        return 0 if self._count == 1 else user_hash(key) % self._count

    def _lookup(self, key: str) -> Any:
        """The value, or _MISSING."""
        return self._value_at(self._index(key), key)

    def _value_at(self, index: int, key: str) -> Any:
        """The value of `key`, which lives in part `index`, or _MISSING."""
        pending = self._pending[index]
        if pending:
            value = pending.get(key, _MISSING)
            if value is not _MISSING:
                return _MISSING if value is None else value
        return self._shards[index].get(key, _MISSING)

    def _overlay(self, index: int) -> dict[str, Any]:
        """The part's overlay, this copy's own to write (every write goes through here)."""
        self._stored = None
        if index not in self._owned:
            self._pending[index] = dict(self._pending[index])
            self._owned.add(index)
        return self._pending[index]

    def _reshard(self, count: int, items: Any) -> None:
        shards: list[dict[str, Any]] = [{} for _ in range(count)]
        size = 0
        for key, value in items:
            shards[0 if count == 1 else user_hash(key) % count][key] = value
            size += 1
        self._count, self._shards, self._len = count, shards, size
        self._pending, self._owned = [{} for _ in range(count)], set(range(count))
        # every part is new: stored whole at the next store, with no log
        self._recut, self._folded_at = True, [0] * count
        self._changed, self._log, self._cursor, self._credit = {}, {}, 0, 0
        self._stored = None

    def __getitem__(self, key: str) -> Any:
        value = self._lookup(key)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._lookup(key)
        return default if value is _MISSING else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._lookup(key) is not _MISSING

    def setdefault(self, key: str, default: Any = None) -> Any:
        value = self._lookup(key)
        if value is _MISSING:
            self[key] = value = default
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        if value is None:
            raise ValueError("a PartedMap holds no None values (None marks a removal in its log)")
        index = self._index(key)
        known = self._value_at(index, key) is not _MISSING
        self._overlay(index)[key] = value
        self._changed[key] = value
        if not known:
            self._len += 1
            if self._len > self._count * USERS_PER_PART and self._count < MAX_PARTS:
                self._reshard(self._count * 2, list(self.items()))

    def __delitem__(self, key: str) -> None:
        index = self._index(key)
        if self._value_at(index, key) is _MISSING:
            raise KeyError(key)
        self._overlay(index)[key] = None
        self._changed[key] = None
        self._len -= 1

    def __iter__(self) -> Iterator[str]:
        for key, _ in self._entries():
            yield key

    def _entries(self) -> Iterator[tuple[str, Any]]:
        for part, pending in zip(self._shards, self._pending, strict=True):
            if not pending:
                yield from part.items()
                continue
            for key, value in part.items():
                if key not in pending:
                    yield key, value
            for key, value in pending.items():
                if value is not None:
                    yield key, value

    def items(self) -> ItemsView[str, Any]:
        return _PartedItems(self)

    def __len__(self) -> int:
        return self._len

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return len(self) == len(other) and all(other.get(k, _MISSING) == v for k, v in self.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"PartedMap({dict(self.items())!r})"


class _PartedItems(ItemsView[str, Any]):
    """Iterates the parts' own items (the generic view looks every key up again)."""

    _mapping: PartedMap

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return self._mapping._entries()


_MISSING = object()


def _mergeable(older: int, newer: int) -> bool:
    return older <= newer and older + newer <= SEGMENT_ENTRIES


def _cut(changed: dict[str, Any]) -> list[dict[str, Any]]:
    """A store's change as log segments of at most SEGMENT_ENTRIES entries (the dict itself when it
    fits). The keys of one store are distinct, so its segments may be applied in any order."""
    if len(changed) <= SEGMENT_ENTRIES:
        return [changed]
    items = list(changed.items())
    return [dict(items[i : i + SEGMENT_ENTRIES]) for i in range(0, len(items), SEGMENT_ENTRIES)]

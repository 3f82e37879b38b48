"""An aggregate's memory of the commands it processed, stored apart from its state, by change.

A command id found here is a duplicate (a client's retry, a redelivered record): it is answered,
not decided again. The newest commands' full answers (follow-ups and outcome) are kept so a retry
gets exactly its first answer; older ones are remembered by id only.

Stored layout (DESIGN §3 crash rules hold: everything is named by the main record, written last):
- the main record's `memory`: the newest few entries, `[id, answer]` (at most INLINE_KEPT after a
  store), so an aggregate that sees one command at a time still writes one record per command;
- segments, parts named `memory-<n>` (n: the number of the segment's first command, counting every
  command the aggregate ever remembered): a batch's entries beyond that, written once as the batch
  left them. A segment older than the newest ANSWERS_KEPT answers is rewritten once without its
  answers; one older than the newest `size` ids is deleted.
So a batch writes bytes in proportion to the commands it decided, not to the memory's size (before:
256 ids and 32 answers in every main record, 27 KB of a busy stream's 34 KB, rewritten per batch).

Records of the old layout (every entry in the main record's `memory`) load as an inline memory
that the next store seals into a segment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ANSWERS_KEPT = 32  # newest processed commands per aggregate whose full answer is kept for retries
INLINE_KEPT = 8  # entries the main record carries; beyond that a store seals them into a segment
SEGMENT_PREFIX = "memory-"

Entry = list[Any]  # [command id, answer or None]


def is_segment(part_name: str) -> bool:
    return part_name.startswith(SEGMENT_PREFIX)


@dataclass(slots=True)
class Memory:
    """The processed commands of one aggregate while a batch is decided (then stored, then cached).

    `segments` maps part names to their entries, oldest first; their lists are never changed in
    place (a changed segment is a new list), so a segment the store sees again by identity is
    unchanged and costs nothing. `counted`: how many commands were ever remembered.
    """

    inline: list[Entry] = field(default_factory=list)
    segments: dict[str, list[Entry]] = field(default_factory=dict)
    counted: int = 0
    index: dict[str, Any] = field(default_factory=dict)  # id -> answer (None: by id only)

    @classmethod
    def loaded(cls, inline: list[Entry], segments: dict[str, list[Entry]], counted: int | None) -> Memory:
        ordered = dict(sorted(segments.items(), key=lambda item: int(item[0][len(SEGMENT_PREFIX) :])))
        index: dict[str, Any] = {}
        for entries in (*ordered.values(), inline):
            for command_id, answer in entries:
                index[command_id] = answer
        total = sum(map(len, ordered.values())) + len(inline)
        return cls([list(e) for e in inline], ordered, total if counted is None else counted, index)

    def copy(self) -> Memory:
        """A copy a batch may change; the segments' lists are shared (never changed in place)."""
        return Memory(list(self.inline), dict(self.segments), self.counted, dict(self.index))

    def __contains__(self, command_id: str) -> bool:
        return command_id in self.index

    def answer(self, command_id: str) -> Any:
        return self.index[command_id]

    def remember(self, command_id: str, answer: Any) -> None:
        self.inline.append([command_id, answer])
        self.index[command_id] = answer
        self.counted += 1

    def compacted(self, size: int) -> None:
        """Seal, strip and forget as the stored layout says; call before storing."""
        if len(self.inline) > INLINE_KEPT:
            self._seal(size)
        self._strip_old_answers()
        self._forget_beyond(size)

    def _seal(self, size: int) -> None:
        """The inline entries become a segment, as little as it must hold: a batch of 5,000 joins
        keeps its newest `size` ids and their newest ANSWERS_KEPT answers, not 5,000 answers."""
        entries, self.inline = self.inline, []
        for command_id, _ in entries[:-size]:
            del self.index[command_id]
        entries = entries[-size:]
        stripped = entries[:-ANSWERS_KEPT]
        for command_id, _ in stripped:
            self.index[command_id] = None
        entries = [[command_id, None] for command_id, _ in stripped] + entries[-ANSWERS_KEPT:]
        self.segments[f"{SEGMENT_PREFIX}{self.counted - len(entries)}"] = entries

    def _strip_old_answers(self) -> None:
        kept = len(self.inline)
        for name in reversed(list(self.segments)):
            entries = self.segments[name]
            if kept >= ANSWERS_KEPT and any(answer is not None for _, answer in entries):
                self.segments[name] = [[command_id, None] for command_id, _ in entries]
                for command_id, _ in entries:
                    self.index[command_id] = None
            kept += len(entries)

    def _forget_beyond(self, size: int) -> None:
        total = len(self.inline) + sum(map(len, self.segments.values()))
        for name in list(self.segments):
            entries = self.segments[name]
            if total - len(entries) < size:
                break
            del self.segments[name]
            for command_id, _ in entries:
                self.index.pop(command_id, None)
            total -= len(entries)

"""What travels between a batch and the broker: records in, records out, bundled and merged.

Records may be bundles (`spaktok.infra.bundles`): each member is decided as if it had come alone.
A batch's follow-up commands for one partition of a topic leave as one bundle, and its outcomes as
one record, so a gift's saga costs the next agent a fraction of a message instead of one. Follow-up
commands and outcomes stay JSON-able values until the batch is complete, so those a spec merges are
merged before anything is serialised, and each record is encoded once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from spaktok.infra import bundles


@dataclass(frozen=True, slots=True)
class Incoming:
    """One command record as consumed: where it came from and its raw bytes."""

    key: bytes | None
    value: bytes
    topic: str
    partition: int
    offset: int
    member: int | None = None  # its index in the bundle record at `offset`; None: a record of its own
    parsed: dict[str, Any] | None = None  # a bundle member's JSON, decoded with its bundle (once)
    alone: bool = False  # decided in a slice of its own (processors/batches.py `slices`)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A record to publish. Follow-ups and outcomes carry `data` (not yet encoded) until
    `encoded`; events and dead letters carry their bytes."""

    topic: str
    key: str
    value: bytes
    headers: list[tuple[str, bytes]]
    kind: str = "event"  # event | forward | outcome | deadletter
    partition: int | None = None  # None: the key's partition
    data: dict[str, Any] | None = None

    def encoded(self) -> Outgoing:
        if self.data is None:
            return self
        return Outgoing(
            self.topic, self.key, orjson.dumps(self.data), self.headers, self.kind, self.partition
        )


def forward(topic: str, key: str, command: dict[str, Any]) -> Outgoing:
    return Outgoing(topic, key, b"", [("command-type", command["type"].encode())], "forward", data=command)


def outcome(topic: str, answer: dict[str, Any]) -> Outgoing:
    return Outgoing(topic, answer["correlation_id"], b"", [], "outcome", data=answer)


def unbundled(records: list[Incoming]) -> list[Incoming]:
    """Each member of a bundle as a record of its own (same position, its JSON decoded once, here);
    other records as they are.

    A bundle that is not an array of objects stays one record: decoding it fails and it is
    dead-lettered whole, with its original bytes."""
    if not any(r.member is None and bundles.is_bundle(r.value) for r in records):
        return records
    result: list[Incoming] = []
    for record in records:
        if record.member is not None or not bundles.is_bundle(record.value):
            result.append(record)
            continue
        try:
            members = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            result.append(record)
            continue
        if not members or not all(isinstance(m, dict) for m in members):
            result.append(record)
            continue
        result.extend(replace(record, member=index, parsed=member) for index, member in enumerate(members))
    return result


def merged(
    out: list[Outgoing], merge_types: frozenset[str], merge: Callable[[list[dict[str, Any]]], dict[str, Any]]
) -> list[Outgoing]:
    """The batch's forwards of `merge_types` to the same topic and key as one command each, at the
    place of the first; everything else keeps its order."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    placed: list[Outgoing | tuple[str, str]] = []
    for record in out:
        if record.data is None or record.kind != "forward" or record.data["type"] not in merge_types:
            placed.append(record)
            continue
        slot = (record.topic, record.key)
        if slot not in groups:
            groups[slot] = []
            placed.append(slot)
        groups[slot].append(record.data)
    result = []
    for item in placed:
        if isinstance(item, Outgoing):
            result.append(item)
            continue
        commands = groups[item]
        result.append(forward(item[0], item[1], commands[0] if len(commands) == 1 else merge(commands)))
    return result


def bundled(out: list[Outgoing], partitions: Mapping[str, int] | None) -> list[Outgoing]:
    """Every record encoded; the batch's outcomes as one record at the end; with known partitions,
    its follow-up commands for one partition of a topic as one bundle at the place of the first
    (the order of the commands for any one partition is kept). Everything else keeps its order."""
    slots: dict[tuple[str, int], list[Outgoing]] = {}
    placed: list[Outgoing | tuple[str, int]] = []
    outcomes: list[Outgoing] = []
    for record in out:
        record = record.encoded()
        if record.kind == "outcome":
            outcomes.append(record)
        elif record.kind == "forward" and partitions is not None and record.topic in partitions:
            slot = (record.topic, bundles.partition_for(record.key, partitions[record.topic]))
            if slot not in slots:
                slots[slot] = []
                placed.append(slot)
            slots[slot].append(record)
        else:
            placed.append(record)
    result: list[Outgoing] = []
    for item in placed:
        if isinstance(item, Outgoing):
            result.append(item)
        else:
            result.extend(_bundle(slots[item], "forward", item[1]))
    result.extend(_bundle(outcomes, "outcome", None))
    return result


def _bundle(records: list[Outgoing], kind: str, partition: int | None) -> list[Outgoing]:
    """Records of one topic (and partition) as bundle records of at most `MAX_MEMBERS` members and
    about `MAX_BUNDLE_BYTES` (a member bigger than that travels alone); a lone one travels as it is."""
    headers = [("command-type", bundles.BUNDLE_TYPE.encode())] if kind == "forward" else []
    result = []
    for chunk in _chunks(records):
        if len(chunk) == 1:
            result.append(replace(chunk[0], partition=partition))
            continue
        value = bundles.encode([r.value for r in chunk])
        result.append(Outgoing(chunk[0].topic, chunk[0].key, value, headers, kind, partition))
    return result


def _chunks(records: list[Outgoing]) -> list[list[Outgoing]]:
    chunks: list[list[Outgoing]] = []
    size = 0
    for record in records:
        grown = size + len(record.value)
        if not chunks or len(chunks[-1]) >= bundles.MAX_MEMBERS or grown > bundles.MAX_BUNDLE_BYTES:
            chunks.append([])
            grown = len(record.value)
        chunks[-1].append(record)
        size = grown
    return chunks

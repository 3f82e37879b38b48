"""Runs one aggregate's decider inside a Faust agent: load, decide, emit, await delivery, store.

Commands are handled in batches (see AggregateRunner); the rules below hold per batch.
Exactly-once effects on an at-least-once log (DESIGN §3), by two orderings and one atomic write:

- The new state is stored only after the broker acknowledged the batch's events, forwards and
  outcomes. Stored state therefore never runs ahead of the log: a crash before the store leaves the
  old state, the command is redelivered (its offset was not committed) and decided again from that
  same state, which yields the same events with the same ids and sequences (deciders are pure and
  take time from the command), so consumers drop them as duplicates.
- The aggregate's state and its memory of processed command ids are one table value, written in one
  changelog record: they cannot disagree after a crash. (Two tables could, and did: state restored
  with a command applied but its id forgotten made the retry a silent no-op.)
- A command id found in that memory is a duplicate (a client retry, a redelivery): nothing is
  decided; its follow-up commands and outcome are sent again so a waiting caller still gets its answer.

Records may be bundles (`spaktok.infra.bundles`): each member is decided as if it had come alone.
A batch's follow-up commands for one partition of a topic leave as one bundle, and its outcomes as
one record, so a gift's saga costs the next agent a fraction of a message instead of one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson
from pydantic import ValidationError
from spaktok.commands.base import Command, Rejection, command_from, decode_command
from spaktok.commands.outcome import Outcome
from spaktok.events.base import Event
from spaktok.events.envelope import TYPE_HEADER, Envelope, derive_id, seal
from spaktok.infra import bundles
from spaktok.processors.deadletter import deadletter_headers, text_key

log = logging.getLogger(__name__)

OUTCOME_EVENTS_KEPT = 20  # the tail of a decision that an API caller sees
ANSWERS_KEPT = 32  # newest processed commands per aggregate whose full answer is kept for retries
DECODED_KEPT = 50_000  # aggregates whose decoded state is cached in the worker process


class State(Protocol):
    version: int

    def stats(self) -> dict[str, Any]: ...
    def to_dict(self) -> dict[str, Any]: ...


class Sender(Protocol):
    """Hands one record to the producer; the returned awaitable resolves when the broker acked it."""

    async def __call__(
        self, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]], partition: int | None
    ) -> Awaitable[Any]:
        """`partition` None: the key's partition (murmur2)."""
        ...


class TableLike(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...
    def put(self, key: str, value: bytes, partition: int) -> None:
        """Store `value` and write its changelog record to `partition` (the command's partition)."""
        ...

    def items(self) -> Iterable[tuple[str, bytes]]: ...

    def delete(self, key: str, partition: int) -> None:
        """Remove `key` and write its tombstone to `partition`."""
        ...


@dataclass(frozen=True)
class Forward:
    """A follow-up command for another aggregate, sent after this command's events."""

    topic: str
    command: Command


@dataclass
class AggregateSpec:
    aggregate_type: str
    events_topic: str
    initial: Callable[[], Any]
    load: Callable[[dict[str, Any]], Any]
    decide: Callable[[Command, Any], list[Event]]
    evolve: Callable[[Any, Event], Any]
    rejected: Callable[[Command, Rejection], Event]
    follow_ups: Callable[[Command, list[Envelope], Any], list[Forward]]
    is_final: Callable[[Command, list[Envelope]], bool]
    # a copy of a state that `evolve` may change in place; identity for aggregates whose evolve
    # builds new values
    thaw: Callable[[Any], Any] = lambda state: state
    # which aggregates the worker's timers look after (e.g. live streams, for the viewer sweep)
    is_active: Callable[[Any], bool] = lambda state: False
    # notices: decided facts that do not change the aggregate (e.g. "these followers were
    # notified"); sealed with sequence 0 like refusals and published on `notice_topic`
    is_notice: Callable[[Event], bool] = lambda event: False
    notice_topic: str | None = None
    # big states are stored in parts (see AggregateRunner._store): `split` gives the main
    # JSON-able dict and named parts, `join` rebuilds the state from both
    split: Callable[[Any], tuple[dict[str, Any], dict[str, Any]]] | None = None
    join: Callable[[dict[str, Any], dict[str, Any]], Any] | None = None
    # follow-up commands of these types that a batch sends to one key travel as one command:
    # `merge` turns their JSON forms (in order) into one (fewer messages for the next aggregate)
    merge_types: frozenset[str] = frozenset()
    merge: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None
    # a refusal is remembered like a decision, so the same command again (a client's retry with its
    # Idempotency-Key, a redelivered or duplicated record) gets the first answer instead of being
    # decided anew against a state that may have changed: a gift refused for `insufficient-coins`
    # must not be debited after a top-up (found by bench/chaos.py and the reference model)
    remember_refusals: bool = False


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


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    key: str
    value: bytes
    headers: list[tuple[str, bytes]]
    kind: str = "event"  # event | forward | outcome | deadletter
    partition: int | None = None  # None: the key's partition


@dataclass(frozen=True, slots=True)
class StoredPart:
    """One part of a big state as the table holds it, and the object it was stored from or loaded
    as: while the state still holds that very object, the part is unchanged (see `_store`)."""

    version: int
    raw: bytes
    content: Any


@dataclass(slots=True)
class Held:
    """An aggregate while a batch is decided: loaded once, stored once."""

    state: Any
    memory: dict[str, Any]
    partition: int
    parts: dict[str, StoredPart] = field(default_factory=dict)  # as stored, by name
    changed: bool = False


@dataclass(frozen=True, slots=True)
class Decoded:
    """What the table holds for one aggregate, decoded; valid while `stored` is the table's object."""

    stored: bytes
    state: Any
    memory: dict[str, Any]
    parts: dict[str, StoredPart]
    partition: int | None = (
        None  # the command partition it is stored from (None: stored before this was kept)
    )


def part_key(aggregate_id: str, name: str, version: int) -> str:
    # NUL cannot occur in aggregate ids: part keys never collide with aggregates or positions
    return f"{aggregate_id}\x00{name}\x00{version}"


class AggregateRunner:
    """Decides batches of commands for the aggregates of the partitions it owns.

    A batch is decided in order, in memory; then everything it produced is sent and acknowledged;
    then each aggregate it changed is stored once. The per-message costs (a table write and its
    changelog record, an ack round trip) are paid per batch instead of per command.
    """

    def __init__(
        self,
        spec: AggregateSpec,
        *,
        states: TableLike,
        send: Sender,
        outcomes_topic: str,
        deadletter_topic: str,
        memory: int,
        partitions: Mapping[str, int] | None = None,
    ) -> None:
        """`partitions`: how many partitions each command topic has. Known, the runner bundles a
        batch's follow-up commands per partition and checks that every bundled command belongs on
        the partition it came in; unknown (None), each follow-up travels alone."""
        self.spec = spec
        self.states = states
        self.send = send
        self.outcomes_topic = outcomes_topic
        self.deadletter_topic = deadletter_topic
        self.memory = memory
        self.partitions = partitions
        # decoded form of the value last stored per aggregate: valid while the table still holds
        # that very bytes object (recovery after a rebalance replaces it, invalidating the entry)
        self._decoded: dict[str, Decoded] = {}

    async def handle_batch(self, records: list[Incoming]) -> None:
        """Decide every record, publish the results, then store the changed aggregates."""
        records = _unbundled(records)
        poisoned: dict[int, BaseException] = {}
        while True:
            try:
                held, out = self._decide_batch(records, poisoned)
                break
            except _Poisoned as exc:
                # evolve or a follow-up failed half way through a command: the held states may be
                # half changed, so the batch is decided again from the stored ones without it
                log.error(
                    "command at offset %s failed mid-way; batch decided again without it",
                    records[exc.index].offset,
                    exc_info=exc.__cause__,
                )
                poisoned[exc.index] = exc.__cause__ or exc
        await self._publish(out)
        for aggregate_id, aggregate in held.items():
            if aggregate.changed:
                self._store(aggregate_id, aggregate)

    def _decide_batch(
        self, records: list[Incoming], poisoned: dict[int, BaseException]
    ) -> tuple[dict[str, Held], list[Outgoing]]:
        held: dict[str, Held] = {}
        out: list[Outgoing] = []
        for index, record in enumerate(records):
            if index in poisoned:
                out.append(self._deadletter(record, poisoned[index], "decide"))
                continue
            try:
                command = (
                    decode_command(record.value) if record.parsed is None else command_from(record.parsed)
                )
                if command.aggregate_type != self.spec.aggregate_type:
                    raise WrongTopic(f"{command.type} does not belong on {record.topic}")
                self._check_member(command, record)
            except Exception as exc:  # noqa: BLE001 - bad input must never stop the worker
                out.append(self._deadletter(record, exc, _stage_of(exc)))
                continue
            try:
                self._decide(command, record.partition, held, out)
            except _Unchanged as exc:
                log.error("command %s failed; dead-lettered", command.command_id, exc_info=exc.__cause__)
                out.append(self._deadletter(record, exc.__cause__ or exc, "decide"))
            except Exception as exc:
                raise _Poisoned(index) from exc
        return held, self._bundled(self._merged(out) if self.spec.merge is not None else out)

    def _check_member(self, command: Command, record: Incoming) -> None:
        """A bundled command must belong on the bundle's partition: its key's, by murmur2."""
        if record.member is None or self.partitions is None or record.topic not in self.partitions:
            return
        home = bundles.partition_for(command.aggregate_id, self.partitions[record.topic])
        if home != record.partition:
            raise WrongPartition(
                f"{command.aggregate_id} hashes to partition {home}; it came bundled on {record.partition}"
            )

    def _bundled(self, out: list[Outgoing]) -> list[Outgoing]:
        """The batch's outcomes as one record at the end; with known partitions, its follow-up
        commands for one partition of a topic as one bundle at the place of the first (the order
        of the commands for any one partition is kept). Everything else keeps its order."""
        slots: dict[tuple[str, int], list[Outgoing]] = {}
        placed: list[Outgoing | tuple[str, int]] = []
        outcomes: list[Outgoing] = []
        for record in out:
            if record.kind == "outcome":
                outcomes.append(record)
            elif record.kind == "forward" and self.partitions is not None and record.topic in self.partitions:
                slot = (record.topic, bundles.partition_for(record.key, self.partitions[record.topic]))
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

    def _merged(self, out: list[Outgoing]) -> list[Outgoing]:
        """The batch's forwards of `merge_types` to the same topic and key as one command each, at
        the place of the first; everything else keeps its order."""
        assert self.spec.merge is not None
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        merged: list[Outgoing | tuple[str, str]] = []
        for record in out:
            kind = dict(record.headers).get("command-type", b"").decode()
            if kind not in self.spec.merge_types:
                merged.append(record)
                continue
            slot = (record.topic, record.key)
            if slot not in groups:
                groups[slot] = []
                merged.append(slot)
            groups[slot].append(orjson.loads(record.value))
        result = []
        for item in merged:
            if isinstance(item, Outgoing):
                result.append(item)
                continue
            commands = groups[item]
            command = commands[0] if len(commands) == 1 else self.spec.merge(commands)
            result.append(
                Outgoing(
                    item[0],
                    item[1],
                    orjson.dumps(command),
                    [("command-type", command["type"].encode())],
                    "forward",
                )
            )
        return result

    def active_ids(self) -> list[str]:
        return self.select(self.spec.is_active)

    def select(self, wanted: Callable[[Any], bool]) -> list[str]:
        """Aggregates held by this worker whose state `wanted` picks, for its timers.

        Values restored by a recovery are decoded once here and cached; after that a call only
        compares object identities.
        """
        ids = []
        for aggregate_id, stored in self.states.items():
            if "\x00" in aggregate_id:
                continue  # bookkeeping keys (command positions) and the parts of big states
            if wanted(self._decoded_value(aggregate_id, stored).state):
                ids.append(aggregate_id)
        return ids

    def _decoded_value(self, aggregate_id: str, stored: bytes) -> Decoded:
        cached = self._decoded.get(aggregate_id)
        if cached is not None and cached.stored is stored:
            return cached
        data = orjson.loads(stored)
        parts: dict[str, StoredPart] = {}
        if "parts" in data:
            assert self.spec.join is not None, f"{aggregate_id} is stored in parts; the spec cannot join them"
            for name, version in data["parts"].items():
                raw = self.states.get(part_key(aggregate_id, name, version))
                if raw is None:
                    raise RuntimeError(f"part {name}@{version} of {aggregate_id} is missing from the table")
                parts[name] = StoredPart(version, raw, orjson.loads(raw))
            state = self.spec.join(data["state"], {name: part.content for name, part in parts.items()})
        else:
            state = self.spec.load(data["state"])
        decoded = Decoded(stored, state, dict(data["memory"]), parts, data.get("partition"))
        self._remember(aggregate_id, decoded)
        return decoded

    def _remember(self, aggregate_id: str, decoded: Decoded) -> None:
        if len(self._decoded) >= DECODED_KEPT:
            self._decoded.clear()
        self._decoded[aggregate_id] = decoded

    def _hold(self, aggregate_id: str, partition: int, held: dict[str, Held]) -> Held:
        aggregate = held.get(aggregate_id)
        if aggregate is None:
            stored = self.states.get(aggregate_id)
            if stored is None:
                aggregate = Held(self.spec.initial(), {}, partition)
            else:
                decoded = self._decoded_value(aggregate_id, stored)
                # thawed: evolve may change the copy in place; the cached state stays as stored
                aggregate = Held(
                    self.spec.thaw(decoded.state),
                    dict(decoded.memory),
                    partition if decoded.partition is None else decoded.partition,
                    dict(decoded.parts),
                )
            held[aggregate_id] = aggregate
        if aggregate.partition != partition:
            # one aggregate, one writer: a command on another partition (a producer with another
            # partitioner) would be decided against a state whose changelog lives elsewhere, and a
            # recovery could then restore either version
            raise _Unchanged from WrongPartition(
                f"{aggregate_id} lives on partition {aggregate.partition}; a command for it arrived on "
                f"{partition} (producers must hash keys with murmur2, like the Java client)"
            )
        return aggregate

    def _decide(self, command: Command, partition: int, held: dict[str, Held], out: list[Outgoing]) -> None:
        """Decide one command against the held state; nothing is changed unless it all succeeds."""
        aggregate = self._hold(command.aggregate_id, partition, held)
        state = aggregate.state
        if command.command_id in aggregate.memory:
            self._answer_duplicate(command, state, aggregate.memory[command.command_id], out)
            return
        try:
            decided = self.spec.decide(command, state)
            rejection: Rejection | None = None
        except Rejection as exc:
            decided, rejection = [], exc
        except Exception as exc:
            raise _Unchanged from exc  # deciders are pure: nothing was changed yet

        envelopes: list[Envelope] = []
        notices: list[Envelope] = []
        for index, event in enumerate(decided):
            if self.spec.is_notice(event):
                notices.append(self._seal(command, event, f"notice-{index}", 0))
                continue
            state = self.spec.evolve(state, event)
            envelopes.append(self._seal(command, event, index, state.version))
        if rejection is not None:
            # a refusal is a fact about the command, not the aggregate: sequence 0, state unchanged
            envelopes.append(self._seal(command, self.spec.rejected(command, rejection), 0, 0))

        forwards = self.spec.follow_ups(command, envelopes, state) if rejection is None else []
        forward_records = [
            [f.topic, f.command.aggregate_id, f.command.model_dump(mode="json")] for f in forwards
        ]
        outcome = None
        if rejection is not None or self.spec.is_final(command, envelopes):
            outcome = self._outcome(command, envelopes, state, rejection).model_dump(mode="json")
        for env in envelopes:
            out.append(self._record(self.spec.events_topic, env))
        for env in notices:
            assert self.spec.notice_topic is not None, "a spec with notices names their topic"
            out.append(self._record(self.spec.notice_topic, env))
        self._answer(forward_records, outcome, out)
        if decided or (rejection is not None and self.spec.remember_refusals):
            aggregate.state = state
            aggregate.memory[command.command_id] = {"forwards": forward_records, "outcome": outcome}
            aggregate.changed = True

    @staticmethod
    def _record(topic: str, env: Envelope) -> Outgoing:
        return Outgoing(topic, env.aggregate_id, env.to_bytes(), [(TYPE_HEADER, env.type.encode())])

    def _answer(self, forwards: list[list[Any]], outcome: dict[str, Any] | None, out: list[Outgoing]) -> None:
        for topic, key, command in forwards:
            out.append(
                Outgoing(
                    topic, key, orjson.dumps(command), [("command-type", command["type"].encode())], "forward"
                )
            )
        if outcome is not None:
            out.append(
                Outgoing(self.outcomes_topic, outcome["correlation_id"], orjson.dumps(outcome), [], "outcome")
            )

    def _answer_duplicate(
        self, command: Command, state: Any, remembered: dict[str, Any] | None, out: list[Outgoing]
    ) -> None:
        """The events are in the log already; resend what a waiting caller or next aggregate needs."""
        if remembered is not None:
            self._answer(remembered["forwards"], remembered["outcome"], out)
            return
        # remembered only by id (older than ANSWERS_KEPT): say it was done already
        duplicate = Outcome(
            command_id=command.command_id,
            correlation_id=command.correlation,
            command_type=command.type,
            aggregate_id=command.aggregate_id,
            status="noop",
            actor_id=command.actor_id,
            detail="duplicate of a command processed earlier",
            stats=state.stats(),
        )
        self._answer([], duplicate.model_dump(mode="json"), out)

    def _seal(self, command: Command, event: Event, index: int | str, sequence: int) -> Envelope:
        return seal(
            event,
            aggregate_id=command.aggregate_id,
            sequence=sequence,
            command_id=command.command_id,
            index=index if sequence or isinstance(index, str) else "rejected",
            correlation_id=command.correlation,
            actor_id=command.actor_id,
            occurred_at=command.issued_at,
        )

    def _outcome(
        self, command: Command, envelopes: list[Envelope], state: Any, rejection: Rejection | None
    ) -> Outcome:
        status = "rejected" if rejection else ("accepted" if envelopes else "noop")
        return Outcome(
            command_id=command.command_id,
            correlation_id=command.correlation,
            command_type=command.type,
            aggregate_id=command.aggregate_id,
            status=status,
            actor_id=command.actor_id,
            reason=rejection.reason if rejection else None,
            detail=rejection.detail if rejection else None,
            events=[
                {"type": e.type, "sequence": e.sequence, "payload": e.payload}
                for e in envelopes[-OUTCOME_EVENTS_KEPT:]
            ],
            stats=state.stats(),
        )

    def _store(self, aggregate_id: str, aggregate: Held) -> None:
        """State and processed-command memory in one value: one changelog record, atomic.

        A big state (a spec with `split`) keeps its bulk in parts. A changed part is written under a
        new key (`part_key` with the state's version), never over the old one, and the main record,
        written last, names the versions it uses: a crash before the main record leaves the new
        parts unreferenced and the stored state exactly as it was. Parts a new main record no longer
        names are then deleted. Unchanged parts are not rewritten, and no record grows with the
        whole state. A part whose content is the very object stored (or loaded) last is unchanged
        without being serialised: stored objects are never changed (`thaw` copies whatever `evolve`
        changes in place), so a spec that keeps its old parts as they are pays nothing for them.
        """
        memory = aggregate.memory
        ids = list(memory)  # insertion order: oldest first
        for old in ids[: max(0, len(ids) - self.memory)]:
            del memory[old]
        for old in ids[max(0, len(ids) - self.memory) : max(0, len(ids) - ANSWERS_KEPT)]:
            memory[old] = None
        state, partition = aggregate.state, aggregate.partition
        parts: dict[str, StoredPart] = {}
        if self.spec.split is None:
            record: dict[str, Any] = {
                "state": state.to_dict(),
                "memory": list(memory.items()),
                "partition": partition,
            }
        else:
            main, contents = self.spec.split(state)
            for name, content in contents.items():
                previous = aggregate.parts.get(name)
                if previous is not None and previous.content is content:
                    parts[name] = previous
                    continue
                raw = orjson.dumps(content)
                if previous is not None and previous.raw == raw:
                    parts[name] = StoredPart(previous.version, previous.raw, content)
                    continue
                parts[name] = StoredPart(state.version, raw, content)
                self.states.put(part_key(aggregate_id, name, state.version), raw, partition)
            versions = {name: part.version for name, part in parts.items()}
            record = {
                "state": main,
                "memory": list(memory.items()),
                "parts": versions,
                "partition": partition,
            }
        value = orjson.dumps(record)
        self.states.put(aggregate_id, value, partition)
        for name, part in aggregate.parts.items():
            kept = parts.get(name)
            if kept is None or kept.version != part.version:
                self.states.delete(part_key(aggregate_id, name, part.version), partition)
        aggregate.parts = parts
        self._remember(aggregate_id, Decoded(value, state, memory, parts, partition))

    async def _publish(self, out: list[Outgoing]) -> None:
        """Send everything in order, then wait until the broker acknowledged all of it.

        A failed send is retried with the whole batch: records already acknowledged are sent again,
        which is harmless (same event ids and sequences; every consumer drops them by sequence),
        while giving up would let the state be stored ahead of the log, or lose the batch.
        """
        delay = 0.1
        while True:
            try:
                acks = [await self.send(o.topic, o.key, o.value, o.headers, o.partition) for o in out]
                await asyncio.gather(*acks)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("publishing %d records failed (%r); retrying in %.1f s", len(out), exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _deadletter(self, record: Incoming, exc: BaseException, stage: str) -> Outgoing:
        headers = deadletter_headers(
            exc,
            stage=stage,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
        )
        value = record.value
        if record.member is not None:
            headers.append(("bundle-member", str(record.member).encode()))
            value = orjson.dumps(record.parsed)  # the member alone, not its whole bundle
        return Outgoing(self.deadletter_topic, text_key(record.key), value, headers, "deadletter")


def _stage_of(exc: Exception) -> str:
    """`decode`: not a command at all (not JSON, not an object, no known type); `validate`: a known
    command that its model refuses (a field out of range, say negative coins) or that does not
    belong where it came (another aggregate's topic, another partition)."""
    return "validate" if isinstance(exc, ValidationError | WrongTopic | WrongPartition) else "decode"


def _unbundled(records: list[Incoming]) -> list[Incoming]:
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


def _bundle(records: list[Outgoing], kind: str, partition: int | None) -> list[Outgoing]:
    """Records of one topic (and partition) as bundle records; a lone one travels as it is."""
    headers = [("command-type", bundles.BUNDLE_TYPE.encode())] if kind == "forward" else []
    result = []
    for start in range(0, len(records), bundles.MAX_MEMBERS):
        chunk = records[start : start + bundles.MAX_MEMBERS]
        if len(chunk) == 1:
            result.append(replace(chunk[0], partition=partition))
            continue
        value = bundles.encode([r.value for r in chunk])
        result.append(Outgoing(chunk[0].topic, chunk[0].key, value, headers, kind, partition))
    return result


class WrongPartition(ValueError):
    """A command arrived on another partition than the one its aggregate is written from."""


class WrongTopic(ValueError):
    """A command of another aggregate arrived on this aggregate's command topic."""


class _Unchanged(Exception):
    """A command failed before it changed anything held: dead-letter it and go on."""


class _Poisoned(Exception):
    """A command failed after it began changing held state."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


def refused_as(event_class: Callable[..., Event]) -> Callable[[Command, Rejection], Event]:
    """The usual `rejected` of a spec: the aggregate's CommandRejected event with the problem slug."""

    def rejected(command: Command, rejection: Rejection) -> Event:
        return event_class(command_type=command.type, reason=rejection.reason, detail=rejection.detail)

    return rejected


def forward_id(command: Command, purpose: str) -> str:
    """The id of a follow-up command: derived, so a replayed command forwards the same id."""
    return derive_id(command.command_id, purpose)


def follow_up(command: Command, purpose: str) -> dict[str, Any]:
    """The identity of a follow-up command: its derived id, and the cause's correlation and time."""
    return {
        "command_id": forward_id(command, purpose),
        "correlation_id": command.correlation,
        "issued_at": command.issued_at,
    }

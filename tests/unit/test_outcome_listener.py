"""The API's outcome listener: a record that is not an outcome is parked, the good ones delivered."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from spaktok.api.bus import CommandBus, OutcomeListener
from spaktok.commands.outcome import Outcome
from spaktok.commands.streams import SendComment
from spaktok.infra import topics
from spaktok.settings import Settings


@dataclass
class Record:
    """The part of a consumed Kafka message the listener reads."""

    raw: bytes | None
    at: int = 7

    def value(self) -> bytes | None:
        return self.raw

    def key(self) -> bytes:
        return b"corr"

    def topic(self) -> str:
        return topics.OUTCOMES.name

    def partition(self) -> int:
        return 1

    def offset(self) -> int:
        return self.at


@dataclass
class Parked:
    sent: list[tuple[str, str, bytes, dict[str, bytes]]] = field(default_factory=list)

    def send(self, topic: str, key: str, value: bytes, headers: Any = (), partition: Any = None) -> None:
        self.sent.append((topic, key, value, dict(headers)))


def outcome(command_id: str) -> dict[str, Any]:
    return Outcome(
        command_id=command_id, correlation_id=command_id, command_type="t.T", aggregate_id="a", status="noop"
    ).model_dump(mode="json")


def test_a_bad_bundle_member_is_parked_and_the_members_after_it_still_delivered() -> None:
    parked = Parked()
    listener = OutcomeListener(Settings(), deadletters=parked)  # type: ignore[arg-type]
    bad = {"not": "an outcome"}
    listener._deliver(Record(orjson.dumps([outcome("c1"), bad, outcome("c2")])))  # type: ignore[arg-type]
    assert set(listener.recent) == {"c1", "c2"}
    [(topic, key, value, headers)] = parked.sent
    assert (topic, key, value) == (topics.DEADLETTER.name, "corr", orjson.dumps(bad))
    assert headers["dlq-stage"] == b"outcomes" and headers["bundle-member"] == b"1"
    assert headers["dlq-source-offset"] == b"7" and headers["dlq-source-key"] == b"corr"


def test_undecodable_records_are_parked_whole_with_their_bytes() -> None:
    parked = Parked()
    listener = OutcomeListener(Settings(), deadletters=parked)  # type: ignore[arg-type]
    for raw in (b"\xff\xfe", b"[1, 2", None, b'{"x": 1}'):
        listener._deliver(Record(raw))  # type: ignore[arg-type]
    listener._deliver(Record(orjson.dumps(outcome("c3"))))  # type: ignore[arg-type]
    assert [value for _, _, value, _ in parked.sent] == [b"\xff\xfe", b"[1, 2", b"", b'{"x": 1}']
    assert all("bundle-member" not in headers for *_, headers in parked.sent)
    assert set(listener.recent) == {"c3"} and listener.refused == 4


def test_outcomes_are_remembered_as_bytes_and_parsed_when_asked_for() -> None:
    """The memory holds JSON, not models (no work for the garbage collector); a status read or a
    late `expect` gets the same outcome as the waiter did."""
    listener = OutcomeListener(Settings())
    first = outcome("c1")

    async def scenario() -> None:
        listener._loop = asyncio.get_running_loop()
        waiting = listener.expect("c1")
        listener._deliver(Record(orjson.dumps([first, outcome("c2")])))  # type: ignore[arg-type]
        listener._deliver(Record(orjson.dumps(outcome("c3"))))  # type: ignore[arg-type]
        got = await asyncio.wait_for(waiting, 1)
        assert got is not None and got.model_dump(mode="json") == first
        assert all(isinstance(raw, bytes) for raw in listener.recent.values())
        late = listener.expect("c3")  # answered already: resolved at once, from memory
        assert late.done() and late.result() == Outcome.model_validate(outcome("c3"))

    asyncio.run(scenario())
    assert listener.recall("c2") == Outcome.model_validate(outcome("c2"))
    assert listener.recall("c9") is None


def test_a_command_not_decided_in_time_is_none_and_its_waiter_forgotten() -> None:
    sent: list[bytes] = []

    class Producer:
        def send(self, topic: str, key: str, value: bytes, headers: Any = (), partition: Any = None) -> None:
            sent.append(value)

    listener = OutcomeListener(Settings())
    bus = CommandBus(Settings(command_bundle_window_ms=0), Producer(), listener)  # type: ignore[arg-type]
    command = SendComment(
        command_id="k1",
        issued_at=datetime.now(UTC),
        actor_id="ann",
        stream_id="s1",
        username="Ann",
        text="hi",
        max_length=150,
        min_interval_ms=0,
    )

    async def scenario() -> None:
        listener._loop = asyncio.get_running_loop()
        assert await bus.execute(command, timeout=0.01) is None
        assert not listener._waiters and len(sent) == 1
        pending = asyncio.ensure_future(bus.execute(command, timeout=5))
        await asyncio.sleep(0)
        decided = {**outcome("k1"), "actor_id": "ann"}
        listener._deliver(Record(orjson.dumps(decided)))  # type: ignore[arg-type]
        assert (await pending) == Outcome.model_validate(decided)

    asyncio.run(scenario())
    assert bus.actors_of("k1") == frozenset({"ann"})


def test_a_duplicates_noop_never_hides_the_first_decision() -> None:
    """A copy of a gift decided long ago (a redelivery after a crash, a duplicated record) is answered
    `noop`; a retry with the same Idempotency-Key, or the status URL, must still get the gift as
    taken. Before, the noop replaced it and a retrying client got "duplicate" forever."""
    listener = OutcomeListener(Settings())
    taken = Outcome(
        command_id="c9", correlation_id="c9", command_type="wallets.SendGift", aggregate_id="a",
        status="accepted", events=[{"type": "streams.GiftReceived", "sequence": 4, "payload": {}}],
    )  # fmt: skip
    copy = Outcome(**{**outcome("c9"), "detail": "duplicate of a command processed earlier"})
    for decided in (taken, copy):
        listener._deliver(Record(decided.model_dump_json().encode()))  # type: ignore[arg-type]
    assert listener.recall("c9") == taken and listener.received == 2
    first_noop = outcome("c10")  # a noop that is the first answer (joining twice) is remembered
    listener._deliver(Record(orjson.dumps(first_noop)))  # type: ignore[arg-type]
    assert listener.recall("c10") is not None and listener.recall("c10").status == "noop"  # type: ignore[union-attr]

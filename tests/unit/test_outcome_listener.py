"""The API's outcome listener: a record that is not an outcome is parked, the good ones delivered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from spaktok.api.bus import OutcomeListener
from spaktok.commands.outcome import Outcome
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

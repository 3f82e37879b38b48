"""The projection runner's fallback after a failed batch: each record alone, the poison parked."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from spaktok.events.envelope import Envelope
from spaktok.infra import topics
from spaktok.projections.runner import ProjectionRunner, Record
from spaktok.settings import Settings

TOPIC = "spaktok.events.streams"


@dataclass
class Store:
    """A projector over a dict: checkpoints as stored, one event type it cannot apply."""

    name: str = "fake"
    checkpoint: dict[tuple[str, int], int] = field(default_factory=dict)
    applied: list[int] = field(default_factory=list)
    history: list[tuple[list[int], dict[tuple[str, int], int]]] = field(default_factory=list)

    def checkpoints(self) -> dict[tuple[str, int], int]:
        return dict(self.checkpoint)

    def apply(self, records: list[Record], skipped: dict[tuple[str, int], int]) -> int:
        if any(r.envelope.type == "streams.Broken" for r in records):
            raise ValueError("this handler cannot apply it")
        self.applied += [r.offset for r in records]
        for r in records:
            self.checkpoint[(r.topic, r.partition)] = r.offset
        self.checkpoint.update(skipped)
        self.history.append(([r.offset for r in records], dict(self.checkpoint)))
        return len(records)


@dataclass
class Parked:
    sent: list[tuple[str, str, bytes, dict[str, bytes]]] = field(default_factory=list)

    def send(self, topic: str, key: str, value: bytes, headers: Any = (), partition: Any = None) -> None:
        self.sent.append((topic, key, value, dict(headers)))


def record(offset: int, kind: str = "streams.ViewerLeft") -> Record:
    env = Envelope(
        event_id=f"e{offset}",
        type=kind,
        schema_version=1,
        aggregate_type="stream",
        aggregate_id="s-1",
        sequence=offset,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        causation_id="c",
        correlation_id="c",
        actor_id="a",
        payload={},
    )
    raw = b'{ "as": "the log holds it", "offset": %d }' % offset
    return Record(TOPIC, 0, offset, env, raw, b"s-1")


def test_the_poison_is_parked_with_its_original_bytes_and_key_and_the_checkpoint_never_runs_ahead() -> None:
    store, parked = Store(), Parked()
    runner = ProjectionRunner(Settings(), store, parked)  # type: ignore[arg-type]
    records = [record(5), record(6, "streams.Broken"), record(7)]
    rows = runner._apply_one_by_one(records, {(TOPIC, 0): 9})  # offset 8, say, did not decode
    assert rows == 2 and store.applied == [5, 7]
    [(topic, key, value, headers)] = parked.sent
    assert (topic, key, value) == (topics.DEADLETTER.name, "s-1", records[1].raw)
    assert headers["dlq-stage"] == b"project:fake" and headers["dlq-source-offset"] == b"6"
    assert headers["dlq-source-key"] == b"s-1"
    # while a record was not applied yet, the stored checkpoint never passed it
    unapplied = {5, 7}
    for offsets, checkpoint in store.history:
        unapplied -= set(offsets)
        assert all(checkpoint[(TOPIC, 0)] < offset for offset in unapplied), store.history
    assert store.checkpoint[(TOPIC, 0)] == 9

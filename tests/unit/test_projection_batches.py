"""How the projection runner cuts the log into batches: a record on a quiet log is applied at once,
a busy log gives at most one batch per linger. The consumer here keeps librdkafka's timing contract
(`poll` returns the first record as it arrives, `consume(n, timeout)` only with `n` records or when
the timeout ran out), so the runner is judged against what the real client does."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from spaktok.infra.kafka import next_records
from spaktok.projections.runner import ProjectionRunner
from spaktok.settings import Settings


@dataclass
class TimedConsumer:
    """Records that arrive at given times after the start; waits the way confluent-kafka does."""

    arrivals: list[tuple[float, str]]
    started: float = field(default_factory=time.monotonic)

    def _arrived(self) -> list[str]:
        now = time.monotonic() - self.started
        return [m for at, m in self.arrivals if at <= now]

    def _take(self, n: int) -> list[str]:
        taken = self._arrived()[:n]
        self.arrivals = self.arrivals[len(taken) :]
        return taken

    def poll(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while not self._arrived() and time.monotonic() < deadline:
            time.sleep(0.001)
        taken = self._take(1)
        return taken[0] if taken else None

    def consume(self, n: int, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self._arrived()) < n and time.monotonic() < deadline:
            time.sleep(0.001)
        return self._take(n)


def runner(batch_size: int = 100) -> ProjectionRunner:
    """Only the batching is used: no projector applies anything, nothing is dead-lettered."""
    return ProjectionRunner(Settings(), None, None, batch_size=batch_size)  # type: ignore[arg-type]


def test_a_record_on_a_quiet_log_is_taken_at_once_with_what_came_along() -> None:
    consumer = TimedConsumer([(0.0, "a"), (0.0, "b"), (0.0, "c")])
    started = time.monotonic()
    batch = runner()._gather(consumer, not_before=0.0)  # type: ignore[arg-type]
    assert batch == ["a", "b", "c"]
    assert time.monotonic() - started < 0.1  # not held for the poll's whole 0.2 s


def test_records_arriving_within_the_linger_wait_for_it_and_go_as_one_batch() -> None:
    consumer = TimedConsumer([(0.0, "a"), (0.03, "b"), (0.06, "c"), (0.5, "late")])
    started = time.monotonic()
    batch = runner()._gather(consumer, not_before=started + 0.1)  # type: ignore[arg-type]
    waited = time.monotonic() - started
    assert batch == ["a", "b", "c"]
    assert 0.09 <= waited < 0.3


def test_a_full_batch_goes_before_the_linger_ends() -> None:
    consumer = TimedConsumer([(0.0, "a"), (0.0, "b"), (0.01, "c"), (0.02, "d")])
    started = time.monotonic()
    batch = runner(batch_size=3)._gather(consumer, not_before=started + 5.0)  # type: ignore[arg-type]
    assert batch == ["a", "b", "c"]
    assert time.monotonic() - started < 1.0


def test_nothing_arriving_gives_an_empty_batch_after_one_poll() -> None:
    consumer = TimedConsumer([(5.0, "later")])
    started = time.monotonic()
    assert runner()._gather(consumer, not_before=0.0) == []  # type: ignore[arg-type]
    assert time.monotonic() - started < 1.0


def test_the_api_s_outcome_and_feed_tails_take_a_lone_record_at_once_and_no_more_than_asked() -> None:
    """`next_records`, which the API's outcome listener and live feed wait with: a caller waits on
    each outcome, so holding one for the whole wait (as `consume(500, 0.1)` did) delays every
    answer."""
    consumer = TimedConsumer([(0.0, "a"), (0.0, "b"), (0.0, "c"), (0.5, "later")])
    started = time.monotonic()
    assert next_records(consumer, 2, 0.1) == ["a", "b"]
    assert next_records(consumer, 500, 0.1) == ["c"]
    assert time.monotonic() - started < 0.05  # neither waited for the limit
    assert next_records(consumer, 500, 0.05) == []

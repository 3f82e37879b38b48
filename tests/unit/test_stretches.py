"""How the projector cuts a batch into runs (projections/stretches.py), given/when/then with stand-in
handlers: each event names the rows it writes ("w") and reads ("r") in its payload."""

from __future__ import annotations

from collections.abc import Hashable
from datetime import UTC, datetime

from sqlalchemy import Connection

from spaktok.events.envelope import Envelope
from spaktok.projections import stretches


def _handler(name: str) -> stretches.BatchHandler:
    def handle(conn: Connection, envs: list[Envelope]) -> int:
        return len(envs)

    handle.__name__ = name
    return handle


A, B, C, CLOSING = _handler("A"), _handler("B"), _handler("C"), _handler("closing")
HANDLERS = {"t.A": A, "t.B": B, "t.C": C}


def ev(kind: str, writes: str = "", reads: str = "") -> Envelope:
    return Envelope(
        event_id=f"{kind}:{writes}:{reads}", type=f"t.{kind}", schema_version=1, aggregate_type="t",
        aggregate_id="x", sequence=1, occurred_at=datetime.now(UTC), causation_id="c",
        correlation_id="c", actor_id="a", payload={"w": list(writes), "r": list(reads)},
    )  # fmt: skip


def footprint(env: Envelope) -> dict[Hashable, bool]:
    return {**dict.fromkeys(env.payload["r"], False), **dict.fromkeys(env.payload["w"], True)}


def plan(*envs: Envelope) -> list[tuple[str, list[Envelope]]]:
    runs = stretches.plan(list(envs), HANDLERS, footprint, CLOSING)
    return [(handler.__name__ if handler else "alone", run) for handler, run in runs]


def test_kinds_that_share_no_row_are_gathered_one_run_each_and_the_stretch_closes_with_all_its_events() -> (
    None
):
    a1, b1, a2, c1, b2 = ev("A", "1"), ev("B", "2"), ev("A", "3"), ev("C", "4"), ev("B", "5")
    assert plan(a1, b1, a2, c1, b2) == [
        ("A", [a1, a2]),
        ("B", [b1, b2]),
        ("C", [c1]),
        ("closing", [a1, b1, a2, c1, b2]),
    ]


def test_one_kind_alone_needs_no_closing_run() -> None:
    a1, a2 = ev("A", "1"), ev("A", "1")
    assert plan(a1, a2) == [("A", [a1, a2])]


def test_a_row_written_then_read_by_another_kind_orders_the_writers_run_first() -> None:
    # B appears first, but A's write of row 1 comes before B's read of it
    b1, a1, b2 = ev("B", "9"), ev("A", "1"), ev("B", reads="1")
    assert plan(b1, a1, b2) == [("A", [a1]), ("B", [b1, b2]), ("closing", [b1, a1, b2])]


def test_a_row_read_then_written_by_another_kind_orders_the_readers_run_first() -> None:
    a1, b1 = ev("A", reads="1"), ev("B", "1")
    assert plan(a1, b1) == [("A", [a1]), ("B", [b1]), ("closing", [a1, b1])]


def test_two_kinds_reading_the_same_row_are_not_ordered() -> None:
    b1, a1 = ev("B", reads="1"), ev("A", reads="1")
    assert plan(b1, a1) == [("B", [b1]), ("A", [a1]), ("closing", [b1, a1])]


def test_an_event_that_would_order_two_runs_both_ways_starts_the_next_stretch() -> None:
    a1, b1, a2 = ev("A", "1"), ev("B", "1"), ev("A", "1")  # A before B, then B before A
    assert plan(a1, b1, a2) == [("A", [a1]), ("B", [b1]), ("closing", [a1, b1]), ("A", [a2])]


def test_a_cycle_through_a_third_kind_is_seen_too() -> None:
    # A before B (row 1), B before C (row 2), then A writes what C wrote (row 3): C before A, and A
    # is already before C through B
    a1, b1, c1, a2 = ev("A", "1"), ev("B", "12"), ev("C", "3", reads="2"), ev("A", "3")
    assert plan(a1, b1, c1, a2) == [
        ("A", [a1]),
        ("B", [b1]),
        ("C", [c1]),
        ("closing", [a1, b1, c1]),
        ("A", [a2]),
    ]


def test_an_event_without_a_batch_handler_ends_the_stretch_and_stands_alone() -> None:
    a1, other, a2 = ev("A", "1"), ev("Z"), ev("A", "2")
    assert plan(a1, other, a2) == [("A", [a1]), ("alone", [other]), ("A", [a2])]

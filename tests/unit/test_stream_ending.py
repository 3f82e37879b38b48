"""The end of a big stream: it lets a part of its viewers go, ends, and lets the rest go a part of
its viewer map per decision, with the leaves and watch times an end in one decision gives
(commands/stream/lifecycle.py `ending`, docs/decisions.md "A big stream's rare moments")."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from gwt import Given, at, fold
from test_aggregate_runner import EVENTS, Broker, Table, records, runner, stored_state
from test_stream_decider import (
    HOST,
    STREAM,
    STREAM_ID,
    base,
    end,
    ended,
    join,
    joined,
    leave,
    left,
    open_stream,
    started,
)

from spaktok.commands.parted_map import PartedMap
from spaktok.commands.parts import PartGroup
from spaktok.commands.stream import lifecycle, storage
from spaktok.commands.stream_state import StreamState
from spaktok.commands.streams import BanUser, ReleaseViewers
from spaktok.events.base import Event
from spaktok.events.streams import HeartbeatsRecorded, StreamEnded, ViewerLeft
from spaktok.processors.timers import timers
from spaktok.settings import Settings

VIEWERS = 5_000  # over LEAVES_PER_DECISION; 4 parts of the viewer map (~1,250 users each)


def release(seconds: float) -> ReleaseViewers:
    return ReleaseViewers(**base("release", "system", seconds))


def audience(count: int) -> Given[StreamState]:
    """A live stream joined by `count` viewers (one of whom left and came back)."""
    events: list[Event] = [started()]
    events += [joined(f"v{n:05d}", n / 1000) for n in range(count)]
    events += [left("v00007", 10, watch_time=3), joined("v00007", 20)]
    # beats of the earliest viewers: changes the map holds in its parts' overlays until it is stored
    beats = {f"v{n:05d}": at(30) for n in range(0, count, 7)}
    events.append(HeartbeatsRecorded(beats=beats, count=len(beats), viewer_count=count))
    return STREAM.given(*events)


def end_in_parts(given: Given[StreamState]) -> tuple[list[list[Event]], StreamState]:
    """The end's decision, then releases until one lets nobody go: each decision's events, and the
    state after them."""
    decisions = [given.when(end(100)).events()]
    state = fold(STREAM.evolve, STREAM.thaw(given.state), decisions[0])
    for n in range(1, 1_000):
        events = STREAM.decide(release(100 + n), state)
        if not events:
            return decisions, state
        decisions.append(events)
        state = fold(STREAM.evolve, STREAM.thaw(state), events)
    raise AssertionError("the releases never ended")


def leaves_of(decisions: list[list[Event]]) -> dict[str, tuple[int, Any]]:
    result = {}
    for events in decisions:
        for event in events:
            if isinstance(event, ViewerLeft):
                assert event.user_id not in result, f"{event.user_id} left twice"
                result[event.user_id] = (event.watch_time, event.left_at)
    return result


def test_a_big_stream_lets_a_part_go_ends_and_lets_each_next_part_go_in_a_decision() -> None:
    given = audience(VIEWERS)
    decisions, after = end_in_parts(given)
    first = decisions[0]  # a turn's leaves, then the end: the end is in the tail its caller is told
    assert isinstance(first[-1], StreamEnded) and first[-1].ended_at == at(100)
    parts = given.state.audience.viewers.cut
    assert parts > 1 and len(decisions) == parts  # one part per decision: the end's, then releases
    assert all(isinstance(e, ViewerLeft) and e.reason == "stream_ended" for e in first[:-1])
    for events in decisions[1:]:
        assert events and all(isinstance(e, ViewerLeft) and e.reason == "stream_ended" for e in events)
        assert len(events) <= 2 * VIEWERS // parts  # a part, not the audience
    assert (after.status, len(after.audience.viewers)) == ("ended", 0)


def test_a_part_bigger_than_a_decision_holds_is_let_go_in_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "LEAVES_PER_DECISION", 500)
    given = audience(VIEWERS)
    decisions, after = end_in_parts(given)
    viewers = given.state.audience.viewers
    sizes = [len(viewers.part_keys(index)) for index in range(viewers.cut)]
    assert max(sizes) > 500 and len(decisions) == sum(-(-size // 500) for size in sizes)
    assert all(sum(isinstance(e, ViewerLeft) for e in events) <= 500 for events in decisions)
    assert len(leaves_of(decisions)) == VIEWERS and len(after.audience.viewers) == 0


def test_the_parts_leaves_and_watch_times_are_those_of_an_end_in_one_decision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    given = audience(VIEWERS)
    in_parts = leaves_of(end_in_parts(given)[0])
    monkeypatch.setattr(lifecycle, "LEAVES_PER_DECISION", VIEWERS + 1)
    at_once = given.when(end(100)).events()
    assert isinstance(at_once[-1], StreamEnded)  # every leave first, then the end
    assert in_parts == leaves_of([at_once])
    assert len(in_parts) == VIEWERS and in_parts["v00007"][0] == 3 + 80


def test_a_small_stream_still_ends_in_one_decision_every_leave_first() -> None:
    events = audience(lifecycle.LEAVES_PER_DECISION).when(end(100)).events()
    assert [type(e) for e in events] == [ViewerLeft] * lifecycle.LEAVES_PER_DECISION + [StreamEnded]


def test_a_release_decided_again_on_the_state_as_stored_lets_the_same_part_go() -> None:
    """A worker that crashed after publishing a release decides it again on the state it loads,
    whose map holds its users in another order (its overlays folded); the part taken, and the order
    of its leaves, may not change."""
    given = audience(VIEWERS)
    first = given.when(end(100)).events()
    state = fold(STREAM.evolve, STREAM.thaw(given.state), first)
    decided, order = STREAM.decide(release(102), state), list(state.audience.viewers)
    main, contents = storage.split(state)
    stored = {}  # as the worker stores them: each part of a map's group under its own name
    for name, content in contents.items():
        stored.update(content if isinstance(content, PartGroup) else {name: content})
    loaded = storage.join(orjson.loads(orjson.dumps(main)), orjson.loads(orjson.dumps(stored)))
    assert list(loaded.audience.viewers) != order  # the case this test is for
    assert STREAM.decide(release(102), loaded) == decided


def test_while_its_viewers_are_let_go_nobody_joins_leaves_or_is_banned_out_of_turn() -> None:
    given = audience(VIEWERS)
    state = fold(STREAM.evolve, STREAM.thaw(given.state), given.when(end(100)).events())
    held = next(iter(state.audience.viewers))
    during = Given(STREAM, state)
    during.when(join("newcomer", 101)).then_rejected("stream-not-live")
    during.when(leave(held, 101)).then_rejected("not-watching")  # they left at the end, watch time to it
    ban = BanUser(**base("ban", HOST, 101), target_user_id=held)
    assert not any(isinstance(e, ViewerLeft) for e in during.when(ban).events())


def test_a_release_of_a_live_or_finished_stream_changes_nothing() -> None:
    STREAM.given(started(), joined("ann", 1)).when(release(5)).then()
    STREAM.given(started(), joined("ann", 1), left("ann", 4, watch_time=3), ended(4)).when(release(5)).then()


# the worker: the stream asks itself for the next part while any viewer is held


def forwarded_releases(broker: Broker) -> list[bytes]:
    return [value for topic, _, value, _ in broker.sent if b'"streams.ReleaseViewers"' in value]


def test_the_stream_asks_itself_for_each_next_part_until_everyone_left() -> None:
    table, broker = Table(), Broker()
    worker = runner(table, broker)
    crowd = [join(f"v{n:05d}", 1 + n / 10_000) for n in range(VIEWERS)]
    asyncio.run(worker.handle_batch(records(open_stream(), *crowd)))
    parts = PartedMap(dict.fromkeys(stored_state(table)["viewers"], 0)).cut
    broker.sent.clear()
    asyncio.run(worker.handle_batch(records(end(100))))
    decisions, leaves = 1, 0
    while True:
        leaves += sum(1 for topic, _, value, _ in broker.sent if topic == EVENTS and b"ViewerLeft" in value)
        asks = forwarded_releases(broker)
        if not asks:
            break
        assert len(asks) == 1
        broker.sent.clear()
        asyncio.run(worker.handle_batch(records(*asks)))
        decisions += 1
    assert (decisions, leaves) == (parts, VIEWERS)
    final = stored_state(table)
    assert (final["status"], final["viewers"]) == ("ended", {})


def test_the_stream_alone_asks_for_no_release() -> None:
    table, broker = Table(), Broker()
    worker = runner(table, broker)
    asyncio.run(worker.handle_batch(records(open_stream(), join("ann", 1), end(100), leave("ann", 101))))
    assert not forwarded_releases(broker)


def test_the_workers_timer_asks_an_ended_stream_that_still_holds_viewers() -> None:
    """The safety net for a lost forward: it picks the ended stream whose viewers are not all gone."""
    [timer] = [t for t in timers(Settings()) if t.name == "viewer-release"]
    given = audience(VIEWERS)
    holding = fold(STREAM.evolve, STREAM.thaw(given.state), given.when(end(100)).events())
    emptied = end_in_parts(given)[1]
    assert [timer.wanted(s, 0) for s in (given.state, holding, emptied)] == [False, True, False]
    assert isinstance(timer.build(STREAM_ID, at(200)), ReleaseViewers)

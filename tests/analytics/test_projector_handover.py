"""A partition of the ClickHouse projector that moves between processes and back (issue #20).

With a ClickHouse server every projector process runs the ClickHouse projector, so a partition can
move away and come back. Meanwhile the other process wrote its newer events, and the worker may
publish one of them again (a crash between publishing and storing re-emits the same event at a new
offset). The process the partition came back to must not trust what it remembered of the aggregate.
"""

from __future__ import annotations

import random
from dataclasses import replace

from history import START, Positions, StreamSim, play_stream

from spaktok.projections.clickhouse import ClickHouse, ClickHouseEventsProjector


def test_a_partition_that_comes_back_does_not_store_an_event_again(ch: ClickHouse) -> None:
    rng = random.Random(20)
    sim = StreamSim("s-handover", "host-handover", int(START.timestamp() * 1000), rng, Positions())
    play_stream(sim, rng, minutes=5, audience=[f"h-{i}" for i in range(5)], end=True)
    sequenced = [r for r in sim.records if r.envelope.sequence > 0]
    half = len(sequenced) // 2
    first, second = ClickHouseEventsProjector(ch), ClickHouseEventsProjector(ch)
    first.checkpoints()  # assigned
    first.apply(sequenced[:half], {})
    second.checkpoints()  # the partition moved: the second process writes the rest
    second.apply(sequenced[half:], {})
    first.checkpoints()  # and came back
    last_offset = max(r.offset for r in sim.records)
    again = replace(sequenced[-1], offset=last_offset + 1)  # the worker published it once more
    first.apply([again], {})
    rows = ch.query(
        "SELECT count() AS n FROM events WHERE event_id = {e:String}", {"e": again.envelope.event_id}
    )
    assert rows[0]["n"] == 1

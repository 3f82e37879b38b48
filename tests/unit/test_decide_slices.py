"""A decider's batch in slices of bounded bytes (processors/batches.py `slices`): in order, none
lost, each within the bound unless one record alone is over it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spaktok.processors.batches import decided_alone, slices
from spaktok.processors.bundling import Incoming


def records(sizes: list[int]) -> list[Incoming]:
    return [Incoming(b"s-1", b"x" * size, "commands", n % 3, n) for n, size in enumerate(sizes)]


@given(sizes=st.lists(st.integers(1, 3_000), max_size=60), bound=st.integers(1, 5_000))
def test_a_batch_is_cut_in_order_into_runs_within_the_bound(sizes: list[int], bound: int) -> None:
    batch = records(sizes)
    cut = slices(batch, bound)
    assert [r for piece in cut for r in piece] == batch  # every record once, in order
    for piece in cut:
        assert piece and (len(piece) == 1 or sum(len(r.value) for r in piece) <= bound)
    for before, after in zip(cut, cut[1:], strict=False):  # a slice closes only when the next record
        assert sum(len(r.value) for r in before) + len(after[0].value) > bound  # would not fit


def test_a_thousand_join_batches_are_decided_a_few_at_a_time() -> None:
    cut = slices(records([37_000] * 1_000))  # ~250 viewers each, as bench/like_shards.py sends them
    assert len(cut) > 100 and max(map(len, cut)) <= 8


def test_a_command_that_reads_a_whole_aggregate_is_a_slice_of_its_own() -> None:
    """Four shards' sweeps in one batch among likes: each sweep alone (fails if `alone` is not
    weighed: the small sweeps would share one slice), the likes around them together."""
    sweep = [("command-type", b"stream_shards.SweepShardViewers")]
    like = [("command-type", b"stream_shards.RecordShardLikes")]
    kinds = [like, sweep, sweep, like, like, sweep, sweep]
    batch = [
        Incoming(b"s-1:0", b"x" * 300, "commands", 0, n, alone=decided_alone(headers))
        for n, headers in enumerate(kinds)
    ]
    assert [[r.offset for r in piece] for piece in slices(batch)] == [[0], [1], [2], [3, 4], [5], [6]]
    assert not decided_alone(None) and not decided_alone([("other", b"streams.SweepViewers")])

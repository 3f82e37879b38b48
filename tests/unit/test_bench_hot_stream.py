"""bench/hot_stream.py in miniature: a sharded and an unsharded stream of 2,000 viewers, one hot
second, the silence; every count must come out exact and the stream must have been handed folds.

So a change in the shards, their timers' commands or the runners that breaks the bench fails here
instead of printing a table (the bench itself takes ~13 min at 1 M viewers).
"""

from __future__ import annotations

import asyncio
from types import ModuleType

import pytest
from bench_module import load_bench


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("hot_stream.py", "bench_hot_stream")


def test_a_small_hot_stream_is_counted_exactly_sharded_and_not(bench: ModuleType) -> None:
    [audience] = asyncio.run(bench.run([2000], shards=4, seconds=1))
    assert audience.exact, audience.notes
    second = audience.sharded[0]
    assert second.stream.events["streams.ShardLikesFolded"] >= 1
    # one batch per tick of the fold timer (four a second), as real time spaces them
    assert second.stream.batches == round(1 / bench.HotWorld().settings.shard_fold_interval_s)
    assert second.shards.events["stream_shards.ShardHeartbeatsRecorded"] >= 1
    assert len(audience.back_to_back.cold_us) == 1 and len(audience.back_to_back.warm_us) >= 1
    assert audience.silence.leavers == 2000 - audience.silence.beaters > 0

"""bench/worker.py in miniature: its measuring functions time real decisions, not refusals or nothing.

Each figure must be a positive number and each measured batch must have produced the events its
commands are for (a comment batch its CommentPosted, a gift's saga its debit, delivery and credit),
so a bench broken by a change in the runner or the deciders fails here instead of printing a table.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "worker.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_worker", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_every_command_type_is_measured_on_decisions_that_happened(bench: ModuleType) -> None:
    world = bench.World()
    measures = asyncio.run(bench.measure_commands(world, batches=2, warmup=1, viewers=100, like_ids=0))
    by_name = {m.name: m for m in measures}
    batch = bench.BATCH
    expected = {
        "comment": {"streams.CommentPosted": 2 * batch},
        "like batch": {"streams.LikesRecorded": 2 * batch},
        "heartbeat batch": {"streams.HeartbeatsRecorded": 2 * batch},
        "join": {"streams.ViewerJoined": 2 * batch},
        "gift saga": {
            "wallets.GiftDebited": 2 * batch,
            "streams.GiftReceived": 2 * batch,
            "earnings.EarningsCredited": 2 * batch,
        },
    }
    for name, events in expected.items():
        measure = by_name[name]
        assert len(measure.batches) == 2 and measure.commands() == 2 * batch
        assert measure.us_per_command > 0 and measure.batch_ms > 0, name
        assert measure.bytes_per_batch > 0 and measure.puts_per_batch > 0, name
        assert {kind: measure.events()[kind] for kind in events} == events, name
        assert measure.rejected() == 0, name
    steps = [m for m in measures if m.name.startswith("  ")]
    assert len(steps) == 3 and all(step.us_per_command > 0 for step in steps)


def test_the_audience_batches_and_the_restart_are_measured(bench: ModuleType) -> None:
    async def scenario() -> tuple[object, object]:
        world = bench.World()
        audience, stream = await bench.measure_audience(world, 100, batches=2, warmup=1)
        return audience, await bench.measure_load(world, stream)

    audience, load = asyncio.run(scenario())
    assert audience.size == 100 and audience.setup_s > 0 and audience.stored_bytes > 0
    assert audience.joins.batch_ms > 0 and audience.joins.bytes_per_batch > 0
    assert audience.joins.events()["streams.ViewerJoined"] == 2 * bench.BATCH
    assert load.viewers == 100 + 3 * bench.BATCH  # the measured batches' and the warm-up's joiners
    assert load.wall_s > 0 and load.events["streams.HeartbeatsRecorded"] == 1


def test_a_batch_that_decides_something_else_stops_the_bench(bench: ModuleType) -> None:
    refused = bench.Batch(commands=1, cpu_s=0.001, wall_s=0.001, bytes_put=0, puts=0, sent=[])
    with pytest.raises(AssertionError, match="decided"):
        bench._check("comment", refused, {"streams.CommentPosted": 1})

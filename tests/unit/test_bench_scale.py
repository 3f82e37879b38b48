"""bench/scale.py's pure helpers: the assignment read from a Faust worker's log, and the stall and
resume times read from decision timestamps, so a change in Faust's log format or an off-by-one in a
gap fails here instead of printing a wrong table."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from types import ModuleType

import pytest
from bench_module import load_bench

# two rebalances of one worker, as faust-streaming 0.15 logs them at info (cut to the tables)
WORKER_LOG = """\
[2026-12-03 04:07:37,564] [231] [INFO] Revoking previously assigned partitions set() for group spaktok-worker
[2026-12-03 04:07:40,760] [23189] [INFO] Setting newly assigned partitions
+Topic Partition Set-------------------------+--------------+
| topic                                      | partitions   |
+--------------------------------------------+--------------+
| spaktok-worker-stream-state-changelog      | {1, 3, 5, 7} |
| spaktok.commands.streams                   | {1, 3, 5, 7} |
| spaktok.commands.wallets                   | {1, 3, 5, 7} |
+--------------------------------------------+--------------+ for group spaktok-worker
[2026-12-03 04:07:40,765] [23189] [INFO] Executing _on_partitions_assigned
+Reading Starts At - Active------------------+-----------+--------+
| spaktok-worker-stream-state-changelog      | 1         | -1     |
[2026-12-03 04:08:02,001] [23189] [INFO] Setting newly assigned partitions
+Topic Partition Set-------------------------+--------------------------+
| topic                                      | partitions               |
+--------------------------------------------+--------------------------+
| spaktok.commands.streams                   | {0-3, 5, 6-7}            |
+--------------------------------------------+--------------------------+ for group spaktok-worker
"""


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("scale.py", "bench_scale")


def test_every_assignment_table_is_read_with_its_time(bench: ModuleType) -> None:
    found = bench.parse_assignments(WORKER_LOG)
    assert [parts for _, parts in found] == [
        {
            "spaktok-worker-stream-state-changelog": {1, 3, 5, 7},
            "spaktok.commands.streams": {1, 3, 5, 7},
            "spaktok.commands.wallets": {1, 3, 5, 7},
        },
        {"spaktok.commands.streams": {0, 1, 2, 3, 5, 6, 7}},
    ]
    first = datetime(2026, 12, 3, 4, 7, 40, 760000).timestamp()  # the log's local time
    assert found[0][0] == pytest.approx(first)
    assert found[1][0] - found[0][0] == pytest.approx(21.241)


def test_an_empty_assignment_and_a_log_without_one(bench: ModuleType) -> None:
    empty = WORKER_LOG + (
        "[2026-12-03 04:09:00,000] [231] [INFO] Setting newly assigned partitions set() "
        "for group spaktok-worker\n"
        "[2026-12-03 04:09:00,001] [23189] [INFO] Executing _on_partitions_assigned\n"
    )
    assert bench.parse_assignments(empty)[-1][1] == {}
    assert bench.parse_assignments("[2026-12-03 04:07:37,564] [1] [INFO] Starting...\n") == []


def test_first_stamp_finds_a_line_after_a_time(bench: ModuleType) -> None:
    assigned = datetime(2026, 12, 3, 4, 7, 40, 760000).timestamp()
    assert bench.first_stamp(WORKER_LOG, "Setting newly") == pytest.approx(assigned)
    later = bench.first_stamp(WORKER_LOG, "Setting newly", after=assigned)
    assert later == pytest.approx(datetime(2026, 12, 3, 4, 8, 2, 1000).timestamp())
    assert bench.first_stamp(WORKER_LOG, "no such line") is None


def test_partition_ranges(bench: ModuleType) -> None:
    assert bench.parse_partition_set("1-3, 7-10, 50") == {1, 2, 3, 7, 8, 9, 10, 50}
    assert bench.parse_partition_set("") == set()


def test_settled_means_each_partition_held_once(bench: ModuleType) -> None:
    assert bench.settled({"worker": {0, 2}, "worker-2": {1, 3}}, 4)
    assert not bench.settled({"worker": {0, 1, 2}, "worker-2": {2, 3}}, 4)  # mid-rebalance: held twice
    assert not bench.settled({"worker": {0, 1}}, 4)


def test_resumed_after_is_the_end_of_the_last_stall(bench: ModuleType) -> None:
    decided = [0.0, 0.2, 0.4, 9.0, 9.2, 9.4]  # killed at 0.5: nothing until 9.0
    assert bench.resumed_after(decided, since=0.5, until=9.5) == pytest.approx(8.5)
    assert bench.resumed_after([0.0, 0.2, 0.6, 0.8], since=0.5, until=1.0) == 0.0  # never stalled
    assert bench.longest_gap(decided, since=0.5, until=9.5) == pytest.approx(8.5)


def test_a_stream_that_stops_for_good_never_resumed(bench: ModuleType) -> None:
    decided = [0.0, 0.2, 0.4, 2.0, 2.2]  # a short stall, then nothing more until the end at 20
    assert bench.resumed_after(decided, since=0.5, until=20.0) == math.inf
    assert bench.longest_gap(decided, since=0.5, until=20.0) == pytest.approx(17.8)
    assert bench.resumed_after([], since=0.5, until=20.0) == math.inf


def test_cpu_is_grouped_by_role(bench: ModuleType) -> None:
    before = {"worker": 1.0, "worker-2": 2.0, "load generator (this process)": 5.0}
    after = {"worker": 1.5, "worker-2": 2.25, "postgres": 3.0, "load generator (this process)": 6.0}
    assert bench.by_role(before, after) == {
        "worker": {"worker": 0.5, "worker-2": 0.25},
        "postgres": {"postgres": 3.0},
        "bench": {"load generator (this process)": 1.0},
    }


def _run(bench: ModuleType, n: int, repeat: int, projector_cpu: float) -> object:
    """A measured N as `measure` returns it, with only the projectors' CPU (s) over 1,000 actions."""
    return bench.Result(
        n=n, commands=100, actions=1000, decided_s=1.0, projected_s=1.0, produce_per_s=1.0,
        idle={}, idle_s=1.0, worker_cpu={"worker": {"worker": 0.05}},
        projector_cpu={"projector": {"projector": projector_cpu}},
        assignment={}, groups={}, repeat=repeat,
    )  # fmt: skip


def test_rounds_are_summed_up_by_their_medians_and_paired_per_round(bench: ModuleType) -> None:
    """A slow round (the machine busy) moves neither median, and each round's ratio compares N's of
    the same minutes: 1 → 4 is 2x, 1x and 1.5x in the three rounds, 1.2x between the medians."""
    results = [
        _run(bench, 1, 0, 0.050), _run(bench, 4, 0, 0.100),
        _run(bench, 1, 1, 0.500), _run(bench, 4, 1, 0.500),
        _run(bench, 1, 2, 0.060), _run(bench, 4, 2, 0.090),
    ]  # fmt: skip
    projector = bench.cpu_of("projector")
    assert bench.medians(results, projector) == {1: pytest.approx(60.0), 4: pytest.approx(100.0)}
    assert bench.paired_ratios(results, projector, [1, 4]) == pytest.approx([2.0, 1.0, 1.5])
    head = bench.headline(results, type("Args", (), {"partitions": 8, "projectors": 0})())
    assert head["rounds"] == 3
    assert head["projector_cpu_per_1k_actions_ratio_4_vs_1"] == pytest.approx(100 / 60, abs=1e-3)
    assert head["per_round"]["projector"]["ratio_per_round"] == [2.0, 1.0, 1.5]


def test_a_threads_involuntary_switches_are_read_from_its_status(bench: ModuleType, tmp_path: Path) -> None:
    """Summed per thread by `switches`: a projector's work runs in threads, not its main one."""
    status = "Name:\tpython\nvoluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t42\n"
    (tmp_path / "status").write_text(status)
    assert bench.involuntary_switches(tmp_path) == 42
    assert bench.involuntary_switches(tmp_path / "gone") == 0

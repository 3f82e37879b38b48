"""The chaos soak in miniature (issue #16): `bench/chaos.py` for two fault cycles on its own stack.

Gifts, purchases and payouts from several clients while random processes are SIGKILLed (or Postgres
restarted) and command records duplicated; then nothing may be lost or doubled, every re-sent
request must answer as it did the first time, and the ledger check with the clients' receipts, the
Postgres and ClickHouse totals and the gap-free logs must all pass. The long run is
`python bench/chaos.py --cycles 50 --seed 1` (README "Performance").
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_a_short_chaos_soak_loses_and_doubles_nothing() -> None:
    sys.path.insert(0, str(BENCH))  # the bench's own imports (`load`) are siblings of it
    try:
        import chaos
    finally:
        sys.path.remove(str(BENCH))

    summary = chaos.main(["--cycles", "2", "--seed", "3", "--fans", "6", "--quiet-s", "1"])
    assert sum(summary.kills.values()) == 2
    assert summary.sends > 50, summary.counters
    assert (summary.lost, summary.doubled) == (0, 0), summary.problems
    assert summary.ledger_ok, summary.problems
    assert summary.last_line().endswith("lost=0 doubled=0 ledger=ok")

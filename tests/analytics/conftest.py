"""Analytics tests: the real ClickHouse engine in this process (chDB), fed through the real projector.

chDB opens one data directory per process, so the whole session shares one; each test uses its own
stream and user ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spaktok.projections.clickhouse import ClickHouse, apply_schema

pytest.register_assert_rewrite("history")


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb") / "clickhouse"


@pytest.fixture(scope="session")
def ch(chdb_path: Path) -> Iterator[ClickHouse]:
    client = ClickHouse(f"chdb://{chdb_path}")
    apply_schema(client)
    apply_schema(client)  # start-up applies it every time: it must be idempotent
    yield client

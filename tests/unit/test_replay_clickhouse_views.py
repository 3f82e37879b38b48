"""The ClickHouse rebuild (`spaktok replay`) creates its copy of every view that feeds a rebuilt table.

Its schema statements are rewritten into the rebuild's database by name (`VIEWS`, `DATA_TABLES`); a
view left out of `VIEWS` is created with `IF NOT EXISTS` under its live name, finds the live one and
is skipped, so the rebuilt table misses what that view would have put in it (found when the hot
streams' shard-heartbeat views were added: the rebuilt watch times differed from the live ones).
"""

from __future__ import annotations

from spaktok.projections.clickhouse import MV_DDL, schema_statements
from spaktok.projections.replay_clickhouse import DATA_TABLES, VIEWS


def views_feeding(statements: list[str]) -> set[str]:
    found = (MV_DDL.match(statement) for statement in statements)
    return {mv.group(1) for mv in found if mv is not None and mv.group(2) in DATA_TABLES}


def test_every_view_that_feeds_a_rebuilt_table_is_rebuilt_with_it() -> None:
    feeding = views_feeding(schema_statements())
    assert feeding and feeding <= set(VIEWS), sorted(feeding - set(VIEWS))


def test_a_new_view_missing_from_the_list_is_found() -> None:
    extra = "CREATE MATERIALIZED VIEW IF NOT EXISTS late_mv TO viewer_watch_time AS SELECT 1 FROM events"
    assert views_feeding([*schema_statements(), extra]) - set(VIEWS) == {"late_mv"}

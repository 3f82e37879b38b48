"""The statement checks and the error-to-kind mapping of analysts' SQL (projections/clickhouse_sql.py).
What ClickHouse itself refuses under `readonly=1` is measured in tests/integration/test_admin_sql.py."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from ipaddress import IPv4Address
from uuid import UUID

import pytest

from spaktok.projections import sql_output
from spaktok.projections.clickhouse_sql import SqlLimits, SqlRefused, SqlResult, checked, json_safe, refusal


def kind_of(sql: str) -> str:
    with pytest.raises(SqlRefused) as refused:
        checked(sql)
    return refused.value.kind


@pytest.mark.parametrize(
    ("sql", "sent"),
    [
        ("SELECT 1", "SELECT 1"),
        ("  select count() from events ;  ", "  select count() from events"),
        # after a trailing `;` the appended SETTINGS would be a statement of its own, the query unlimited
        ("SELECT 1; -- done", "SELECT 1"),
        ("SELECT 1 -- a comment", "SELECT 1"),
        ("SELECT 'a;b' AS x", "SELECT 'a;b' AS x"),
        ("SELECT 1 /* ; /* nested ; */ still */", "SELECT 1"),
        ("WITH 2 AS x SELECT x", "WITH 2 AS x SELECT x"),
        ("(SELECT 1) UNION ALL (SELECT 2)", "(SELECT 1) UNION ALL (SELECT 2)"),
        ("SHOW TABLES", "SHOW TABLES"),
        ("DESCRIBE TABLE events", "DESCRIBE TABLE events"),
        ("EXPLAIN SELECT 1", "EXPLAIN SELECT 1"),
        ("SELECT format FROM t", "SELECT format FROM t"),  # a column called format
        ("SELECT x AS format FROM t", "SELECT x AS format FROM t"),
        ("SELECT formatDateTime(now(), '%F')", "SELECT formatDateTime(now(), '%F')"),
        ("SELECT $$it's; fine$$", "SELECT $$it's; fine$$"),
    ],
)
def test_a_reading_statement_is_sent_cut_after_its_last_token(sql: str, sent: str) -> None:
    assert checked(sql) == sent


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("INSERT INTO events VALUES (1)", "sql-readonly"),
        ("create table x (a UInt8) engine=Memory", "sql-readonly"),
        ("ALTER TABLE events DELETE WHERE 1", "sql-readonly"),
        ("DROP TABLE events", "sql-readonly"),
        ("SYSTEM FLUSH LOGS", "sql-readonly"),
        ("ATTACH TABLE x", "sql-readonly"),
        ("KILL QUERY WHERE 1", "sql-readonly"),  # readonly=1 lets it through (measured)
        ("USE system", "sql-readonly"),  # readonly=1 lets it through, and it would stick to the session
        ("SET max_execution_time = 100", "sql-readonly"),
        ("SELECT * FROM events INTO OUTFILE '/tmp/x.csv'", "sql-readonly"),  # readonly=1 writes it
        ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "sql-readonly"),
        ("SELECT * FROM url('http://example.com/x', 'CSV', 'a String')", "sql-readonly"),
        ("SELECT * FROM s3Cluster('c', 'http://x/y')", "sql-readonly"),
        ("SELECT * FROM fileCluster('c', '/etc/passwd')", "sql-readonly"),
        ("SELECT * FROM python('settings')", "sql-readonly"),  # chDB's: reads the host process
        ("SELECT * FROM Remote('127.0.0.1', system.one)", "sql-readonly"),
        ("SELECT * FROM `python` /* hidden */ ('x')", "sql-readonly"),
        ("SELECT * FROM \"fileCluster\"('c', '/etc/passwd')", "sql-readonly"),
        ("SELECT 1; SELECT 2", "sql-statements"),
        ("SELECT 1; INSERT INTO events VALUES (1)", "sql-statements"),
        ("SELECT $$ $$; DROP TABLE events", "sql-statements"),  # a heredoc does not hide the `;`
        ("SELEC 1", "sql-syntax"),
        ("", "sql-syntax"),
        ("  ; ;", "sql-syntax"),
        ("-- only a comment", "sql-syntax"),
        ("SELECT 'unclosed", "sql-syntax"),
        ("SELECT 1 /* unclosed", "sql-syntax"),
        ("SELECT 1 FORMAT JSON", "sql-syntax"),
        ("SELECT 1 FORMAT CSV SETTINGS max_threads = 1", "sql-syntax"),
        ("SELECT '\x00'", "sql-syntax"),
        ("SELECT " + "1," * 60_000 + "1", "sql-too-large"),
    ],
)
def test_a_statement_that_is_not_one_reading_statement_is_refused(sql: str, kind: str) -> None:
    assert kind_of(sql) == kind


def test_the_limits_are_settings_the_query_cannot_change() -> None:
    limits = SqlLimits(max_rows=5, max_seconds=1.5, max_memory_bytes=10**8, max_result_bytes=10**6)
    assert limits.settings() == {
        "readonly": 1,  # not 2: 2 would let a SETTINGS clause raise the limits below
        "max_execution_time": 1.5,
        "timeout_overflow_mode": "throw",
        "max_result_rows": 5,
        "max_result_bytes": 10**6,
        "result_overflow_mode": "throw",
        "max_memory_usage": 10**8,
    }


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("Code: 62. DB::Exception: Syntax error: failed at position 7", "sql-syntax"),
        ("Code: 164. DB::Exception: Cannot execute query in readonly mode. (READONLY)", "sql-readonly"),
        ("Code: 159. DB::Exception: Timeout exceeded: elapsed 1000.1 ms. (TIMEOUT_EXCEEDED)", "sql-timeout"),
        ("Code: 396. DB::Exception: Limit for result exceeded, max rows: 10.00", "sql-too-large"),
        ("Code: 241. DB::Exception: Query memory limit exceeded: would use 192.00 MiB", "sql-memory"),
        ("Code: 60. DB::Exception: Unknown table expression identifier 'nosuch'", "sql-invalid"),
        ("something without a code", "sql-invalid"),
    ],
)
def test_a_clickhouse_error_maps_to_its_kind(message: str, kind: str) -> None:
    assert refusal(Exception(message), SqlLimits()).kind == kind


def test_a_nested_error_shows_the_innermost_message_without_our_settings() -> None:
    message = (
        "Code: 164. DB::Exception: Code: 164. DB::Exception: Cannot modify 'max_execution_time' setting "
        "in readonly mode. (READONLY) (version 26.9.2.1). (READONLY)"
    )
    detail = refusal(Exception(message), SqlLimits()).detail
    assert detail == "Cannot modify 'max_execution_time' setting in readonly mode. (READONLY)"


def test_the_mapping_can_fail() -> None:
    """A check that could not fail proves nothing: an unknown code is not called a timeout."""
    assert refusal(Exception("Code: 1. DB::Exception: x"), SqlLimits()).kind != "sql-timeout"


def test_values_become_json_safe() -> None:
    when = datetime(2026, 12, 3, 4, 5, 6, 789000, tzinfo=UTC)
    row = [
        when, date(2026, 1, 2), Decimal("1.50"), UUID(int=1), IPv4Address("1.2.3.4"), float("nan"),
        float("inf"), 2**64, -(2**63), b"caf\xc3\xa9", (1, "x"), {"a": [1, 2]}, None, True, 1.5,
    ]  # fmt: skip
    assert [json_safe(v) for v in row] == [
        "2026-12-03T04:05:06.789000+00:00", "2026-01-02", "1.50", "00000000-0000-0000-0000-000000000001",
        "1.2.3.4", None, None, str(2**64), -(2**63), "café", [1, "x"], {"a": [1, 2]}, None, True, 1.5,
    ]  # fmt: skip


def test_csv_and_json_carry_the_same_result() -> None:
    result = SqlResult(["a", "b"], ["UInt8", "Array(String)"], [[1, ["x", "y,z"]], [None, []]], 0.01)
    assert sql_output.csv_text(result) == 'a,b\r\n1,"[""x"",""y,z""]"\r\n,[]\r\n'
    assert sql_output.from_json(sql_output.as_json(result)) == result

"""`spaktok sql`: an analyst's query sent to `POST /v1/admin/sql` of a running API, or straight to a
ClickHouse server, and its answer written as a table, CSV or JSON (docs/analytics.md "Analysts' SQL")."""

from __future__ import annotations

from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from spaktok.projections import sql_output
from spaktok.projections.clickhouse_sql import SqlLimits, SqlRefused, SqlResult

CHDB_HELD = (
    "its chDB directory is held by the API process (a chDB directory opens in one process only): "
    'ask through the API instead, `spaktok sql --api http://127.0.0.1:8000 --token TOKEN "SELECT …"` '
    "with an analyst's or admin's token (`spaktok token ID --role analyst`)"
)


def via_api(api: str, token: str | None, sql: str, limits: SqlLimits) -> SqlResult:
    """The API's answer; its problem+json refusals come back as SqlRefused with the same kind."""
    import httpx

    if not token:
        raise SqlRefused("sql-usage", "--api needs --token (`spaktok token ID --role analyst`)")
    body = {"sql": sql, "maxRows": limits.max_rows, "maxSeconds": limits.max_seconds}
    try:
        response = httpx.post(
            f"{api.rstrip('/')}/v1/admin/sql",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=limits.max_seconds + 30,
        )
    except httpx.HTTPError as exc:
        raise SqlRefused("sql-unavailable", f"cannot reach the API at {api}: {exc}") from exc
    if response.status_code != 200:
        raise SqlRefused(*_problem(response))
    return sql_output.from_json(response.json())


def _problem(response: Any) -> tuple[str, str]:
    try:
        doc = response.json()
        return str(doc["type"]).rsplit("/", 1)[-1], f"{doc.get('detail', '')} (HTTP {response.status_code})"
    except (ValueError, KeyError):
        return "http-error", f"the API answered {response.status_code}: {response.text[:300]}"


def via_clickhouse(dsn: str, sql: str, limits: SqlLimits) -> SqlResult:
    """Straight to ClickHouse, with the checks and limits the API applies."""
    from spaktok.projections.clickhouse import ClickHouse

    try:
        ch = ClickHouse(dsn)
    except Exception as exc:  # noqa: BLE001 - say what to do
        # chDB reports a held directory as "Error initializing EmbeddedServer" (the lock is on stderr)
        hint = f"; if the API is running, {CHDB_HELD}" if dsn.startswith("chdb:") else ""
        raise SqlRefused("sql-unavailable", f"cannot open {dsn}: {exc}{hint}") from exc
    try:
        return ch.query_readonly(sql, limits)
    finally:
        ch.close()


def write(result: SqlResult, fmt: str, out: Console) -> None:
    """The result on `out`: a rich table (default), CSV with a header, or the API's JSON document."""
    if fmt == "csv":
        out.file.write(sql_output.csv_text(result))
    elif fmt == "json":
        out.file.write(orjson.dumps(sql_output.as_json(result), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        table = Table(*result.columns, caption=f"{len(result.rows):,} rows in {result.elapsed_s:.3f} s")
        for row in result.rows:
            table.add_row(*(sql_output.cell(v) for v in row))
        out.print(table)

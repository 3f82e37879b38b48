"""`spaktok audit export`: audit rows to CSV or Parquet, page by page (constant memory).

Rows come from ClickHouse directly or from the API's audit endpoints (when the API process holds
the chDB directory, or from another machine). The file layout is in docs/analytics.md.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from spaktok.projections import audit
from spaktok.projections.clickhouse import ClickHouse

Format = Literal["csv", "parquet"]
Page = tuple[list[dict[str, Any]], str | None]
PAGE_ROWS = 1000


def clickhouse_pages(
    ch: ClickHouse, kind: audit.Kind, flt: audit.AuditFilter
) -> Iterator[list[dict[str, Any]]]:
    cursor: str | None = None
    while True:
        rows, cursor = audit.page(ch, kind, flt, cursor=cursor, limit=PAGE_ROWS)
        if rows:
            yield rows
        if cursor is None:
            return


def api_pages(
    get: Callable[[str, dict[str, Any]], dict[str, Any]], kind: audit.Kind, flt: audit.AuditFilter
) -> Iterator[list[dict[str, Any]]]:
    """Pages of `GET /v1/audit/{kind}`; `get(path, params)` returns the decoded JSON answer."""
    params: dict[str, Any] = {"limit": PAGE_ROWS}
    for name, value in (("stream", flt.stream_id), ("user", flt.user_id)):
        if value:
            params[name] = value
    for name, moment in (("since", flt.since), ("until", flt.until)):
        if moment is not None:
            params[name] = moment.isoformat()
    while True:
        body = get(f"/v1/audit/{kind}", params)
        rows = [{**r, "occurredAt": datetime.fromisoformat(r["occurredAt"])} for r in body["items"]]
        if rows:
            yield rows
        if not body.get("nextCursor"):
            return
        params["cursor"] = body["nextCursor"]


def write(
    pages: Iterator[list[dict[str, Any]]],
    kind: audit.Kind,
    fmt: Format,
    out: Path,
    on_rows: Callable[[int], None] = lambda n: None,
) -> int:
    """Write every page to `out` (replaced); returns the number of rows written."""
    names = list(audit.columns(kind))
    tmp = out.with_name(out.name + ".partial")
    written = 0
    if fmt == "csv":
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(names)
            for rows in pages:
                writer.writerows([_csv_value(row[name]) for name in names] for row in rows)
                written += len(rows)
                on_rows(len(rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([(name, _arrow_type(pa, name)) for name in names])
        with pq.ParquetWriter(tmp, schema) as writer:
            for rows in pages:
                table = pa.Table.from_pylist([_plain(row, names) for row in rows], schema=schema)
                writer.write_table(table)
                written += len(rows)
                on_rows(len(rows))
    tmp.replace(out)  # a half-written export never sits under the requested name
    return written


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


def _plain(row: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return {
        name: orjson.dumps(row[name]).decode() if isinstance(row[name], dict | list) else row[name]
        for name in names
    }


def _arrow_type(pa: Any, name: str) -> Any:
    if name == "occurredAt":
        return pa.timestamp("ms", tz="UTC")
    if name in audit.INTEGER_COLUMNS:
        return pa.int64()
    return pa.string()

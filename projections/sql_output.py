"""How an analyst's SQL result is written out: the JSON document of `POST /v1/admin/sql`, CSV, and
back from that JSON (the CLI reads the API's answer into the same `SqlResult`)."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from spaktok.projections.clickhouse_sql import SqlResult


def as_json(result: SqlResult) -> dict[str, Any]:
    """The API's answer: columns with their ClickHouse types, rows as arrays in column order."""
    return {
        "columns": [{"name": n, "type": t} for n, t in zip(result.columns, result.types, strict=True)],
        "rows": result.rows,
        "rowCount": len(result.rows),
        "elapsedSeconds": result.elapsed_s,
    }


def from_json(doc: dict[str, Any]) -> SqlResult:
    return SqlResult(
        columns=[c["name"] for c in doc["columns"]],
        types=[c["type"] for c in doc["columns"]],
        rows=doc["rows"],
        elapsed_s=doc.get("elapsedSeconds", 0.0),
    )


def cell(value: Any) -> str:
    """A value as CSV and table cells show it: NULL empty, arrays/maps/tuples as JSON."""
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)


def csv_text(result: SqlResult) -> str:
    """RFC 4180 CSV with a header row of column names."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(result.columns)
    writer.writerows([cell(v) for v in row] for row in result.rows)
    return out.getvalue()

"""Analysts' read-only SQL: `POST /v1/admin/sql` (roles admin or analyst) runs one reading statement
on the ClickHouse the projector writes, under `readonly=1` and limits, through
`ClickHouse.query_readonly`; every refusal is a 4xx problem (docs/api.md "Analysts' SQL")."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import Field

from spaktok.api.clickhouse_host import on_clickhouse_host
from spaktok.api.deps import CurrentUser, ServicesDep
from spaktok.api.problems import Problem
from spaktok.api.schemas import Body
from spaktok.projections import sql_output
from spaktok.projections.clickhouse_sql import MAX_SQL_CHARS, SqlLimits, SqlRefused

router = APIRouter(tags=["analytics"])

SQL_ROLES = frozenset({"admin", "analyst"})
# refusal kind -> HTTP status: the analyst's statement is at fault (4xx), except an unreachable server
STATUS_BY_KIND = {
    "sql-syntax": 400,
    "sql-statements": 400,
    "sql-readonly": 403,
    "sql-invalid": 422,
    "sql-timeout": 422,
    "sql-too-large": 422,
    "sql-memory": 422,
    "sql-unavailable": 503,
}


class SqlBody(Body):
    sql: str = Field(min_length=1, max_length=MAX_SQL_CHARS)
    format: Literal["json", "csv"] = "json"
    max_rows: int = Field(10_000, ge=1, le=10_000_000)
    max_seconds: float | None = Field(None, gt=0, le=3600)


ANSWER = {
    "description": "columns (name, ClickHouse type) and rows; CSV with a header row when asked",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["columns", "rows", "rowCount", "elapsedSeconds"],
                "properties": {
                    "columns": {"type": "array", "items": {"type": "object"}},
                    "rows": {"type": "array", "items": {"type": "array"}},
                    "rowCount": {"type": "integer", "minimum": 0},
                    "elapsedSeconds": {"type": "number", "minimum": 0},
                },
            }
        },
        "text/csv": {"schema": {"type": "string"}},
    },
}


@router.post("/v1/admin/sql", response_model=None, responses={200: ANSWER})
@on_clickhouse_host
async def run_sql(body: SqlBody, user: CurrentUser, services: ServicesDep) -> dict[str, Any] | Response:
    """One read-only statement; columns and rows as JSON, or CSV with `"format": "csv"`. `maxRows` and
    `maxSeconds` are capped by the server's `SPAKTOK_SQL_MAX_ROWS` / `SPAKTOK_SQL_MAX_SECONDS`."""
    if not user.roles & SQL_ROLES:
        raise Problem(403, "forbidden", "analysts' SQL needs the role analyst or admin")
    if services.clickhouse is None:
        raise Problem(503, "analytics-unavailable", "ClickHouse is not configured for this API process")
    settings = services.settings
    limits = SqlLimits(
        max_rows=min(body.max_rows, settings.sql_max_rows),
        max_seconds=min(body.max_seconds or settings.sql_max_seconds, settings.sql_max_seconds),
        max_memory_bytes=settings.sql_max_memory_bytes,
    )
    try:
        result = await run_in_threadpool(services.clickhouse.query_readonly, body.sql, limits)
    except SqlRefused as refused:
        raise Problem(STATUS_BY_KIND.get(refused.kind, 422), refused.kind, refused.detail) from refused
    if body.format == "csv":
        return Response(sql_output.csv_text(result), media_type="text/csv; charset=utf-8")
    return sql_output.as_json(result)

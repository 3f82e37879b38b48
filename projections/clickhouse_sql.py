"""Analysts' read-only SQL on ClickHouse: the contract (`SqlLimits`, `SqlResult`, `SqlRefused`), the
statement checks made before ClickHouse sees a query, the per-query settings and the mapping of
ClickHouse's errors to refusal kinds (docs/analytics.md "Analysts' SQL").

Why checks of our own on top of `readonly=1` (measured on chDB 4.4 / ClickHouse 26.9 through
clickhouse-connect 1.12): `readonly=1` refuses INSERT, CREATE, ALTER, DROP, TRUNCATE, SYSTEM, ATTACH,
DETACH, RENAME, OPTIMIZE and the table functions file(), url(), s3(), remote(), mysql(), executable(),
and any change of a setting (a `SETTINGS` clause, `SET`); it lets through `SELECT … INTO OUTFILE`
(the file is written), `KILL QUERY`, `USE`, and several statements `a; b` (clickhouse-connect
appends the per-query settings to the last one only, so the first would run without `readonly`).
Some table functions (fileCluster, iceberg, deltaLake, chDB's python()) fail on their arguments
before the readonly check is reached, so they are refused by name here.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from typing import Any
from uuid import UUID

from clickhouse_connect.driver.exceptions import OperationalError

# statements that only read: the first word of the statement (after any opening parentheses)
READING_STATEMENTS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})
# table functions that reach outside the database (files, network, other servers, the host process)
OUTSIDE_FUNCTIONS = frozenset(
    {
        "file", "filecluster", "url", "urlcluster", "gcs", "oss", "cosn", "remote", "remotesecure",
        "cluster", "clusterallreplicas", "mysql", "postgresql", "mongodb", "redis", "sqlite", "jdbc",
        "odbc", "executable", "python", "input", "arrowflight", "ytsaurus", "dictionary",
    }
)  # fmt: skip
OUTSIDE_PREFIXES = ("s3", "hdfs", "azure", "iceberg", "deltalake", "hudi", "paimon")
# statements ClickHouse knows that write or administer: refused as `sql-readonly` (any other first
# word is not a statement at all: `sql-syntax`)
WRITING_STATEMENTS = frozenset(
    {
        "INSERT", "CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME", "ATTACH", "DETACH", "OPTIMIZE",
        "SYSTEM", "KILL", "GRANT", "REVOKE", "SET", "USE", "DELETE", "UPDATE", "EXCHANGE", "UNDROP",
        "BACKUP", "RESTORE", "MOVE", "CHECK", "WATCH", "BEGIN", "COMMIT", "ROLLBACK", "REPLACE",
    }
)  # fmt: skip
MAX_SQL_CHARS = 100_000


@dataclass(frozen=True, slots=True)
class SqlLimits:
    """What one analyst query may use; every field is enforced by ClickHouse itself."""

    max_rows: int = 10_000  # rows in the result (more is refused, not truncated)
    max_seconds: float = 10.0  # wall time of the query
    max_memory_bytes: int = 1_000_000_000  # memory of the query
    max_result_bytes: int = 50_000_000  # uncompressed bytes of the result

    def settings(self) -> dict[str, Any]:
        """The per-query ClickHouse settings: `readonly=1` rather than 2, because 1 also forbids the
        query from changing any setting, so a `SETTINGS max_execution_time=…` cannot lift a limit."""
        return {
            "readonly": 1,
            "max_execution_time": self.max_seconds,
            "timeout_overflow_mode": "throw",
            "max_result_rows": self.max_rows,
            "max_result_bytes": self.max_result_bytes,
            "result_overflow_mode": "throw",
            "max_memory_usage": self.max_memory_bytes,
        }


@dataclass(frozen=True, slots=True)
class SqlResult:
    """A query's answer, JSON-safe throughout (see `json_safe`)."""

    columns: list[str]
    types: list[str]  # ClickHouse type names, one per column
    rows: list[list[Any]] = field(default_factory=list)
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SqlRefused(Exception):
    """A query not run or stopped; `kind` is the problem type slug (docs/api.md "Analysts' SQL")."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


# --- statement checks -----------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<line>(--|\#[ !])[^\n]*)
    | (?P<block>/\*)
    | (?P<string>'(?:[^'\\]|\\.|'')*'|\$(?P<tag>[A-Za-z0-9_]*)\$.*?\$(?P=tag)\$)
    | (?P<quoted>"(?:[^"\\]|\\.|"")*"|`(?:[^`\\]|\\.|``)*`)
    | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def tokens(sql: str) -> list[tuple[str, int]]:
    """The statement's words and symbols with where each ends, comments left out and a string
    literal replaced by `'…'` (nothing written inside quotes can look like a keyword)."""
    out: list[tuple[str, int]] = []
    at = 0
    while at < len(sql):
        match = _TOKEN.match(sql, at)
        assert match is not None  # `other` matches any character
        kind = match.lastgroup
        if kind == "other" and match.group() in "'\"`":
            raise SqlRefused("sql-syntax", f"a quote opened at character {at + 1} is never closed")
        if kind == "block":
            at = _block_comment_end(sql, at)
            continue
        if kind == "string":
            out.append(("'…'", match.end()))
        elif kind in ("word", "other", "quoted"):
            out.append((match.group(), match.end()))
        at = match.end()
    return out


def _block_comment_end(sql: str, at: int) -> int:
    """Where a /* … */ comment ends; ClickHouse nests them."""
    depth, i = 0, at
    while i < len(sql):
        pair = sql[i : i + 2]
        if pair == "/*":
            depth, i = depth + 1, i + 2
        elif pair == "*/":
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    raise SqlRefused("sql-syntax", f"a comment opened at character {at + 1} is never closed")


def checked(sql: str) -> str:
    """The one reading statement in `sql`, cut after its last token, or SqlRefused. The cut matters:
    clickhouse-connect appends the limits as a `SETTINGS` clause, and after a trailing `;` they would
    form a statement of their own, leaving the query unlimited."""
    if len(sql) > MAX_SQL_CHARS:
        raise SqlRefused("sql-too-large", f"a query is at most {MAX_SQL_CHARS:,} characters")
    if "\x00" in sql:
        raise SqlRefused("sql-syntax", "the query contains a NUL character")
    located = tokens(sql)
    while located and located[-1][0] == ";":
        located.pop()
    words = [w for w, _ in located]
    if not words:
        raise SqlRefused("sql-syntax", "the query is empty")
    if ";" in words:
        raise SqlRefused("sql-statements", "one statement per request: remove the `;` between them")
    first = next((w for w in words if w != "("), "").upper()
    if first not in READING_STATEMENTS:
        reading = ", ".join(sorted(READING_STATEMENTS))
        if first in WRITING_STATEMENTS:
            raise SqlRefused("sql-readonly", f"{first} is refused: analysts' SQL only reads ({reading})")
        raise SqlRefused("sql-syntax", f"a statement starts with one of {reading}, not {first[:40]!r}")
    _check_words(words)
    return sql[: located[-1][1]]


def _check_words(words: list[str]) -> None:
    """Refuse what reads or writes outside the database, and a FORMAT clause (the format is ours)."""
    upper = [w.upper() for w in words]
    for i, word in enumerate(upper):
        following = upper[i + 1] if i + 1 < len(upper) else ""
        if word == "INTO" and following == "OUTFILE":
            raise SqlRefused("sql-readonly", "INTO OUTFILE writes a file: analysts' SQL is read-only")
        if following == "(" and _outside(word.strip('`"').lower()):  # `file`( names file() too
            raise SqlRefused(
                "sql-readonly", f"{words[i]}() reads outside the database: only its tables can be queried"
            )
        if word == "FORMAT" and i > 0 and _format_clause(upper, i):
            raise SqlRefused(
                "sql-syntax", "a FORMAT clause is not accepted: ask for json or csv with `format`"
            )


def _outside(name: str) -> bool:
    return name in OUTSIDE_FUNCTIONS or name.startswith(OUTSIDE_PREFIXES)


def _format_clause(upper: list[str], i: int) -> bool:
    """`FORMAT name` closing the statement (or before SETTINGS), not a column called `format`."""
    after = upper[i + 2 : i + 3]
    return (
        i + 1 < len(upper)
        and upper[i + 1][:1].isalpha()
        and upper[i - 1] not in {",", "SELECT", "AS", "."}
        and (not after or after == ["SETTINGS"])
    )


# --- errors ---------------------------------------------------------------------------------------

# ClickHouse error code -> refusal kind (the codes are ClickHouse's ErrorCodes.cpp)
KIND_BY_CODE = {
    62: "sql-syntax",  # SYNTAX_ERROR
    27: "sql-syntax",  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    164: "sql-readonly",  # READONLY
    497: "sql-readonly",  # ACCESS_DENIED
    159: "sql-timeout",  # TIMEOUT_EXCEEDED
    160: "sql-timeout",  # TOO_SLOW
    396: "sql-too-large",  # TOO_MANY_ROWS_OR_BYTES
    158: "sql-too-large",  # TOO_MANY_ROWS
    241: "sql-memory",  # MEMORY_LIMIT_EXCEEDED
    394: "sql-timeout",  # QUERY_WAS_CANCELLED
}
_CODE = re.compile(r"Code: (\d+)\.")
_NOISE = re.compile(r"\s*(SETTINGS readonly = .*|\(version [\d.]+\).*)$", re.DOTALL)


def refusal(exc: Exception, limits: SqlLimits) -> SqlRefused:
    """The refusal an error from ClickHouse stands for; an error not listed is the query's own fault
    (unknown table or column, wrong types): `sql-invalid`."""
    message = str(exc)
    if isinstance(exc, OperationalError):  # the server cannot be reached: not the query's fault
        return SqlRefused("sql-unavailable", f"ClickHouse cannot be reached: {message[:300]}")
    codes = [int(c) for c in _CODE.findall(message)]
    kind = next((KIND_BY_CODE[c] for c in codes if c in KIND_BY_CODE), "sql-invalid")
    at = message.rfind("DB::Exception:")  # a nested error repeats the prefix: keep the innermost
    text = _NOISE.sub("", message[at + len("DB::Exception:") :] if at >= 0 else message).strip()
    advice = {
        "sql-timeout": f"the query ran past {limits.max_seconds:g} s: filter by time or stream first",
        "sql-too-large": (
            f"the result is over {limits.max_rows:,} rows or {limits.max_result_bytes:,} bytes: "
            "aggregate, or add LIMIT"
        ),
        "sql-memory": f"the query needs more than {limits.max_memory_bytes:,} bytes of memory",
    }.get(kind)
    return SqlRefused(kind, f"{advice} ({text[:500]})" if advice else text[:1000])


# --- running --------------------------------------------------------------------------------------


def run(client: Any, sql: str, limits: SqlLimits) -> SqlResult:
    """Check `sql`, run it on a clickhouse-connect client with the limits, and convert the answer.
    The client must be one the projector does not use (chDB keeps `SET`s per client handle)."""
    statement = checked(sql)
    started = time.monotonic()
    try:
        result = client.query(statement, settings=limits.settings())
    except Exception as exc:  # noqa: BLE001 - every ClickHouse failure becomes a refusal kind
        raise refusal(exc, limits) from exc
    return SqlResult(
        columns=list(result.column_names),
        types=[t.name for t in result.column_types],
        rows=[[json_safe(v) for v in row] for row in result.result_rows],
        elapsed_s=round(time.monotonic() - started, 3),
    )


def json_safe(value: Any) -> Any:
    """A ClickHouse value as JSON can hold it, without loss where JSON can: times and dates ISO-8601,
    Decimal, UUID and IP addresses as strings, NaN and infinities null (as ClickHouse's JSON format),
    integers beyond 64 bits as strings, bytes as UTF-8 text, tuples as lists."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID | IPv4Address | IPv6Address):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {str(json_safe(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_safe(v) for v in value]
    return str(value)

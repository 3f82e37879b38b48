"""Postgres read model of platform enforcement: account suspensions (issue #15).

The channel aggregate decides suspensions (it refuses `StartStream` itself); this table exists so
the edges that are not the channel's to decide — comments, gifts, feeds, playback — can refuse a
suspended account with one indexed read. It lags the log by the projector's delay (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from spaktok import clock
from spaktok.commands.enforcement_decide import report_id
from spaktok.events.broadcasters import AccountReinstated, AccountSuspended
from spaktok.events.envelope import Envelope
from spaktok.events.streams import ReportsResolved, StreamReported
from spaktok.projections import moderation
from spaktok.projections.streams_views import decode_cursor, encode_cursor


def is_account_suspended(engine: Engine, user_id: str, *, now: datetime | None = None) -> bool:
    """True while the account has an unreinstated suspension whose `until` has not passed."""
    at = now or clock.now()
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT 1 FROM account_suspensions WHERE user_id = :u AND reinstated_at IS NULL "
                "AND (until IS NULL OR until > :now)"
            ),
            {"u": user_id, "now": at},
        ).first()
    return row is not None


def suspended_accounts(engine: Engine) -> dict[str, datetime | None]:
    """Every account under a suspension that was not lifted, with its `until` (None: until lifted).
    Expired ones are kept out when read."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT user_id, until FROM account_suspensions WHERE reinstated_at IS NULL "
                "AND (until IS NULL OR until > now())"
            )
        ).fetchall()
    return {row.user_id: row.until for row in rows}


def account_suspension(engine: Engine, user_id: str) -> dict[str, Any] | None:
    """The last suspension of the account as stored (reinstated or expired ones included)."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT user_id, reason, suspended_by, suspended_at, until, reinstated_at, reinstated_by "
                "FROM account_suspensions WHERE user_id = :u"
            ),
            {"u": user_id},
        ).first()
    return None if row is None else dict(row._mapping)


def _account_suspended(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, AccountSuspended)
    conn.execute(
        text(
            """INSERT INTO account_suspensions (user_id, reason, suspended_by, suspended_at, until)
            VALUES (:u, :reason, :by, :at, :until)
            ON CONFLICT (user_id) DO UPDATE SET reason = EXCLUDED.reason,
                suspended_by = EXCLUDED.suspended_by, suspended_at = EXCLUDED.suspended_at,
                until = EXCLUDED.until, reinstated_at = NULL, reinstated_by = NULL"""
        ),
        {
            "u": env.aggregate_id,
            "reason": e.reason,
            "by": e.suspended_by,
            "at": e.suspended_at,
            "until": e.until,
        },
    )
    return 1


def _account_reinstated(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, AccountReinstated)
    conn.execute(
        text("UPDATE account_suspensions SET reinstated_at = :at, reinstated_by = :by WHERE user_id = :u"),
        {"u": env.aggregate_id, "at": e.reinstated_at, "by": e.reinstated_by},
    )
    return 1


def _reported(conn: Connection, env: Envelope) -> int:
    """The report joins its round's row; a reporter appears once per round (latest reason and time)."""
    e = env.event()
    assert isinstance(e, StreamReported)
    report = report_id(env.aggregate_id, e.report_round)
    conn.execute(
        text(
            """INSERT INTO stream_report_reporters (report_id, reporter_id, reason, reported_at)
            VALUES (:r, :u, :reason, :at)
            ON CONFLICT (report_id, reporter_id) DO UPDATE SET reason = EXCLUDED.reason,
                reported_at = EXCLUDED.reported_at"""
        ),
        {"r": report, "u": e.reporter_id, "reason": e.reason, "at": e.reported_at},
    )
    conn.execute(
        text(
            """INSERT INTO stream_reports (report_id, stream_id, report_round, status, reporters,
                first_reported_at, last_reported_at)
            VALUES (:r, :s, :round, 'open', 1, :at, :at)
            ON CONFLICT (report_id) DO UPDATE SET last_reported_at = GREATEST(stream_reports.last_reported_at,
                EXCLUDED.last_reported_at),
                reporters = (SELECT count(*) FROM stream_report_reporters WHERE report_id = :r)"""
        ),
        {"r": report, "s": env.aggregate_id, "round": e.report_round, "at": e.reported_at},
    )
    return 2


def _resolved(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, ReportsResolved)
    conn.execute(
        text(
            "UPDATE stream_reports SET status = 'resolved', action = :action, note = :note, "
            "resolved_by = :by, resolved_at = :at WHERE report_id = :r"
        ),
        {"r": e.report_id, "action": e.action, "note": e.note, "by": e.resolved_by, "at": e.resolved_at},
    )
    moderation.log_action(
        conn, env, "resolve_reports", e.resolved_at, by=e.resolved_by, role="platform", reason=e.note
    )
    return 2


HANDLERS: dict[str, Callable[[Connection, Envelope], int]] = {
    "broadcasters.AccountSuspended": _account_suspended,
    "broadcasters.AccountReinstated": _account_reinstated,
    "streams.StreamReported": _reported,
    "streams.ReportsResolved": _resolved,
}


REPORT_COLUMNS = """r.report_id, r.stream_id, r.report_round, r.status, r.reporters, r.first_reported_at,
    r.last_reported_at, r.action, r.note, r.resolved_by, r.resolved_at, s.title, s.user_id AS owner_id,
    s.username AS owner_username, s.status AS stream_status, s.moderation_status"""


def list_reports(
    engine: Engine, *, status: str, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """The queue, most recently reported first, each report with its reporters; keyset-paginated.

    Raises ValueError on a cursor this module did not hand out.
    """
    where = ["r.status = :status"]
    params: dict[str, Any] = {"status": status, "limit": limit + 1}
    if cursor is not None:
        last_at, last_id = decode_cursor(cursor)
        where.append("(r.last_reported_at, r.report_id) < (:at, :rid)")
        params.update(at=datetime.fromisoformat(str(last_at)), rid=str(last_id))
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT {REPORT_COLUMNS} FROM stream_reports r LEFT JOIN live_streams s USING (stream_id) "
                f"WHERE {' AND '.join(where)} ORDER BY r.last_reported_at DESC, r.report_id DESC LIMIT :limit"
            ),
            params,
        ).fetchall()
        page = rows[:limit]
        ids = [row.report_id for row in page]
        reporters = conn.execute(
            text(
                "SELECT report_id, reporter_id, reason, reported_at FROM stream_report_reporters "
                "WHERE report_id = ANY(:ids) ORDER BY reported_at, reporter_id"
            ),
            {"ids": ids},
        ).fetchall()
    by_report: dict[str, list[dict[str, Any]]] = {}
    for r in reporters:
        by_report.setdefault(r.report_id, []).append(
            {"userId": r.reporter_id, "reason": r.reason, "reportedAt": _iso(r.reported_at)}
        )
    docs = [_report_document(row, by_report.get(row.report_id, [])) for row in page]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = encode_cursor(last.last_reported_at.isoformat(), last.report_id)
    return docs, next_cursor


def _report_document(row: Any, reporters: list[dict[str, Any]]) -> dict[str, Any]:
    resolution = None
    if row.status == "resolved":
        resolution = {
            "action": row.action,
            "note": row.note,
            "resolvedBy": row.resolved_by,
            "resolvedAt": _iso(row.resolved_at),
        }
    return {
        "reportId": row.report_id,
        "streamId": row.stream_id,
        "round": row.report_round,
        "status": row.status,
        "stream": {
            "title": row.title,
            "ownerId": row.owner_id,
            "ownerUsername": row.owner_username,
            "status": row.stream_status,
            "moderationStatus": row.moderation_status,
        },
        "count": row.reporters,
        "reporters": reporters,
        "firstReportedAt": _iso(row.first_reported_at),
        "lastReportedAt": _iso(row.last_reported_at),
        "resolution": resolution,
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")

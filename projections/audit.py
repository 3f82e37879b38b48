"""Audits answered from the archived log (the ClickHouse `events` table): gifts and moderation.

Rows come in log-time order, (occurred_at, event_id), and are paged by a keyset cursor over that
pair, so a page never repeats or skips a row while new events arrive. Duplicate rows of one event
are collapsed by FINAL. Formats and fields: docs/analytics.md.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from spaktok.projections.clickhouse import ClickHouse

Kind = Literal["gifts", "moderation"]

GIFT_TYPES = ("streams.GiftReceived", "streams.GiftRefused")
MODERATION_TYPES = (
    "streams.UserBanned",
    "streams.UserUnbanned",
    "streams.UserTimedOut",
    "streams.TimeoutLifted",
    "streams.CommentDeleted",
    "streams.ModeratorAdded",
    "streams.ModeratorRemoved",
    "streams.StreamReported",
    "streams.StreamFlagged",
    "streams.StreamSuspended",
    # platform enforcement (issue #15); account events live on the channel (`broadcaster`) aggregate
    "streams.ReportsResolved",
    "broadcasters.AccountSuspended",
    "broadcasters.AccountReinstated",
    # channel moderators (issue #18): the user is the moderator named, the actor the broadcaster
    "broadcasters.ChannelModeratorAdded",
    "broadcasters.ChannelModeratorRemoved",
)
MODERATION_AGGREGATES = ("stream", "broadcaster")

# column -> SQL over an `events` row; the order is the CSV/Parquet column order
GIFT_COLUMNS: dict[str, str] = {
    "occurredAt": "occurred_at",
    "eventId": "event_id",
    "streamId": "aggregate_id",
    "sequence": "sequence",
    "status": "if(type = 'streams.GiftReceived', 'received', 'refused')",
    "giftTx": "JSONExtractString(payload, 'gift_tx')",
    "senderId": "JSONExtractString(payload, 'sender_id')",
    "senderUsername": "JSONExtractString(payload, 'sender_username')",
    "receiverId": "JSONExtractString(payload, 'receiver_id')",
    "giftId": "JSONExtractString(payload, 'gift_id')",
    "giftName": "JSONExtractString(payload, 'gift_name')",
    "count": "JSONExtractUInt(payload, 'count')",
    "coinCost": "JSONExtractUInt(payload, 'coin_cost')",
    "broadcasterShare": "JSONExtractUInt(payload, 'broadcaster_share')",
    "platformShare": "JSONExtractUInt(payload, 'platform_share')",
    "realValueUsd": "JSONExtractString(payload, 'real_value_usd')",
    "revenueRule": "JSONExtractString(payload, 'revenue_rule')",
    "refusalReason": "JSONExtractString(payload, 'reason')",
}
# who acted: the moderator (`by`, `deleted_by`), the reporter, else the command's actor
MODERATION_ACTOR = (
    "multiIf(JSONHas(payload, 'by'), JSONExtractString(payload, 'by'), "
    "JSONHas(payload, 'deleted_by'), JSONExtractString(payload, 'deleted_by'), "
    "JSONHas(payload, 'reporter_id'), JSONExtractString(payload, 'reporter_id'), "
    "JSONHas(payload, 'suspended_by'), JSONExtractString(payload, 'suspended_by'), "
    "JSONHas(payload, 'resolved_by'), JSONExtractString(payload, 'resolved_by'), "
    "JSONHas(payload, 'reinstated_by'), JSONExtractString(payload, 'reinstated_by'), actor_id)"
)
MODERATION_COLUMNS: dict[str, str] = {
    "occurredAt": "occurred_at",
    "eventId": "event_id",
    # an account event's stream is the live stream it ended (empty when none), its user the account
    "streamId": "if(aggregate_type = 'stream', aggregate_id, JSONExtractString(payload, 'stream_id'))",
    "sequence": "sequence",
    "action": "replaceOne(replaceOne(type, 'streams.', ''), 'broadcasters.', '')",
    "userId": (
        "multiIf(JSONHas(payload, 'moderator_id'), JSONExtractString(payload, 'moderator_id'), "
        "aggregate_type = 'broadcaster', aggregate_id, JSONExtractString(payload, 'user_id'))"
    ),
    "actorId": MODERATION_ACTOR,
    "role": "JSONExtractString(payload, 'role')",
    "reason": "JSONExtractString(payload, 'reason')",
    "details": "payload",
}
INTEGER_COLUMNS = {"sequence", "count", "coinCost", "broadcasterShare", "platformShare"}


# the range of ClickHouse's DateTime64(3, 'UTC'), the type of `occurred_at`
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2299, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
MIN_MILLIS = int(EARLIEST.timestamp() * 1000)
MAX_MILLIS = int(LATEST.timestamp() * 1000)


@dataclass(frozen=True)
class AuditFilter:
    stream_id: str | None = None
    user_id: str | None = None  # gifts: sender or receiver; moderation: target or actor
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


def columns(kind: Kind) -> dict[str, str]:
    return GIFT_COLUMNS if kind == "gifts" else MODERATION_COLUMNS


def encode_cursor(occurred_at: datetime, event_id: str) -> str:
    millis = int(_utc(occurred_at).timestamp() * 1000)
    return base64.urlsafe_b64encode(orjson.dumps([millis, event_id])).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises ValueError on anything this module did not hand out."""
    try:
        millis, event_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except Exception as exc:  # noqa: BLE001 - any malformed cursor is the caller's mistake
        raise ValueError("not a cursor this API returned") from exc
    if not isinstance(millis, int) or not isinstance(event_id, str):
        raise ValueError("not a cursor this API returned")
    if not MIN_MILLIS <= millis <= MAX_MILLIS:
        raise ValueError("not a cursor this API returned")
    return datetime.fromtimestamp(millis / 1000, UTC), event_id


def in_range(value: datetime) -> datetime:
    """`value` in UTC (naive means UTC) when ClickHouse's DateTime64 can hold it, else ValueError.

    Outside 1900..2299 ClickHouse refuses the parameter (and clickhouse-connect renders years before
    1000 unpadded, "1-01-01"), so an out-of-range filter is the caller's mistake, not a server error.
    """
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"give a time between {EARLIEST.isoformat()} and {LATEST.isoformat()}") from exc
    if not EARLIEST <= utc <= LATEST:
        raise ValueError(f"give a time between {EARLIEST.isoformat()} and {LATEST.isoformat()}")
    return utc


def _conditions(kind: Kind, flt: AuditFilter) -> tuple[list[str], dict[str, Any]]:
    types = GIFT_TYPES if kind == "gifts" else MODERATION_TYPES
    cols = columns(kind)
    aggregates = ("stream",) if kind == "gifts" else MODERATION_AGGREGATES
    where = ["aggregate_type IN {aggregates:Array(String)}", "type IN {types:Array(String)}", "sequence > 0"]
    params: dict[str, Any] = {"types": list(types), "aggregates": list(aggregates)}
    if flt.stream_id:
        where.append(f"{cols['streamId']} = {{stream:String}}")
        params["stream"] = flt.stream_id
    if flt.user_id:
        if kind == "gifts":
            where.append(f"({cols['senderId']} = {{user:String}} OR {cols['receiverId']} = {{user:String}})")
        else:
            where.append(f"({cols['userId']} = {{user:String}} OR {MODERATION_ACTOR} = {{user:String}})")
        params["user"] = flt.user_id
    if flt.since:
        where.append("occurred_at >= {since:DateTime64(3, 'UTC')}")
        params["since"] = in_range(flt.since)
    if flt.until:
        where.append("occurred_at < {until:DateTime64(3, 'UTC')}")
        params["until"] = in_range(flt.until)
    return where, params


def count(ch: ClickHouse, kind: Kind, flt: AuditFilter) -> int:
    """How many rows match (an export's progress total)."""
    where, params = _conditions(kind, flt)
    return int(ch.query(f"SELECT count() AS n FROM events FINAL WHERE {' AND '.join(where)}", params)[0]["n"])


def page(
    ch: ClickHouse, kind: Kind, flt: AuditFilter, *, cursor: str | None = None, limit: int = 100
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of audit rows in log-time order and the cursor of the next page (None at the end)."""
    where, params = _conditions(kind, flt)
    params["n"] = limit + 1
    if cursor:
        after_at, after_id = decode_cursor(cursor)
        where.append(
            "(occurred_at > {after_at:DateTime64(3, 'UTC')} OR "
            "(occurred_at = {after_at:DateTime64(3, 'UTC')} AND event_id > {after_id:String}))"
        )
        params.update(after_at=after_at, after_id=after_id)
    select = ", ".join(f"{sql} AS `{name}`" for name, sql in columns(kind).items())
    rows = ch.query(
        f"SELECT {select} FROM events FINAL WHERE {' AND '.join(where)} "
        "ORDER BY occurred_at, event_id LIMIT {n:UInt32}",
        params,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    for row in rows:
        row["occurredAt"] = _utc(row["occurredAt"])
        for name in INTEGER_COLUMNS & row.keys():
            row[name] = int(row[name])
        if "details" in row:
            row["details"] = orjson.loads(row["details"])
    next_cursor = encode_cursor(rows[-1]["occurredAt"], rows[-1]["eventId"]) if more and rows else None
    return rows, next_cursor


def as_json(row: dict[str, Any]) -> dict[str, Any]:
    """A row for the HTTP answer: timestamps as ISO-8601 UTC."""
    return {**row, "occurredAt": row["occurredAt"].isoformat(timespec="milliseconds").replace("+00:00", "Z")}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

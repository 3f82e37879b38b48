"""Stream analytics from ClickHouse (spec §3.6 getStreamAnalytics, §10.2); definitions in docs/analytics.md.

Figures that sum events read `events FINAL` (a duplicate row of the same event is collapsed by its
ordering key); the per-minute timeline reads `stream_minute_metrics`, watch time `viewer_watch_time`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from spaktok.commands.audiences import AUDIENCE_SHARDS
from spaktok.commands.gifts import usd
from spaktok.projections.clickhouse import ClickHouse

TOP = 10  # gifters and viewers listed
UNKNOWN = "unknown"  # demographics of viewers whose token said nothing

STREAM_EVENTS = (
    "FROM events FINAL WHERE aggregate_type = 'stream' AND aggregate_id = {s:String} AND sequence > 0"
)
# the likes a hot stream's shards counted (commands/stream_shards.py): who liked is there, not on the stream
SHARD_EVENTS = (
    "FROM events FINAL WHERE aggregate_type = 'stream_shard' AND stream_id = {s:String} AND sequence > 0"
)
# a running visit lasts from its join to the viewer's last sign of life (join or heartbeat)
WATCH_TIME = (
    "completed + if(joined > left_at, intDiv(toUnixTimestamp64Milli(greatest(seen, joined)) "
    "- toUnixTimestamp64Milli(joined), 1000), 0)"
)
VIEWER_WATCH = (
    "SELECT stream_id, user_id, max(completed_s) AS completed, max(last_joined) AS joined, "
    "max(last_left) AS left_at, max(last_seen) AS seen FROM viewer_watch_time "
    "WHERE stream_id {streams} GROUP BY stream_id, user_id HAVING joined > toDateTime64(0, 3, 'UTC')"
)


def utc(value: datetime) -> datetime:
    """ClickHouse hands back naive datetimes in the column's zone, which is UTC everywhere here."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime) -> str:
    return utc(value).isoformat().replace("+00:00", "Z")


def stream_analytics(
    ch: ClickHouse, stream_id: str, *, now: datetime, coin_value_usd: str, top: int = TOP
) -> dict[str, Any] | None:
    """Everything getStreamAnalytics answers for one stream; None when the log has no such stream."""
    params = {"s": stream_id}
    lifecycle = ch.query(
        "SELECT type, occurred_at, payload " + STREAM_EVENTS + " AND type IN "
        "('streams.StreamStarted', 'streams.StreamEnded') ORDER BY sequence",
        params,
    )
    started = next((r for r in lifecycle if r["type"] == "streams.StreamStarted"), None)
    if started is None:
        return None
    start_payload = orjson.loads(started["payload"])
    ended = next((r for r in lifecycle if r["type"] == "streams.StreamEnded"), None)
    started_at = utc(started["occurred_at"])
    ended_at = utc(ended["occurred_at"]) if ended is not None else None
    until = ended_at or utc(now)
    totals = _totals(ch, params)
    watch = _watch_time(ch, params, top)
    unique = totals["uniqueViewers"]
    engaged = _engaged_viewers(ch, params)
    revenue = _revenue(ch, params, coin_value_usd)
    return {
        "streamId": stream_id,
        "broadcasterId": start_payload["user_id"],
        "status": "ended" if ended is not None else "live",
        "startedAt": iso(started_at),
        "endedAt": iso(ended_at) if ended_at is not None else None,
        "durationSeconds": max(0, int((until - started_at).total_seconds())),
        "totals": totals,
        "peakViewers": totals["peakViewers"],
        "uniqueViewers": unique,
        "averageWatchTimeSeconds": round(watch["total"] / unique, 2) if unique else 0.0,
        "totalWatchTimeSeconds": watch["total"],
        "engagement": {
            "engagedViewers": engaged,
            "rate": round(engaged / unique, 4) if unique else 0.0,
        },
        "viewerTimeline": _timeline(ch, params),
        "revenue": revenue,
        "topGifters": _top_gifters(ch, params, top),
        "topViewers": watch["top"],
        "demographics": _demographics(ch, params),
        "followerGrowth": _follower_growth(ch, start_payload["user_id"], started_at, until),
        "snapshots": _snapshots(ch, params),
    }


def _totals(ch: ClickHouse, params: dict[str, Any]) -> dict[str, int]:
    [row] = ch.query(
        "SELECT countIf(type = 'streams.ViewerJoined') AS visits, "
        "uniqExactIf(user_id, type = 'streams.ViewerJoined') AS unique_viewers, "
        "maxIf(JSONExtractUInt(payload, 'viewer_count'), type IN ('streams.ViewerJoined', "
        "'streams.ViewerLeft', 'streams.HeartbeatsRecorded', 'streams.StreamAnalyticsRecorded')) AS peak, "
        "sumIf(JSONExtractUInt(payload, 'count'), type IN ('streams.LikesRecorded', "
        "'streams.ShardLikesFolded')) AS likes, "
        "countIf(type = 'streams.CommentPosted') AS comments, "
        "countIf(type = 'streams.GiftReceived') AS gift_sends, "
        "sumIf(JSONExtractUInt(payload, 'count'), type = 'streams.GiftReceived') AS gifts, "
        "sumIf(JSONExtractUInt(payload, 'coin_cost'), type = 'streams.GiftReceived') AS revenue "
        + STREAM_EVENTS,
        params,
    )
    return {
        "visits": int(row["visits"]),
        "uniqueViewers": int(row["unique_viewers"]),
        "totalViews": int(row["unique_viewers"]),  # as on the stream document: distinct viewers
        "peakViewers": int(row["peak"]),
        "likes": int(row["likes"]),
        "comments": int(row["comments"]),
        "giftSends": int(row["gift_sends"]),
        "gifts": int(row["gifts"]),
        "revenue": int(row["revenue"]),
    }


def _timeline(ch: ClickHouse, params: dict[str, Any]) -> list[dict[str, Any]]:
    rows = ch.query(
        "SELECT minute, max(peak_viewers) AS viewers, sum(joins) AS joins, sum(leaves) AS leaves, "
        "sum(likes) AS likes, sum(comments) AS comments, sum(gifts) AS gifts, sum(revenue) AS revenue, "
        "sum(broadcaster_revenue) AS broadcaster, sum(platform_revenue) AS platform "
        "FROM stream_minute_metrics WHERE stream_id = {s:String} GROUP BY minute ORDER BY minute",
        params,
    )
    return [
        {
            "minute": iso(r["minute"]),
            "peakViewers": int(r["viewers"]),
            "joins": int(r["joins"]),
            "leaves": int(r["leaves"]),
            "likes": int(r["likes"]),
            "comments": int(r["comments"]),
            "gifts": int(r["gifts"]),
            "revenue": int(r["revenue"]),
            "broadcasterRevenue": int(r["broadcaster"]),
            "platformRevenue": int(r["platform"]),
        }
        for r in rows
    ]


def _watch_time(ch: ClickHouse, params: dict[str, Any], top: int) -> dict[str, Any]:
    rows = ch.query(
        f"SELECT user_id, {WATCH_TIME} AS watch FROM ({VIEWER_WATCH.format(streams='= {s:String}')}) "
        "ORDER BY watch DESC, user_id",
        params,
    )
    return {
        "total": sum(int(r["watch"]) for r in rows),
        "top": [{"userId": r["user_id"], "watchTimeSeconds": int(r["watch"])} for r in rows[:top]],
    }


def _engaged_viewers(ch: ClickHouse, params: dict[str, Any]) -> int:
    """Viewers (joined at least once) who also commented, liked or sent a gift."""
    [row] = ch.query(
        "SELECT count() AS n FROM (SELECT DISTINCT user_id " + STREAM_EVENTS + " AND type = "
        "'streams.ViewerJoined') WHERE user_id IN (SELECT user_id " + STREAM_EVENTS + " AND type = "
        "'streams.CommentPosted' UNION ALL SELECT arrayJoin(JSONExtractKeys(payload, 'likes')) "
        + STREAM_EVENTS
        + " AND type = 'streams.LikesRecorded' UNION ALL SELECT arrayJoin(JSONExtractKeys(payload, 'likes')) "
        + SHARD_EVENTS
        + " AND type = 'stream_shards.ShardLikesRecorded' UNION ALL SELECT JSONExtractString(payload, "
        "'sender_id') " + STREAM_EVENTS + " AND type = 'streams.GiftReceived')",
        params,
    )
    return int(row["n"])


def _revenue(ch: ClickHouse, params: dict[str, Any], coin_value_usd: str) -> dict[str, Any]:
    rows = ch.query(
        "SELECT JSONExtractString(payload, 'gift_id') AS gift_id, "
        "argMax(JSONExtractString(payload, 'gift_name'), sequence) AS gift_name, count() AS sends, "
        "sum(JSONExtractUInt(payload, 'count')) AS gifts, "
        "sum(JSONExtractUInt(payload, 'coin_cost')) AS coins, "
        "sum(JSONExtractUInt(payload, 'broadcaster_share')) AS broadcaster, "
        "sum(JSONExtractUInt(payload, 'platform_share')) AS platform "
        + STREAM_EVENTS
        + " AND type = 'streams.GiftReceived' GROUP BY gift_id ORDER BY coins DESC, gift_id",
        params,
    )
    coins = sum(int(r["coins"]) for r in rows)
    broadcaster = sum(int(r["broadcaster"]) for r in rows)
    platform = sum(int(r["platform"]) for r in rows)
    return {
        "coins": coins,
        "broadcasterCoins": broadcaster,
        "platformCoins": platform,
        "usd": usd(coins, coin_value_usd),
        "broadcasterUsd": usd(broadcaster, coin_value_usd),
        "platformUsd": usd(platform, coin_value_usd),
        "byGift": [
            {
                "giftId": r["gift_id"],
                "giftName": r["gift_name"],
                "sends": int(r["sends"]),
                "gifts": int(r["gifts"]),
                "coins": int(r["coins"]),
            }
            for r in rows
        ],
    }


def _top_gifters(ch: ClickHouse, params: dict[str, Any], top: int) -> list[dict[str, Any]]:
    rows = ch.query(
        "SELECT JSONExtractString(payload, 'sender_id') AS sender, "
        "argMax(JSONExtractString(payload, 'sender_username'), sequence) AS username, "
        "sum(JSONExtractUInt(payload, 'coin_cost')) AS coins, "
        "sum(JSONExtractUInt(payload, 'count')) AS gifts "
        + STREAM_EVENTS
        + " AND type = 'streams.GiftReceived' GROUP BY sender ORDER BY coins DESC, sender LIMIT {n:UInt32}",
        {**params, "n": top},
    )
    return [
        {"userId": r["sender"], "username": r["username"], "coins": int(r["coins"]), "gifts": int(r["gifts"])}
        for r in rows
    ]


def _demographics(ch: ClickHouse, params: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Each distinct viewer once, with what their latest join said."""
    rows = ch.query(
        "SELECT if(country = '', {u:String}, country) AS country, "
        "if(age_bucket = '', {u:String}, age_bucket) AS age_bucket, count() AS viewers FROM (SELECT user_id, "
        # a null is '' here: argMax would skip nulls and answer an older join's value
        "argMax(JSONExtractString(payload, 'country'), sequence) AS country, "
        "argMax(JSONExtractString(payload, 'age_bucket'), sequence) AS age_bucket "
        + STREAM_EVENTS
        + " AND type = 'streams.ViewerJoined' GROUP BY user_id) GROUP BY country, age_bucket",
        {**params, "u": UNKNOWN},
    )
    countries: dict[str, int] = {}
    ages: dict[str, int] = {}
    for r in rows:
        countries[r["country"]] = countries.get(r["country"], 0) + int(r["viewers"])
        ages[r["age_bucket"]] = ages.get(r["age_bucket"], 0) + int(r["viewers"])

    def ranked(counts: dict[str, int]) -> dict[str, int]:
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    return {"countries": ranked(countries), "ageBuckets": ranked(ages)}


def _follower_growth(ch: ClickHouse, broadcaster: str, since: datetime, until: datetime) -> dict[str, int]:
    """Follower-set changes of the broadcaster's audience shards while the stream was live."""
    [row] = ch.query(
        "SELECT countIf(type = 'audiences.FollowerAdded') AS gained, "
        "countIf(type = 'audiences.FollowerRemoved') AS lost FROM events FINAL "
        "WHERE aggregate_type = 'audience' AND aggregate_id IN {shards:Array(String)} AND sequence > 0 "
        "AND occurred_at >= {since:DateTime64(3, 'UTC')} AND occurred_at <= {until:DateTime64(3, 'UTC')}",
        {
            "shards": [f"{broadcaster}:{shard}" for shard in range(AUDIENCE_SHARDS)],
            "since": since,
            "until": until,
        },
    )
    gained, lost = int(row["gained"]), int(row["lost"])
    return {"gained": gained, "lost": lost, "net": gained - lost}


def _snapshots(ch: ClickHouse, params: dict[str, Any]) -> list[dict[str, Any]]:
    rows = ch.query(
        "SELECT payload " + STREAM_EVENTS + " AND type = 'streams.StreamAnalyticsRecorded' ORDER BY sequence",
        params,
    )
    snapshots = []
    for row in rows:
        p = orjson.loads(row["payload"])
        snapshots.append(
            {
                "timestamp": p["recorded_at"],
                "viewerCount": p["viewer_count"],
                "likes": p["likes"],
                "gifts": p["gifts"],
                "comments": p["comments"],
                "revenue": p["revenue"],
                "topGifters": [
                    {"userId": g["user_id"], "coins": g["coins"], "gifts": g["gifts"]}
                    for g in p["top_gifters"]
                ],
                "topViewers": [
                    {"userId": v["user_id"], "watchTimeSeconds": v["watch_time"]} for v in p["top_viewers"]
                ],
            }
        )
    return snapshots

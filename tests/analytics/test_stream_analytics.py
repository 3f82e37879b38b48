"""getStreamAnalytics on chDB: a seeded random history through the real decider and projector, every
figure compared with what the simulation computed from the actions it took."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest
from history import START, FollowSim, Positions, StreamSim, build, play_stream

from spaktok.commands.gifts import usd
from spaktok.projections.analytics import stream_analytics
from spaktok.projections.clickhouse import COLUMNS, ClickHouse, ClickHouseEventsProjector


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def expected(sim: StreamSim, now_ms: int, follows: FollowSim | None) -> dict[str, Any]:
    watch = sim.watch_times()
    unique = len(watch)
    engaged = {
        u
        for u in watch
        if u in sim.commenters or sim.likes_by_user.get(u) or any(g["sender"] == u for g in sim.gifts)
    }
    by_gift: dict[str, dict[str, Any]] = {}
    gifters: dict[str, dict[str, Any]] = {}
    for g in sim.gifts:
        entry = by_gift.setdefault(
            g["gift_id"],
            {"giftId": g["gift_id"], "giftName": g["gift_name"], "sends": 0, "gifts": 0, "coins": 0},
        )
        entry["sends"] += 1
        entry["gifts"] += g["count"]
        entry["coins"] += g["coins"]
        gifter = gifters.setdefault(
            g["sender"], {"userId": g["sender"], "username": g["sender"].upper(), "coins": 0, "gifts": 0}
        )
        gifter["coins"] += g["coins"]
        gifter["gifts"] += g["count"]
    coins = sum(g["coins"] for g in sim.gifts)
    broadcaster = sum(g["broadcaster"] for g in sim.gifts)
    countries: dict[str, int] = defaultdict(int)
    ages: dict[str, int] = defaultdict(int)
    for country, age in sim.latest_demo.values():
        countries[country] += 1
        ages[age] += 1
    until = sim.end_ms if sim.end_ms is not None else now_ms
    growth = {"gained": 0, "lost": 0, "net": 0}
    if follows is not None:
        for at, kind in follows.changes:
            if sim.start_ms <= at <= until:
                growth["gained" if kind == "added" else "lost"] += 1
        growth["net"] = growth["gained"] - growth["lost"]
    ranked = sorted(watch.items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "status": "ended" if sim.end_ms is not None else "live",
        "startedAt": iso(sim.start_ms),
        "endedAt": iso(sim.end_ms) if sim.end_ms is not None else None,
        "durationSeconds": (until - sim.start_ms) // 1000,
        "totals": {
            "visits": sim.visits,
            "uniqueViewers": unique,
            "totalViews": unique,
            "peakViewers": sim.peak,
            "likes": sum(sim.likes_by_user.values()),
            "comments": sim.comments,
            "giftSends": len(sim.gifts),
            "gifts": sum(g["count"] for g in sim.gifts),
            "revenue": coins,
        },
        "peakViewers": sim.peak,
        "uniqueViewers": unique,
        "totalWatchTimeSeconds": sum(watch.values()),
        "averageWatchTimeSeconds": round(sum(watch.values()) / unique, 2) if unique else 0.0,
        "engagement": {
            "engagedViewers": len(engaged),
            "rate": round(len(engaged) / unique, 4) if unique else 0.0,
        },
        "viewerTimeline": [
            {
                "minute": minute.isoformat().replace("+00:00", "Z"),
                "peakViewers": m.peak,
                "joins": m.joins,
                "leaves": m.leaves,
                "likes": m.likes,
                "comments": m.comments,
                "gifts": m.gifts,
                "revenue": m.revenue,
                "broadcasterRevenue": m.broadcaster,
                "platformRevenue": m.platform,
            }
            for minute, m in sorted(sim.minutes.items())
        ],
        "revenue": {
            "coins": coins,
            "broadcasterCoins": broadcaster,
            "platformCoins": coins - broadcaster,
            "usd": usd(coins, "0.01"),
            "broadcasterUsd": usd(broadcaster, "0.01"),
            "platformUsd": usd(coins - broadcaster, "0.01"),
            "byGift": sorted(by_gift.values(), key=lambda g: (-g["coins"], g["giftId"])),
        },
        "topGifters": sorted(gifters.values(), key=lambda g: (-g["coins"], g["userId"]))[:10],
        "topViewers": [{"userId": u, "watchTimeSeconds": w} for u, w in ranked[:10]],
        "demographics": {
            "countries": dict(sorted(countries.items(), key=lambda kv: (-kv[1], kv[0]))),
            "ageBuckets": dict(sorted(ages.items(), key=lambda kv: (-kv[1], kv[0]))),
        },
        "followerGrowth": growth,
        "snapshots": sim.snapshots,
    }


def compare(actual: dict[str, Any], wanted: dict[str, Any]) -> None:
    snapshots = actual.pop("snapshots")
    for key, value in wanted.items():
        if key == "snapshots":
            continue
        assert actual[key] == value, key
    assert len(snapshots) == len(wanted["snapshots"])
    for got, want in zip(snapshots, wanted["snapshots"], strict=True):
        assert {k: got[k] for k in want} == want


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_figure_matches_the_history(ch: ClickHouse, seed: int) -> None:
    ended, live, follows = build(seed, ch)
    assert ended.snapshots and ended.gifts and ended.commenters and ended.moderation  # the history has it all
    now_ms = live.now_ms + 30_000
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    for sim, growth in ((ended, follows), (live, None)):
        actual = stream_analytics(ch, sim.stream_id, now=now, coin_value_usd="0.01")
        assert actual is not None
        assert actual["broadcasterId"] == sim.host
        compare(actual, expected(sim, now_ms, growth))


def test_an_unknown_stream_has_no_analytics(ch: ClickHouse) -> None:
    assert stream_analytics(ch, "no-such-stream", now=START, coin_value_usd="0.01") is None


def test_duplicate_rows_of_the_same_event_count_once(ch: ClickHouse) -> None:
    """Two projector instances during a rebalance can both insert a batch: `events` then holds the same
    event twice until a merge. Figures read from `events` must not change."""
    rng = random.Random(99)
    sim = StreamSim("s-dup", "host-dup", int(START.timestamp() * 1000), rng, Positions())
    play_stream(sim, rng, minutes=15, audience=[f"d-{i}" for i in range(10)], end=True)
    ClickHouseEventsProjector(ch).apply(sim.records, {})
    before = stream_analytics(ch, sim.stream_id, now=START, coin_value_usd="0.01")
    rows = ch.query("SELECT * FROM events WHERE aggregate_id = 's-dup'")
    ch.insert("events", [[row[c] for c in COLUMNS] for row in rows], COLUMNS)  # straight in, no check
    assert ch.query("SELECT count() AS n FROM events WHERE aggregate_id = 's-dup'")[0]["n"] == 2 * len(rows)
    after = stream_analytics(ch, sim.stream_id, now=START, coin_value_usd="0.01")
    assert before is not None and after is not None
    for key in ("totals", "revenue", "topGifters", "demographics", "engagement", "snapshots"):
        assert after[key] == before[key], key
    # watch time is a max per viewer: exact under duplicates too
    assert after["topViewers"] == before["topViewers"]
    assert after["averageWatchTimeSeconds"] == before["averageWatchTimeSeconds"]


def test_a_view_created_on_a_store_with_events_is_filled_from_them(ch: ClickHouse) -> None:
    """A new view on a running server starts from the events already stored, and counts each once."""
    from spaktok.projections.clickhouse import apply_schema

    ended, live, _ = build(21, ch, start=datetime(2026, 8, 1, 9, 0, tzinfo=UTC))
    now = datetime.fromtimestamp(live.now_ms / 1000, UTC)
    before = [stream_analytics(ch, s.stream_id, now=now, coin_value_usd="0.01") for s in (ended, live)]
    for view, table in (
        ("stream_minute_metrics_mv", "stream_minute_metrics"),
        ("viewer_watch_time_visits_mv", "viewer_watch_time"),
        ("viewer_watch_time_beats_mv", "viewer_watch_time"),
    ):
        ch.command(f"DROP VIEW {view}")
        ch.command(f"TRUNCATE TABLE {table}")
    assert stream_analytics(ch, ended.stream_id, now=now, coin_value_usd="0.01")["viewerTimeline"] == []  # type: ignore[index]
    apply_schema(ch)
    after = [stream_analytics(ch, s.stream_id, now=now, coin_value_usd="0.01") for s in (ended, live)]
    assert after == before

"""Platform metrics over a time window (spec §10.1) on chDB, against the simulation's own figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from history import build

from spaktok.projections.clickhouse import ClickHouse
from spaktok.projections.platform_metrics import window_figures

JUNE = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)  # far from the other tests' histories


def test_window_figures_match_the_history(ch: ClickHouse) -> None:
    ended, live, _ = build(11, ch, start=JUNE)
    now = datetime.fromtimestamp(live.now_ms / 1000, UTC) + timedelta(seconds=30)
    figures = window_figures(ch, now=now, hours=3, coin_value_usd="0.01")
    watch = list(ended.watch_times().values()) + list(live.watch_times().values())
    coins = sum(g["coins"] for sim in (ended, live) for g in sim.gifts)
    broadcaster = sum(g["broadcaster"] for sim in (ended, live) for g in sim.gifts)
    assert figures["streamsStarted"] == 2
    assert figures["viewerSessions"] == len(watch)
    assert figures["averageWatchTimeSeconds"] == round(sum(watch) / len(watch), 2)
    assert figures["giftSends"] == len(ended.gifts) + len(live.gifts)
    assert (figures["giftRevenue"], figures["broadcasterRevenue"]) == (coins, broadcaster)
    assert figures["platformRevenue"] == coins - broadcaster
    assert figures["giftRevenuePerStream"] == round(coins / 2, 2)


def test_a_window_that_holds_only_the_later_stream(ch: ClickHouse) -> None:
    ended, live, _ = build(12, ch, start=JUNE + timedelta(days=3))
    now = datetime.fromtimestamp(live.now_ms / 1000, UTC)
    since_live = (now - datetime.fromtimestamp(live.start_ms / 1000, UTC)).total_seconds() / 3600 + 0.001
    figures = window_figures(ch, now=now, hours=since_live, coin_value_usd="0.01")
    assert figures["streamsStarted"] == 1
    assert figures["giftRevenue"] == sum(g["coins"] for g in live.gifts)
    assert figures["viewerSessions"] == len(live.watch_times())


def test_an_empty_window_says_zero(ch: ClickHouse) -> None:
    figures = window_figures(ch, now=datetime(2020, 1, 1, tzinfo=UTC), hours=1, coin_value_usd="0.01")
    assert figures["streamsStarted"] == figures["giftRevenue"] == figures["viewerSessions"] == 0
    assert figures["averageWatchTimeSeconds"] == figures["giftRevenuePerStream"] == 0.0

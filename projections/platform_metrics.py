"""Platform metrics (spec §10.1): live figures from Postgres, a window's figures from ClickHouse.

Definitions in docs/analytics.md; error rates are counted by the API process (api/metrics.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from spaktok.commands.gifts import usd
from spaktok.projections.analytics import VIEWER_WATCH, WATCH_TIME, iso
from spaktok.projections.clickhouse import ClickHouse

STARTED_IN_WINDOW = (
    "SELECT aggregate_id FROM events FINAL WHERE aggregate_type = 'stream' AND sequence > 0 "
    "AND type = 'streams.StreamStarted' AND occurred_at >= {since:DateTime64(3, 'UTC')} "
    "AND occurred_at <= {until:DateTime64(3, 'UTC')}"
)


def live_now(engine: Engine) -> dict[str, int]:
    """Streams live right now and everyone watching them (the Postgres read model)."""
    with engine.connect() as conn:
        streams, viewers = conn.execute(
            text("SELECT count(*), coalesce(sum(viewer_count), 0) FROM live_streams WHERE status = 'live'")
        ).one()
    return {"concurrentStreams": int(streams), "totalViewers": int(viewers)}


def window_figures(ch: ClickHouse, *, now: datetime, hours: float, coin_value_usd: str) -> dict[str, Any]:
    """Streams started in the last `hours`: their count, viewers' average watch time and gift revenue."""
    params = {"since": now - timedelta(hours=hours), "until": now}
    [streams] = ch.query(f"SELECT count() AS n FROM ({STARTED_IN_WINDOW})", params)
    [watch] = ch.query(
        f"SELECT count() AS viewers, sum({WATCH_TIME}) AS total FROM "
        f"({VIEWER_WATCH.format(streams=f'IN ({STARTED_IN_WINDOW})')})",
        params,
    )
    [gifts] = ch.query(
        "SELECT count() AS sends, sum(JSONExtractUInt(payload, 'coin_cost')) AS coins, "
        "sum(JSONExtractUInt(payload, 'broadcaster_share')) AS broadcaster FROM events FINAL "
        "WHERE aggregate_type = 'stream' AND sequence > 0 AND type = 'streams.GiftReceived' "
        f"AND aggregate_id IN ({STARTED_IN_WINDOW})",
        params,
    )
    started, viewers = int(streams["n"]), int(watch["viewers"])
    total_watch, coins, broadcaster = int(watch["total"]), int(gifts["coins"]), int(gifts["broadcaster"])
    return {
        "since": iso(params["since"]),
        "until": iso(now),
        "hours": hours,
        "streamsStarted": started,
        "viewerSessions": viewers,  # (stream, viewer) pairs
        "averageWatchTimeSeconds": round(total_watch / viewers, 2) if viewers else 0.0,
        "giftSends": int(gifts["sends"]),
        "giftRevenue": coins,
        "giftRevenueUsd": usd(coins, coin_value_usd),
        "broadcasterRevenue": broadcaster,
        "platformRevenue": coins - broadcaster,
        "giftRevenuePerStream": round(coins / started, 2) if started else 0.0,
        "ingestHealth": ingest_health(ch, params),
    }


def ingest_health(ch: ClickHouse, params: dict[str, Any]) -> dict[str, Any]:
    """Stream quality over the window (docs/media.md "Stream health"): the samples the transcoders
    took, and per warning how many samples and how many streams had it."""
    window = "sampled_at >= {since:DateTime64(3, 'UTC')} AND sampled_at <= {until:DateTime64(3, 'UTC')}"
    [totals] = ch.query(
        "SELECT count() AS samples, uniqExact(stream_id) AS streams, avg(bitrate_kbps) AS bitrate "
        f"FROM stream_health WHERE {window}",
        params,
    )
    rows = ch.query(
        "SELECT code, count() AS samples, uniqExact(stream_id) AS streams FROM stream_health "
        f"ARRAY JOIN warnings AS code WHERE {window} GROUP BY code ORDER BY code",
        params,
    )
    samples = int(totals["samples"])
    return {
        "samples": samples,
        "streams": int(totals["streams"]),
        "averageBitrateKbps": round(float(totals["bitrate"]), 1) if samples else 0.0,
        "warnings": {r["code"]: {"samples": int(r["samples"]), "streams": int(r["streams"])} for r in rows},
    }

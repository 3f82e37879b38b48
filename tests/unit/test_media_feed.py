"""The realtime feed's ingest items (issue #7, docs/realtime.md)."""

from __future__ import annotations

from spaktok.api.live import StreamFeed


def test_the_live_feed_tells_players_when_ingest_stops_and_resumes() -> None:
    feed = StreamFeed()
    for sequence, (kind, payload) in enumerate(
        [
            ("streams.IngestStarted", {"generation": 1, "resumed": False, "record": False}),
            ("streams.IngestStopped", {}),
        ],
        start=5,
    ):
        feed.apply(
            {"type": kind, "sequence": sequence, "occurred_at": "2026-01-01T00:00:00Z", "payload": payload}
        )
    assert [(i["type"], i["ingest"], i["sequence"]) for i in feed.items] == [
        ("ingest", "live", 5),
        ("ingest", "reconnecting", 6),
    ]

"""A run of events that one batch handler writes (projections/stretches.py) must
leave the tables as the events one at a time would: a join storm and a chat storm over two streams,
one viewer commenting several times in the run and the other stream's events in between."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from harness import uid
from sqlalchemy import Engine, text

from spaktok.events.envelope import Envelope
from spaktok.projections.runner import Record
from spaktok.projections.streams import PostgresStreamsProjector

pytestmark = pytest.mark.integration


def envelope(stream_id: str, sequence: int, kind: str, payload: dict[str, Any]) -> Envelope:
    return Envelope(
        event_id=uid("ev"),
        type=kind,
        schema_version=1,
        aggregate_type="stream",
        aggregate_id=stream_id,
        sequence=sequence,
        occurred_at=datetime.now(UTC),
        causation_id="c",
        correlation_id="c",
        actor_id="a",
        payload=payload,
    )


def test_runs_of_joins_and_comments_count_each_viewer_and_keep_each_streams_last_figures(pg: Engine) -> None:
    s1, s2 = uid("st_runs"), uid("st_runs")
    now = datetime.now(UTC).isoformat()
    sequences = {s1: 0, s2: 0}
    totals = {s1: 0, s2: 0}

    def event(stream: str, kind: str, **payload: Any) -> Envelope:
        sequences[stream] += 1
        return envelope(stream, sequences[stream], kind, payload)

    def started(stream: str) -> Envelope:
        return event(
            stream, "streams.StreamStarted", stream_id=stream, user_id=f"host-{stream}", username="host",
            title="Runs", category="talk", language="en", privacy="public", is_recorded=False,
            allow_comments=True, allow_gifts=True, is_age_restricted=False, is_premium=False,
            quality="auto", ingest_url="rtmp://x", playback_url="http://x", started_at=now,
        )  # fmt: skip

    audience = {s1: 0, s2: 0}

    def joined(stream: str, user: str) -> Envelope:
        audience[stream] += 1
        n = audience[stream]
        return event(
            stream, "streams.ViewerJoined", user_id=user, username=user, joined_at=now,
            viewer_count=n, peak_viewer_count=n, total_views=n,
        )  # fmt: skip

    def comment(stream: str, user: str) -> Envelope:
        totals[stream] += 1
        return event(
            stream, "streams.CommentPosted", comment_id=uid("cm"), user_id=user, username=user,
            text=f"#{totals[stream]}", posted_at=now, comments=totals[stream],
        )  # fmt: skip

    log = [
        started(s1),
        started(s2),
        joined(s1, "ann"),
        joined(s2, "bob"),
        joined(s1, "bob"),
        joined(s1, "cy"),
    ]
    log += [
        comment(s1, "ann"),
        comment(s1, "ann"),
        comment(s1, "bob"),
        comment(s2, "bob"),
        comment(s1, "ann"),
    ]
    # a topic of its own: the live projector's checkpoints on the real topic would fence these off
    topic = uid("test.runs")
    records = [Record(topic, 0, offset, env) for offset, env in enumerate(log)]
    PostgresStreamsProjector(pg).apply(records, {})
    with pg.connect() as conn:
        posted = conn.execute(
            text(
                "SELECT stream_id, user_id, comments_posted FROM stream_viewers WHERE stream_id IN (:a, :b)"
            ),
            {"a": s1, "b": s2},
        )
        assert sorted(posted) == sorted([(s1, "ann", 3), (s1, "bob", 1), (s1, "cy", 0), (s2, "bob", 1)])
        streams = conn.execute(
            text(
                "SELECT stream_id, viewer_count, total_views, comments FROM live_streams "
                "WHERE stream_id IN (:a, :b)"
            ),
            {"a": s1, "b": s2},
        )
        assert sorted(streams) == sorted([(s1, 3, 3, 4), (s2, 1, 1, 1)])
        texts = conn.execute(
            text("SELECT text FROM stream_comments WHERE stream_id = :s AND type = 'text' ORDER BY sequence"),
            {"s": s1},
        )
        assert [t for (t,) in texts] == ["#1", "#2", "#3", "#4"]

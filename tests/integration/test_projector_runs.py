"""A run of consecutive events that one batch handler writes (projections/streams.py `_runs`) must
leave the tables as the events one at a time would: here, a chat storm's comments, with one viewer
commenting several times in the run and a second stream's comment in between."""

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


def test_a_run_of_comments_counts_each_commenter_and_keeps_the_order(pg: Engine) -> None:
    s1, s2 = uid("st_runs"), uid("st_runs")
    now = datetime.now(UTC).isoformat()
    sequences = {s1: 0, s2: 0}
    totals = {s1: 0, s2: 0}

    def event(stream: str, kind: str, **payload: Any) -> Envelope:
        sequences[stream] += 1
        return envelope(stream, sequences[stream], kind, payload)

    def joined(stream: str, user: str) -> Envelope:
        return event(
            stream, "streams.ViewerJoined", user_id=user, username=user, joined_at=now,
            viewer_count=1, peak_viewer_count=1, total_views=1,
        )  # fmt: skip

    def comment(stream: str, user: str) -> Envelope:
        totals[stream] += 1
        return event(
            stream, "streams.CommentPosted", comment_id=uid("cm"), user_id=user, username=user,
            text=f"#{totals[stream]}", posted_at=now, comments=totals[stream],
        )  # fmt: skip

    log = [joined(s1, "ann"), joined(s1, "bob"), joined(s2, "bob")]
    log += [
        comment(s1, "ann"),
        comment(s1, "ann"),
        comment(s1, "bob"),
        comment(s2, "bob"),
        comment(s1, "ann"),
    ]
    records = [Record("spaktok.events.streams", 0, offset, env) for offset, env in enumerate(log)]
    PostgresStreamsProjector(pg).apply(records, {})
    with pg.connect() as conn:
        posted = conn.execute(
            text(
                "SELECT stream_id, user_id, comments_posted FROM stream_viewers WHERE stream_id IN (:a, :b)"
            ),
            {"a": s1, "b": s2},
        )
        assert sorted(posted) == sorted([(s1, "ann", 3), (s1, "bob", 1), (s2, "bob", 1)])
        texts = conn.execute(
            text("SELECT text FROM stream_comments WHERE stream_id = :s ORDER BY sequence"), {"s": s1}
        )
        assert [t for (t,) in texts] == ["#1", "#2", "#3", "#4"]

"""Analytics on the stream aggregate: viewer age buckets and the 5-minute snapshot (spec §2.6, §3.6)."""

from __future__ import annotations

from spaktok.commands.stream.state import StreamState, millis
from spaktok.commands.streams import RecordAnalyticsSnapshot
from spaktok.events.base import Event
from spaktok.events.streams import StreamAnalyticsRecorded

# (lowest age, label): the usual advertising buckets; under 18 is one bucket (minors are not profiled)
AGE_BUCKETS: tuple[tuple[int, str], ...] = (
    (65, "65+"),
    (55, "55-64"),
    (45, "45-54"),
    (35, "35-44"),
    (25, "25-34"),
    (18, "18-24"),
    (0, "under-18"),
)
SNAPSHOT_TOP = 10  # participants listed per snapshot


def age_bucket(age: int | None) -> str | None:
    """The bucket of the youngest age the token's birth year allows; None when it is not known."""
    if age is None or age < 0:
        return None
    return next(label for lowest, label in AGE_BUCKETS if age >= lowest)


def record_snapshot(command: RecordAnalyticsSnapshot, state: StreamState) -> list[Event]:
    """The stream's figures at the command's time; nothing for a stream that is not live."""
    if state.status != "live":
        return []
    now_ms = millis(command.issued_at)
    watch = dict(state.watch_time)
    for user_id, (joined_ms, _) in state.viewers.items():
        watch[user_id] = watch.get(user_id, 0) + max(0, now_ms - joined_ms) // 1000  # running visits
    top_viewers = sorted(watch.items(), key=lambda kv: (-kv[1], kv[0]))[:SNAPSHOT_TOP]
    gifters = sorted(
        ((user_id, g[0], g[2]) for user_id, g in state.gifters.items() if g[0] > 0),
        key=lambda g: (-g[1], g[0]),
    )[:SNAPSHOT_TOP]
    return [
        StreamAnalyticsRecorded(
            recorded_at=command.issued_at,
            viewer_count=state.viewer_count,
            peak_viewer_count=state.peak_viewer_count,
            total_views=state.total_views,
            likes=state.likes,
            comments=state.comments,
            gifts=state.gifts,
            revenue=state.gift_revenue,
            top_gifters=[{"user_id": u, "coins": c, "gifts": n} for u, c, n in gifters],
            top_viewers=[{"user_id": u, "watch_time": w} for u, w in top_viewers],
        )
    ]

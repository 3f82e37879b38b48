"""Which events become deliveries for which subscription (projections/webhook_outbox.py): the owner's
own streams for a broadcaster, everything for the platform, nothing older than the subscription,
never a notice; and the delivered body's shape (docs/webhooks.md "Payload")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from spaktok.events.envelope import Envelope
from spaktok.projections.webhook_outbox import Subscription, deliveries, subscribable

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
ENDED = "streams.UserUnbanned"  # a small stream event


def ended(stream_id: str, at: datetime = T0, event_id: str = "ev-1") -> Envelope:
    return Envelope(
        event_id=event_id,
        type=ENDED,
        schema_version=1,
        aggregate_type="stream",
        aggregate_id=stream_id,
        sequence=7,
        occurred_at=at,
        causation_id="c",
        correlation_id="c",
        actor_id="alice",
        payload={"user_id": "troll", "by": "alice", "role": "broadcaster", "unbanned_at": at.isoformat()},
    )


def sub(
    sub_id: str, owner: str, scope: str = "streams", created: datetime = T0 - timedelta(minutes=1)
) -> Subscription:
    return Subscription(sub_id, owner, scope, frozenset({ENDED}), created)


def test_a_broadcaster_gets_its_own_streams_only() -> None:
    subs = [sub("wh-alice", "alice"), sub("wh-bob", "bob")]
    rows = deliveries(
        [ended("st-a"), ended("st-b", event_id="ev-2")], subs, {"st-a": "alice", "st-b": "carol"}
    )
    assert [(r["s"], r["e"]) for r in rows] == [("wh-alice", "ev-1")]


def test_a_stream_of_unknown_owner_goes_to_no_broadcaster_but_to_the_platform() -> None:
    rows = deliveries([ended("st-x")], [sub("wh-alice", "alice"), sub("wh-app", "admin", "app")], {})
    assert [r["s"] for r in rows] == ["wh-app"]


def test_events_older_than_the_subscription_are_not_sent() -> None:
    late = sub("wh-alice", "alice", created=T0 + timedelta(seconds=1))
    assert deliveries([ended("st-a")], [late], {"st-a": "alice"}) == []


def test_types_not_asked_for_are_not_sent() -> None:
    other = Subscription(
        "wh-alice", "alice", "streams", frozenset({"streams.StreamStarted"}), T0 - timedelta(1)
    )
    assert deliveries([ended("st-a")], [other], {"st-a": "alice"}) == []


def test_what_may_be_subscribed() -> None:
    assert subscribable(ENDED, "streams") and subscribable(ENDED, "app")
    assert not subscribable("wallets.CoinsPurchased", "streams")  # not a stream's log: platform only
    assert subscribable("wallets.CoinsPurchased", "app")
    assert not subscribable("audiences.FollowersNotified", "app")  # a notice: the notifier's, not ours
    assert not subscribable("streams.NoSuchThing", "app")


def test_the_body_has_id_type_time_stream_and_data() -> None:
    (row,) = deliveries([ended("st-a")], [sub("wh-alice", "alice")], {"st-a": "alice"})
    assert orjson.loads(row["b"]) == {
        "id": "ev-1",
        "type": ENDED,
        "time": "2026-12-03T12:00:00Z",
        "streamId": "st-a",
        "data": {
            "user_id": "troll",
            "by": "alice",
            "role": "broadcaster",
            "unbanned_at": "2026-12-03T12:00:00Z",
        },
    }

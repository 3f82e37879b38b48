"""Notifications delivered (issue #21): devices, preferences, read marks and the notifier, on the
real stack with the dev push provider (`<data dir>/notifications/sent.jsonl`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from harness import Api, eventually, problem, uid
from sqlalchemy import Engine, text

from spaktok.infra import topics
from spaktok.infra.devstack import DevStack
from spaktok.infra.push import read_sent
from spaktok.settings import Settings

pytestmark = pytest.mark.integration
SLOW = 90.0  # the suite shares two cores with other engineers' runs


def sent(stack: DevStack) -> list[dict[str, Any]]:
    return read_sent(stack.data_dir / "notifications" / "sent.jsonl")


def pushes_to(stack: DevStack, device_id: str) -> list[dict[str, Any]]:
    return [line for line in sent(stack) if line["device"]["device_id"] == device_id]


def notifier_caught_up(settings: Settings, pg: Engine) -> None:
    """Every notice on the topic so far has been handled by the notifier (its checkpoints reach the
    end of every partition): what it did not push by now, it never will."""
    consumer = Consumer({"bootstrap.servers": settings.broker, "group.id": uid("probe")})
    try:
        meta = consumer.list_topics(topics.NOTIFICATIONS.name, timeout=10).topics[topics.NOTIFICATIONS.name]
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topics.NOTIFICATIONS.name, p), timeout=10)[1]
            for p in meta.partitions
        }
    finally:
        consumer.close()

    def check() -> None:
        with pg.connect() as conn:
            stored = dict(
                conn.execute(
                    text('SELECT "partition", "offset" FROM notify.checkpoints WHERE topic = :t'),
                    {"t": topics.NOTIFICATIONS.name},
                ).all()
            )
        behind = {p: end for p, end in ends.items() if end > 0 and stored.get(p, -1) < end - 1}
        assert not behind, f"notifier behind on partitions {behind}"

    eventually(check, timeout=SLOW, interval=0.2)


def go_live(owner: Api, **body: Any) -> str:
    response = owner.post("/v1/streams", json={"title": "Going live", "category": "music", **body})
    assert response.status_code == 201, response.text
    return str(response.json()["streamId"])


def end(owner: Api, stream_id: str) -> None:
    assert owner.post(f"/v1/streams/{stream_id}/end").status_code == 200


def register(api: Api, platform: str = "dev", token: str | None = None) -> str:
    response = api.post("/v1/devices", json={"platform": platform, "token": token or uid("tok-device")})
    assert response.status_code in (200, 201), response.text
    return str(response.json()["deviceId"])


def inbox(api: Api) -> dict[str, Any]:
    response = api.get("/v1/notifications")
    assert response.status_code == 200, response.text
    return dict(response.json())


def has_notice(api: Api, stream_id: str) -> dict[str, Any]:
    items = [n for n in inbox(api)["notifications"] if n.get("streamId") == stream_id]
    assert len(items) == 1, items
    return items[0]


def test_devices_are_idempotent_per_token_move_between_users_and_are_deleted_by_their_owner(
    user: Callable[..., Api],
) -> None:
    ann, bob = user(uid("ann")), user(uid("bob"))
    token = uid("tok-phone")
    first = ann.post("/v1/devices", json={"platform": "fcm", "token": token})
    again = ann.post("/v1/devices", json={"platform": "fcm", "token": token})
    assert (first.status_code, again.status_code) == (201, 200), (first.text, again.text)
    assert first.json()["deviceId"] == again.json()["deviceId"]
    assert "token" not in first.json()
    assert [d["deviceId"] for d in ann.get("/v1/devices").json()["devices"]] == [first.json()["deviceId"]]

    moved = bob.post("/v1/devices", json={"platform": "fcm", "token": token})  # the phone changed hands
    assert moved.status_code == 201 and moved.json()["deviceId"] != first.json()["deviceId"]
    assert ann.get("/v1/devices").json()["devices"] == []
    problem(ann.delete(f"/v1/devices/{moved.json()['deviceId']}"), 404, "device-not-found")  # not hers
    assert bob.delete(f"/v1/devices/{moved.json()['deviceId']}").status_code == 204
    assert bob.get("/v1/devices").json()["devices"] == []
    problem(bob.post("/v1/devices", json={"platform": "sms", "token": token}), 422, "validation-error")


def test_preferences_round_trip(user: Callable[..., Api]) -> None:
    ann = user(uid("ann"))
    assert ann.get("/v1/me/notification-preferences").json() == {"mutedChannels": [], "mutedKinds": []}
    saved = ann.put(
        "/v1/me/notification-preferences", json={"mutedChannels": ["c2", "c1"], "mutedKinds": ["pk"]}
    )
    assert saved.json() == {"mutedChannels": ["c1", "c2"], "mutedKinds": ["pk"]}
    assert ann.put("/v1/me/notification-preferences/channels/c3").json()["mutedChannels"] == [
        "c1",
        "c2",
        "c3",
    ]
    assert ann.delete("/v1/me/notification-preferences/channels/c1").json()["mutedChannels"] == ["c2", "c3"]
    bad = ann.put("/v1/me/notification-preferences", json={"mutedKinds": ["everything"]})
    assert bad.status_code == 422


def test_a_follower_gets_one_push_per_live_stream_none_private_muted_or_after_a_restart(
    stack: DevStack, user: Callable[..., Api], settings: Settings, pg: Engine
) -> None:
    star_id, shy_id = uid("star"), uid("shy")
    star, shy = user(star_id, name="Star"), user(shy_id, name="Shy")
    fan, muter, kind_muter = user(uid("fan")), user(uid("muter")), user(uid("kinds"))
    for follower in (fan, muter, kind_muter):
        for channel in (star_id, shy_id):
            assert follower.post(f"/v1/users/{channel}/follow").status_code == 200
    fan_device, muter_device, kinds_device = (
        register(fan),
        register(muter, "fcm"),
        register(kind_muter, "apns"),
    )
    assert muter.put(f"/v1/me/notification-preferences/channels/{star_id}").status_code == 200
    muted = kind_muter.put("/v1/me/notification-preferences", json={"mutedKinds": ["go-live"]})
    assert muted.status_code == 200

    hidden = go_live(shy, privacy="private")  # nobody but its insiders may watch: no follower hears of it
    first = go_live(star)
    eventually(lambda: _one(pushes_to(stack, fan_device)), timeout=SLOW)
    end(star, first)
    end(shy, hidden)
    second = go_live(star, privacy="followers")  # followers may watch it: they hear of it
    eventually(lambda: _count(pushes_to(stack, fan_device), 2), timeout=SLOW)
    notifier_caught_up(settings, pg)

    pushed = pushes_to(stack, fan_device)
    assert [p["message"]["data"]["streamId"] for p in pushed] == [first, second]
    assert pushed[0]["message"]["title"] == "Star is live"
    assert pushes_to(stack, muter_device) == []  # muted the channel: inbox yes, push no
    assert pushes_to(stack, kinds_device) == []  # muted go-live
    for follower in (fan, muter, kind_muter):  # the inbox's projector runs apart from the notifier
        eventually(lambda follower=follower: has_notice(follower, second), timeout=SLOW)
        has_notice(follower, first)
        assert not [n for n in inbox(follower)["notifications"] if n.get("streamId") == hidden]
        assert not [line for line in sent(stack) if line["message"]["data"].get("streamId") == hidden]

    # read marks and the unread count
    assert inbox(fan)["unread"] == 2
    notice = has_notice(fan, first)
    marked = fan.post(f"/v1/notifications/{notice['notificationId']}/read")
    assert marked.status_code == 200 and marked.json()["unread"] == 1
    assert has_notice(fan, first)["read"] is True and has_notice(fan, second)["read"] is False
    assert fan.post(f"/v1/notifications/{notice['notificationId']}/read").json()["unread"] == 1  # again
    assert inbox(muter)["unread"] == 2  # read marks are per reader
    problem(star.post(f"/v1/notifications/{notice['notificationId']}/read"), 404, "notification-not-found")
    assert fan.post("/v1/notifications/read-all").json()["unread"] == 0
    assert inbox(fan)["unread"] == 0

    # the notifier dies; a stream starts meanwhile; it comes back having lost its offsets (as if it
    # died after sending a whole batch and before storing it): everything is read again, nothing
    # is pushed twice, and the notice raised while it was down is pushed once
    end(star, second)
    stack.kill("projector")
    third = go_live(star)
    with pg.begin() as conn:
        conn.execute(text('UPDATE notify.checkpoints SET "offset" = -1'))
    stack.start_projector()
    eventually(lambda: _count(pushes_to(stack, fan_device), 3), timeout=SLOW)
    notifier_caught_up(settings, pg)
    time.sleep(1)
    pushed = pushes_to(stack, fan_device)
    assert [p["message"]["data"]["streamId"] for p in pushed] == [first, second, third]
    ids = [line["message"]["data"]["notificationId"] for line in sent(stack)]
    devices = [line["device"]["device_id"] for line in sent(stack)]
    assert len(set(zip(ids, devices, strict=True))) == len(ids), "a push was sent twice"


def test_schedule_moderation_and_pk_notices_reach_devices_too(
    stack: DevStack, user: Callable[..., Api]
) -> None:
    star_id, rival_id, mod_id = uid("star"), uid("rival"), uid("mod")
    star, rival, mod, fan = (
        user(star_id, name="Star"),
        user(rival_id, name="Rival"),
        user(mod_id),
        user(uid("fan")),
    )
    assert fan.post(f"/v1/users/{star_id}/follow").status_code == 200
    devices = {"star": register(star, "apns"), "mod": register(mod), "fan": register(fan, "fcm")}
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    scheduled = star.post(
        "/v1/schedules", json={"title": "Tomorrow", "category": "music", "scheduledFor": later}
    )
    assert scheduled.status_code in (200, 201, 202), scheduled.text
    sid = go_live(star)
    assert star.post(f"/v1/streams/{sid}/moderators", json={"userId": mod_id}).status_code == 200
    rival_sid = go_live(rival)

    def invite() -> None:  # once both streams reached the read model
        invited = rival.post("/v1/pk-battles", json={"streamId": rival_sid, "opponentStreamId": sid})
        assert invited.status_code in (200, 201, 202), invited.text

    eventually(invite, timeout=SLOW, interval=0.5)

    def kinds(who: str) -> set[str]:
        return {p["message"]["data"]["kind"] for p in pushes_to(stack, devices[who])}

    def all_delivered() -> None:
        assert kinds("fan") == {"schedule_announced", "stream_started"}
        assert kinds("mod") == {"moderator_added"}
        assert kinds("star") == {"pk_invited"}

    eventually(all_delivered, timeout=SLOW)
    invitation = next(p for p in pushes_to(stack, devices["star"]))
    assert invitation["request"]["headers"]["apns-push-type"] == "alert"  # as APNs would have got it
    assert invitation["message"]["data"]["category"] == "pk"


def _one(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


def _count(items: list[Any], n: int) -> list[Any]:
    assert len(items) == n, items
    return items

"""Chat over HTTP against the real stack: masking, deleting, pinning, history, and who may do what."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from harness import Api, eventually, uid


def live_stream(owner: Api) -> str:
    response = owner.post("/v1/streams", json={"title": "Chatty", "category": "chat"})
    assert response.status_code == 201, response.text
    return str(response.json()["streamId"])


def post(api: Api, sid: str, text: str) -> dict[str, Any]:
    response = api.post(f"/v1/streams/{sid}/comments", json={"text": text})
    assert response.status_code == 201, response.text
    return dict(response.json())


def history(api: Api, sid: str, **params: Any) -> dict[str, Any]:
    response = api.get(f"/v1/streams/{sid}/comments", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_profanity_is_masked_before_it_reaches_the_log(user: Callable[..., Api]) -> None:
    owner, fan = user(uid("owner")), user(uid("fan"))
    sid = live_stream(owner)
    assert post(fan, sid, "what a fucking good song")["text"] == "what a ******* good song"
    texts = eventually(lambda: _texts(owner, sid, expect=1))
    assert texts == ["what a ******* good song"]
    log = owner.get(f"/v1/streams/{sid}/log").json()["events"]
    assert not any("fucking" in str(event) for event in log)


def test_moderators_delete_and_the_broadcaster_pins(user: Callable[..., Api]) -> None:
    owner, fan, other, third_fan = (user(uid(name)) for name in ("owner", "fan", "other", "third"))
    platform = user(uid("mod"), roles=["moderation"])
    sid = live_stream(owner)
    first, second, third = (
        post(api, sid, text) for api, text in ((fan, "one"), (other, "two"), (third_fan, "three"))
    )
    eventually(lambda: _texts(owner, sid, expect=3))

    refused = other.delete(f"/v1/streams/{sid}/comments/{first['commentId']}")
    assert refused.status_code == 403 and refused.json()["type"].endswith("/not-moderator")
    assert refused.headers["content-type"] == "application/problem+json"
    assert owner.delete(f"/v1/streams/{sid}/comments/{first['commentId']}").status_code == 200
    by_team = platform.delete(f"/v1/streams/{sid}/comments/{second['commentId']}", params={"reason": "spam"})
    assert by_team.status_code == 200 and by_team.json()["isDeleted"] is True
    missing = owner.delete(f"/v1/streams/{sid}/comments/no-such-comment")
    assert missing.status_code == 404 and missing.json()["type"].endswith("/comment-not-found")
    assert eventually(lambda: _texts(owner, sid, expect=1)) == ["three"]  # deleted ones are hidden
    again = owner.delete(f"/v1/streams/{sid}/comments/{first['commentId']}")
    assert again.status_code == 200  # deleting twice is a no-op

    assert fan.post(f"/v1/streams/{sid}/comments/{third['commentId']}/pin").status_code == 403
    pin = owner.post(f"/v1/streams/{sid}/comments/{third['commentId']}/pin")
    assert pin.status_code == 200 and pin.json()["unpinnedCommentId"] is None
    fourth = post(user(uid("fourth")), sid, "four")
    eventually(lambda: _texts(owner, sid, expect=2))
    repin = owner.post(f"/v1/streams/{sid}/comments/{fourth['commentId']}/pin")
    assert repin.status_code == 200 and repin.json()["unpinnedCommentId"] == third["commentId"]

    def pins() -> dict[str, bool]:
        found = {c["commentId"]: c["isPinned"] for c in history(owner, sid)["comments"]}
        assert found[fourth["commentId"]] is True
        return found

    assert eventually(pins) == {fourth["commentId"]: True, third["commentId"]: False}
    fourth_pin = f"/v1/streams/{sid}/comments/{fourth['commentId']}/pin"
    assert fan.delete(fourth_pin).status_code == 403
    unpinned = owner.delete(fourth_pin)
    assert unpinned.status_code == 200 and unpinned.json()["isPinned"] is False
    assert owner.delete(fourth_pin).status_code == 200  # not pinned any more: the same answer
    assert owner.delete(f"/v1/streams/{sid}/comments/no-such-comment/pin").status_code == 404

    def unpinned_in_history() -> dict[str, bool]:
        found = {c["commentId"]: c["isPinned"] for c in history(owner, sid)["comments"]}
        assert found[fourth["commentId"]] is False
        return found

    assert eventually(unpinned_in_history) == {fourth["commentId"]: False, third["commentId"]: False}
    deleted_pin = owner.post(f"/v1/streams/{sid}/comments/{first['commentId']}/pin")
    assert deleted_pin.status_code == 409 and deleted_pin.json()["type"].endswith("/comment-deleted")

    def deletions_in_the_log() -> list[tuple[str, str | None]]:
        events = owner.get(f"/v1/streams/{sid}/log").json()["events"]
        found = [orjson.loads(e["payload"]) for e in events if e["type"] == "streams.CommentDeleted"]
        assert len(found) == 2
        return [(d["role"], d["reason"]) for d in found]

    assert eventually(deletions_in_the_log) == [("broadcaster", None), ("platform", "spam")]


def test_history_pages_newest_first(user: Callable[..., Api]) -> None:
    owner = user(uid("owner"))
    sid = live_stream(owner)
    for n in range(5):
        post(user(uid(f"c{n}")), sid, f"message {n}")
    eventually(lambda: _texts(owner, sid, expect=5))
    page = history(owner, sid, limit=2)
    assert [c["text"] for c in page["comments"]] == ["message 4", "message 3"]
    rest = history(owner, sid, limit=10, before=page["nextBefore"])
    assert [c["text"] for c in rest["comments"]] == ["message 2", "message 1", "message 0"]
    assert rest["nextBefore"] is None


def _texts(api: Api, sid: str, expect: int) -> list[str]:
    texts = [c["text"] for c in history(api, sid)["comments"]]
    assert len(texts) == expect, texts
    return texts


def test_gifts_and_system_messages_are_in_history_by_type_under_the_same_read_policy(
    user: Callable[..., Api],
) -> None:
    ids = {name: uid(name) for name in ("host", "fan", "troll", "stranger")}
    owner, fan, troll, stranger = (user(ids[n], name=n.title()) for n in ids)
    admin = user(uid("admin"), roles=["admin"])
    sid = live_stream(owner)
    bought = admin.post(
        "/v1/wallet/purchases", json={"userId": ids["fan"], "coins": 100, "paymentRef": uid("pay")}
    )
    assert bought.status_code == 201, bought.text
    post(fan, sid, "hello")
    sent = fan.post(f"/v1/streams/{sid}/gifts", json={"giftId": "doughnut", "count": 2})
    assert sent.status_code == 200, sent.text
    post(troll, sid, "after")
    everything = {"types": "text,gift,system"}

    def all_four() -> list[dict[str, Any]]:
        items = history(owner, sid, **everything)["comments"]
        assert len(items) == 4, items
        return items

    after, gift, hello, started = eventually(all_four)  # newest first, in the stream's log order
    assert after["sequence"] > gift["sequence"] > hello["sequence"] > started["sequence"]
    assert (after["text"], hello["text"], after["type"], hello["type"]) == ("after", "hello", "text", "text")
    assert "giftId" not in after and "systemKind" not in after  # a text comment looks as it always did
    assert (gift["type"], gift["giftId"], gift["giftName"], gift["giftCount"], gift["comboCount"]) == (
        "gift",
        "doughnut",
        sent.json()["giftName"],
        2,
        2,
    )
    assert (gift["commentId"], gift["userId"], gift["username"], gift["coinCost"]) == (
        sent.json()["giftTx"],
        ids["fan"],
        "Fan",
        60,
    )
    assert (started["type"], started["systemKind"], started["subjectId"]) == (
        "system",
        "stream_started",
        ids["host"],
    )

    assert [c["text"] for c in history(owner, sid)["comments"]] == ["after", "hello"]  # default: text only
    assert [c["type"] for c in history(owner, sid, types="gift")["comments"]] == ["gift"]
    page = history(owner, sid, limit=2, **everything)
    rest = history(owner, sid, before=page["nextBefore"], **everything)
    assert [c["commentId"] for c in page["comments"] + rest["comments"]] == [
        c["commentId"] for c in (after, gift, hello, started)
    ]
    for bad in ("join", "text,bogus", ""):
        refused = owner.get(f"/v1/streams/{sid}/comments", params={"types": bad})
        assert refused.status_code == 422 and refused.json()["type"].endswith("/invalid-comment-types")
        assert refused.headers["content-type"] == "application/problem+json"
    not_speech = owner.delete(f"/v1/streams/{sid}/comments/{gift['commentId']}")
    assert not_speech.status_code == 404 and not_speech.json()["type"].endswith("/comment-not-found")

    # the read policy is the one of text comments: a banned caller, then a non-follower, is refused
    assert owner.post(f"/v1/streams/{sid}/bans", json={"userId": ids["troll"]}).status_code == 200

    def troll_refused() -> None:
        refused = troll.get(f"/v1/streams/{sid}/comments", params={"types": "gift"})
        assert refused.status_code == 403 and refused.json()["type"].endswith("/user-banned")

    eventually(troll_refused)
    banned = eventually(lambda: history(owner, sid, types="system")["comments"][0])
    assert (banned["systemKind"], banned["subjectId"]) == ("user_banned", ids["troll"])
    assert history(stranger, sid, types="gift")["comments"][0]["giftId"] == "doughnut"
    assert owner.patch(f"/v1/streams/{sid}", json={"privacy": "followers"}).status_code == 200

    def stranger_refused() -> None:
        refused = stranger.get(f"/v1/streams/{sid}/comments", params={"types": "gift,system"})
        assert refused.status_code == 403 and refused.json()["type"].endswith("/followers-only")

    eventually(stranger_refused)
    assert owner.post(f"/v1/streams/{sid}/end").status_code == 200
    ended = eventually(lambda: _kind(history(owner, sid, types="system")["comments"][0], "stream_ended"))
    assert ended["text"].startswith("the stream ended")


def _kind(message: dict[str, Any], kind: str) -> dict[str, Any]:
    assert message.get("systemKind") == kind, message
    return message

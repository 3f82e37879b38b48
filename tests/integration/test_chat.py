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

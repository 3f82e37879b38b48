"""Follows over HTTP: followers are notified when a channel goes live, and followers-only streams."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness import Api, eventually, uid


def go_live(owner: Api, **body: Any) -> str:
    response = owner.post("/v1/streams", json={"title": "Going live", "category": "music", **body})
    assert response.status_code == 201, response.text
    return str(response.json()["streamId"])


def inbox(api: Api, **params: Any) -> dict[str, Any]:
    response = api.get("/v1/notifications", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_followers_are_notified_when_the_channel_goes_live(user: Callable[..., Api]) -> None:
    star_id = uid("star")
    star = user(star_id, name="Star")
    fans = [user(uid("fan")) for _ in range(3)]
    stranger = user(uid("stranger"))
    for fan in fans:
        followed = fan.post(f"/v1/users/{star_id}/follow")
        assert followed.status_code == 200 and followed.json() == {"userId": star_id, "following": True}
    assert fans[0].post(f"/v1/users/{star_id}/follow").status_code == 200  # again: a no-op
    assert fans[2].delete(f"/v1/users/{star_id}/follow").json()["following"] is False
    refused = star.post(f"/v1/users/{star_id}/follow")
    assert refused.status_code == 422 and refused.json()["type"].endswith("/cannot-follow-self")

    sid = go_live(star)

    def notified(api: Api) -> dict[str, Any]:
        return _count(inbox(api)["notifications"], 1)[0]

    for fan in fans[:2]:
        item = eventually(lambda fan=fan: notified(fan))
        assert (item["kind"], item["streamId"], item["channelId"], item["actorName"], item["title"]) == (
            "stream_started",
            sid,
            star_id,
            "Star",
            "Going live",
        )
        assert item["read"] is False
    assert inbox(fans[2])["notifications"] == []  # unfollowed before the start
    assert inbox(stranger)["notifications"] == []

    # a second stream: a second notification, newest first, and the cursor pages
    assert star.post(f"/v1/streams/{sid}/end").status_code == 200
    second = go_live(star)
    items = eventually(lambda: _count(inbox(fans[0])["notifications"], 2))
    assert [i["streamId"] for i in items] == [second, sid]
    first_page = inbox(fans[0], limit=1)
    assert [i["streamId"] for i in first_page["notifications"]] == [second]
    rest = inbox(fans[0], limit=1, cursor=first_page["nextCursor"])
    assert [i["streamId"] for i in rest["notifications"]] == [sid] and rest["nextCursor"] is None
    bad = fans[0].get("/v1/notifications", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400 and bad.json()["type"].endswith("/invalid-cursor")


def test_a_followers_only_stream_admits_followers(user: Callable[..., Api]) -> None:
    host_id = uid("host")
    host, fan, stranger = user(host_id), user(uid("fan")), user(uid("stranger"))
    assert fan.post(f"/v1/users/{host_id}/follow").status_code == 200
    sid = go_live(host, privacy="followers")

    def fan_joins() -> None:
        joined = fan.post(f"/v1/streams/{sid}/viewers")
        assert joined.status_code == 200, joined.text  # once the follow reached the read model

    eventually(fan_joins)
    refused = stranger.post(f"/v1/streams/{sid}/viewers")
    assert refused.status_code == 403 and refused.json()["type"].endswith("/followers-only")


def _count(items: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    assert len(items) == n, items
    return items

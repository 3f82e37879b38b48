"""Channels over HTTP on the real stack (issue #18): live now, the channel page, followed channels
live, channel moderators and the permission to go live.

Every read is filtered by discovery's rule: the bad cases (a private stream of a followed channel,
a followers-only one for a stranger, an age-restricted one for a minor, a banned follower) are built
and must stay hidden."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from harness import Api, eventually, problem, uid

from spaktok.infra.devstack import DevStack

pytestmark = pytest.mark.integration

ADULT = {"birth_year": datetime.now(UTC).year - 30}
MINOR = {"birth_year": datetime.now(UTC).year - 15}


def go_live(owner: Api, **body: Any) -> str:
    response = owner.post("/v1/streams", json={"title": "Channel", "category": "chat", **body})
    assert response.status_code == 201, response.text
    sid = str(response.json()["streamId"])
    eventually(lambda: _ok(owner.get(f"/v1/streams/{sid}")))
    return sid


def _ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return dict(response.json())


def live_of(api: Api, user_id: str) -> dict[str, Any]:
    return _ok(api.get(f"/v1/users/{user_id}/live"))


def following_live(api: Api, **params: Any) -> list[str]:
    return [s["streamId"] for s in _ok(api.get("/v1/me/following/live", params=params))["streams"]]


def follow(api: Api, user_id: str) -> None:
    _ok(api.post(f"/v1/users/{user_id}/follow"))


def test_live_now_answers_for_visible_streams_only(user: Callable[..., Api]) -> None:
    star_id, fan_id, banned_id = uid("star"), uid("fan"), uid("banned")
    star, fan, stranger = user(star_id, **ADULT), user(fan_id, **ADULT), user(uid("stranger"), **ADULT)
    banned, minor = user(banned_id, **ADULT), user(uid("minor"), **MINOR)
    assert live_of(fan, star_id) == {"userId": star_id, "live": False}
    for api in (fan, banned, minor):
        follow(api, star_id)

    sid = go_live(star, title="Hello fans", privacy="followers", isAgeRestricted=True)
    _ok(star.post(f"/v1/streams/{sid}/bans", json={"userId": banned_id, "reason": "spam"}))
    live = eventually(lambda: _assert_live(fan, star_id, sid))
    assert live["title"] == "Hello fans" and live["viewerCount"] == 0 and live["startedAt"].endswith("Z")
    assert "playbackUrl" not in live and "streamKey" not in live
    assert live_of(star, star_id)["streamId"] == sid  # the owner sees their own

    # the bad cases: a stranger (followers-only), a banned follower, a minor (age-restricted)
    eventually(lambda: _assert_hidden(banned, star_id))
    for api in (stranger, minor):
        assert live_of(api, star_id) == {"userId": star_id, "live": False}

    _ok(star.post(f"/v1/streams/{sid}/end"))
    eventually(lambda: _assert_hidden(fan, star_id))


def _assert_live(api: Api, user_id: str, sid: str) -> dict[str, Any]:
    live = live_of(api, user_id)
    assert live["live"] is True and live["streamId"] == sid, live
    return live


def _assert_hidden(api: Api, user_id: str) -> None:
    assert live_of(api, user_id) == {"userId": user_id, "live": False}


def test_a_private_stream_of_a_followed_channel_stays_hidden(user: Callable[..., Api]) -> None:
    owner_id, friend_id = uid("owner"), uid("friend")
    owner, friend, fan = user(owner_id, **ADULT), user(friend_id, **ADULT), user(uid("fan"), **ADULT)
    public_id = uid("public")
    public = user(public_id, **ADULT)
    for api in (friend, fan):
        follow(api, owner_id)
        follow(api, public_id)
    private_sid = go_live(owner, privacy="private", allowedUserIds=[friend_id])
    public_sid = go_live(public)

    eventually(lambda: _assert_following(friend, {private_sid, public_sid}))
    _assert_following(fan, {public_sid})  # the private stream is not the fan's to know of
    assert _assert_live(friend, owner_id, private_sid)["live"] is True
    _assert_hidden(fan, owner_id)
    page = _ok(fan.get(f"/v1/users/{owner_id}/streams"))
    assert page == {"streams": [], "nextCursor": None}
    assert [s["streamId"] for s in _ok(friend.get(f"/v1/users/{owner_id}/streams"))["streams"]] == [
        private_sid
    ]


def _assert_following(api: Api, expected: set[str]) -> None:
    assert set(following_live(api)) == expected


def test_following_live_pages_with_a_cursor(user: Callable[..., Api]) -> None:
    fan = user(uid("fan"), **ADULT)
    channels = [(uid("ch"), None) for _ in range(3)]
    sids = []
    for channel_id, _ in channels:
        follow(fan, channel_id)
        sids.append(go_live(user(channel_id, **ADULT)))
    eventually(lambda: _assert_following(fan, set(sids)))
    first = _ok(fan.get("/v1/me/following/live", params={"limit": 2}))
    assert len(first["streams"]) == 2 and first["nextCursor"]
    second = _ok(fan.get("/v1/me/following/live", params={"limit": 2, "cursor": first["nextCursor"]}))
    assert second["nextCursor"] is None
    assert {s["streamId"] for s in first["streams"] + second["streams"]} == set(sids)
    problem(fan.get("/v1/me/following/live", params={"cursor": "not-a-cursor"}), 400, "invalid-cursor")


def test_the_channel_page_lists_streams_newest_first(user: Callable[..., Api]) -> None:
    star_id = uid("star")
    star, viewer = user(star_id, **ADULT), user(uid("viewer"), **ADULT)
    first = go_live(star, title="First")
    _ok(star.post(f"/v1/streams/{first}/end"))
    eventually(lambda: _assert_hidden(star, star_id))
    second = go_live(star, title="Second")

    def listed() -> list[dict[str, Any]]:
        streams: list[dict[str, Any]] = _ok(viewer.get(f"/v1/users/{star_id}/streams"))["streams"]
        assert [s["streamId"] for s in streams] == [second, first], streams
        return streams

    now, before = eventually(listed)
    assert (now["status"], now["title"], now["endedAt"]) == ("live", "Second", None)
    assert (before["status"], before["title"]) == ("ended", "First")
    assert before["endedAt"] and before["peakViewerCount"] == 0
    assert (before["hasReplay"], before["replayUrl"]) == (False, None)  # not recorded
    page = _ok(viewer.get(f"/v1/users/{star_id}/streams", params={"limit": 1}))
    assert [s["streamId"] for s in page["streams"]] == [second]
    rest = _ok(viewer.get(f"/v1/users/{star_id}/streams", params={"limit": 1, "cursor": page["nextCursor"]}))
    assert [s["streamId"] for s in rest["streams"]] == [first] and rest["nextCursor"] is None


def test_bad_input_is_a_problem(user: Callable[..., Api]) -> None:
    api = user(uid("someone"))
    problem(api.get(f"/v1/users/{uid('x')}/streams", params={"cursor": "!!"}), 400, "invalid-cursor")
    for path in ("/v1/users/bad%20id/live", "/v1/users/bad%20id/streams", "/v1/me/following/live?limit=0"):
        response = api.get(path)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


CHANNEL_ROUTES = (
    "/v1/users/{user_id}/live",
    "/v1/users/{user_id}/streams",
    "/v1/me/following/live",
    "/v1/me/moderators",
    "/v1/me/moderators/{user_id}",
)


def test_the_channel_routes_are_in_the_openapi_document(user: Callable[..., Api]) -> None:
    paths = _ok(user(uid("someone")).get("/openapi.json"))["paths"]
    missing = [route for route in CHANNEL_ROUTES if route not in paths]
    assert not missing, missing


# --- channel moderators ---------------------------------------------------------------------------


def moderators_of(api: Api) -> list[str]:
    return [m["userId"] for m in _ok(api.get("/v1/me/moderators"))["moderators"]]


def test_channel_moderators_moderate_every_stream_including_the_live_one(user: Callable[..., Api]) -> None:
    owner_id, early_id, late_id, troll_id = uid("owner"), uid("early"), uid("late"), uid("troll")
    owner, early, late = user(owner_id, **ADULT), user(early_id, **ADULT), user(late_id, **ADULT)
    named = _ok(owner.post("/v1/me/moderators", json={"userId": early_id}))
    assert named == {"channelId": owner_id, "userId": early_id, "channelModerator": True}
    eventually(lambda: _assert_equal(moderators_of(owner), [early_id]))

    sid = go_live(owner, privacy="private")  # a private stream: its moderators may still see it
    assert _assert_live(early, owner_id, sid)["live"] is True
    _assert_hidden(late, owner_id)
    _ok(early.post(f"/v1/streams/{sid}/bans", json={"userId": troll_id, "reason": "spam"}))

    # named while live: reaches the live stream (forwarded by the channel after its answer)
    _ok(owner.post("/v1/me/moderators", json={"userId": late_id}))
    eventually(
        lambda: _ok(
            late.post(f"/v1/streams/{sid}/timeouts", json={"userId": uid("x"), "durationSeconds": 60})
        )
    )
    eventually(lambda: _assert_live(late, owner_id, sid))

    def logged() -> None:
        entries = _ok(late.get(f"/v1/streams/{sid}/moderation-log"))["entries"]
        roles = {(e["moderatorId"], e["action"], e["role"]) for e in entries}
        assert (early_id, "ban", "channel_moderator") in roles, entries

    eventually(logged)

    def audited() -> None:  # the platform's moderation audit (ClickHouse) has the naming too
        admin = user(uid("admin"), roles=["admin"])
        rows = _ok(admin.get("/v1/audit/moderation", params={"user": late_id}))["items"]
        named = [(r["userId"], r["actorId"]) for r in rows if r["action"] == "ChannelModeratorAdded"]
        assert named == [(late_id, owner_id)], rows

    eventually(audited)

    # removed while live: refused from then on, and the private stream is hidden again
    _ok(owner.delete(f"/v1/me/moderators/{early_id}"))
    eventually(
        lambda: problem(
            early.post(f"/v1/streams/{sid}/bans", json={"userId": uid("y")}), 403, "not-moderator"
        )
    )
    eventually(lambda: _assert_hidden(early, owner_id))
    eventually(lambda: _assert_equal(moderators_of(owner), [late_id]))


def _assert_equal(got: Any, want: Any) -> None:
    assert got == want


def test_channel_moderator_bad_input(user: Callable[..., Api]) -> None:
    me_id = uid("me")
    me = user(me_id)
    problem(me.post("/v1/me/moderators", json={"userId": me_id}), 422, "cannot-moderate-self")
    for body in ({}, {"userId": ""}, {"user": "x"}):
        response = me.post("/v1/me/moderators", json=body)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    removed = _ok(me.delete(f"/v1/me/moderators/{uid('never')}"))  # never named: nothing to remove
    assert removed["channelModerator"] is False
    assert _ok(me.get("/v1/me/moderators")) == {"channelId": me_id, "moderators": []}


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg to make a recording")
def test_the_channel_page_links_a_stream_replay(stack: DevStack, user: Callable[..., Api]) -> None:
    """A recorded stream whose recording the media server reported (the record-done hook, fed a real
    FLV made by ffmpeg): its page entry says `hasReplay` and links the replay, which signs it."""
    star_id = uid("star")
    star, viewer = user(star_id, **ADULT), user(uid("viewer"), **ADULT)
    sid = go_live(star, title="Recorded", isRecorded=True)
    key = _ok(star.get(f"/v1/streams/{sid}"))["streamKey"]
    incoming = (stack.data_dir / "media" / "incoming").resolve()
    incoming.mkdir(parents=True, exist_ok=True)
    flv = incoming / f"{sid}-1.flv"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=5",
         "-t", "1", "-c:v", "libx264", "-preset", "ultrafast", "-f", "flv", str(flv)],
        check=True,
    )  # fmt: skip
    hook = Api(stack.api_url, None)  # the media server: authorized by its address and the stream key
    done = hook.post("/v1/hooks/rtmp/record-done", data={"app": "live", "name": key, "path": str(flv)})
    assert done.status_code in (200, 202), done.text
    _ok(star.post(f"/v1/streams/{sid}/end"))

    def listed() -> dict[str, Any]:
        [entry] = _ok(viewer.get(f"/v1/users/{star_id}/streams"))["streams"]
        assert entry["hasReplay"] is True and entry["status"] == "ended", entry
        return entry

    entry = eventually(listed)
    assert entry["replayUrl"] == f"/v1/streams/{sid}/replay"
    assert _ok(viewer.get(entry["replayUrl"]))["replayUrl"]

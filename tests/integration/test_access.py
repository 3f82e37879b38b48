"""Who may see a stream, over HTTP, WebSocket and SSE on the real stack (api/access.py, issue #15).

A private, a followers-only and an age-restricted stream: every read path tried by an outsider and
an insider; a ban and a privacy change closing an open WebSocket feed with 4403; the heartbeat's
playback URL withheld once the viewer may no longer watch."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from harness import Api, eventually, problem, uid
from sqlalchemy import Engine
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from spaktok import clock
from spaktok.api.auth import mint_token
from spaktok.infra.devstack import DevStack
from spaktok.projections.social import follows_channel_of_stream
from spaktok.settings import Settings

READ_PATHS = ("", "/comments", "/viewers", "/leaderboard")
CATEGORY = uid("access-tests")


def go_live(owner: Api, **body: Any) -> str:
    # a category of its own, so discovery checks are not crowded out by other tests' streams
    response = owner.post("/v1/streams", json={"title": "Access", "category": CATEGORY, **body})
    assert response.status_code == 201, response.text
    sid = str(response.json()["streamId"])
    eventually(lambda: _ok(owner.get(f"/v1/streams/{sid}")))
    return sid


def _ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def ws(stack: DevStack, stream_id: str, user_id: str, **claims: Any) -> ClientConnection:
    token = mint_token(Settings(), user_id, **claims)
    url = f"{stack.api_url.replace('http://', 'ws://')}/v1/streams/{stream_id}/live?access_token={token}"
    return connect(url, open_timeout=10)


def refused_at_connect(stack: DevStack, stream_id: str, user_id: str, **claims: Any) -> tuple[int, str]:
    """The close code and reason of a feed the server refuses (it sends no frame first)."""
    with ws(stack, stream_id, user_id, **claims) as conn:
        with pytest.raises(ConnectionClosed) as closed:
            frame = conn.recv(timeout=10)
            raise AssertionError(f"a refused client received a frame: {frame!r}")
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


class Watch:
    """An open WebSocket feed read by a thread, so the test can act while it runs."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn, self.items, self.closed = conn, [], None
        self.items: list[dict[str, Any]]
        self.closed: ConnectionClosed | None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            while True:
                self.items.extend(orjson.loads(self.conn.recv()))
        except ConnectionClosed as closed:
            self.closed = closed

    def close_frame(self, timeout: float = 20.0) -> tuple[int, str]:
        self._reader.join(timeout)
        assert self.closed is not None and self.closed.rcvd is not None, "the feed was not closed"
        return self.closed.rcvd.code, self.closed.rcvd.reason


def watching(stack: DevStack, stream_id: str, user_id: str, **claims: Any) -> Watch:
    watch = Watch(ws(stack, stream_id, user_id, **claims).__enter__())  # closed by the test
    eventually(lambda: _assert([i for i in watch.items if i["type"] == "snapshot"]))
    return watch


def _assert(value: Any) -> Any:
    assert value
    return value


def sse_status(stack: DevStack, stream_id: str, user_id: str, **claims: Any) -> int:
    token = mint_token(Settings(), user_id, **claims)
    url = f"{stack.api_url}/v1/streams/{stream_id}/events"
    with httpx.stream("GET", url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as response:
        return response.status_code


def listed(api: Api, stream_id: str) -> bool:
    streams = _ok(api.get("/v1/streams", params={"limit": 100, "category": CATEGORY}))["streams"]
    return stream_id in {s["streamId"] for s in streams}


def viewer_of_url(url: str) -> str:
    tag = url.split("/hls/")[1].split("/")[2]
    return base64.urlsafe_b64decode(tag + "=" * (-len(tag) % 4)).decode()


def test_a_private_stream_is_hidden_from_outsiders_and_open_to_insiders(
    stack: DevStack, user: Callable[..., Api]
) -> None:
    ids = {name: uid(name) for name in ("owner", "ann", "mod", "stranger")}
    owner, ann, stranger = user(ids["owner"]), user(ids["ann"]), user(ids["stranger"])
    staff = user(uid("staffer"), roles=["moderation"])
    sid = go_live(owner, privacy="private", allowedUserIds=[ids["ann"]])
    assert owner.post(f"/v1/streams/{sid}/moderators", json={"userId": ids["mod"]}).status_code == 200
    mod = user(ids["mod"])

    # outsiders: every read path answers as for a missing stream, with the same body
    missing = stranger.get("/v1/streams/st_doesnotexist").json()
    hidden = stranger.get(f"/v1/streams/{sid}")
    problem(hidden, 404, "stream-not-found")
    assert {k: v for k, v in hidden.json().items() if k != "detail"} == {
        k: v for k, v in missing.items() if k != "detail"
    }
    assert hidden.json()["detail"] == missing["detail"].replace("st_doesnotexist", sid)
    for path in (*READ_PATHS, "/replay", "/analytics", "/log", "/moderation-log"):
        problem(stranger.get(f"/v1/streams/{sid}{path}"), 404, "stream-not-found")
    problem(stranger.post(f"/v1/streams/{sid}/viewers"), 404, "stream-not-found")
    assert not listed(stranger, sid)
    assert refused_at_connect(stack, sid, ids["stranger"])[0] == 4404
    assert sse_status(stack, sid, ids["stranger"]) == 404

    # insiders: the allowed user, a stream moderator, platform staff
    for insider in (ann, mod, staff):
        for path in READ_PATHS:
            _ok(insider.get(f"/v1/streams/{sid}{path}"))
        assert listed(insider, sid)
    problem(ann.get(f"/v1/streams/{sid}/analytics"), 403, "forbidden")  # knows it exists; not hers
    problem(ann.get(f"/v1/streams/{sid}/moderation-log"), 403, "not-moderator")
    _ok(mod.get(f"/v1/streams/{sid}/moderation-log"))
    joined = _ok(ann.post(f"/v1/streams/{sid}/viewers"))
    assert viewer_of_url(joined["playbackUrl"]) == ids["ann"]
    watch = watching(stack, sid, ids["ann"])
    assert watch.closed is None
    watch.conn.close()
    assert "allowedUserIds" not in _ok(ann.get(f"/v1/streams/{sid}"))
    assert _ok(owner.get(f"/v1/streams/{sid}"))["allowedUserIds"] == [ids["ann"]]


def test_a_followers_only_stream_refuses_strangers_on_every_read_path(
    stack: DevStack, user: Callable[..., Api]
) -> None:
    ids = {name: uid(name) for name in ("host", "fan", "stranger")}
    host, fan, stranger = user(ids["host"]), user(ids["fan"]), user(ids["stranger"])
    assert fan.post(f"/v1/users/{ids['host']}/follow").status_code == 200
    sid = go_live(host, privacy="followers")

    for path in READ_PATHS:
        problem(stranger.get(f"/v1/streams/{sid}{path}"), 403, "followers-only")
    problem(stranger.get(f"/v1/streams/{sid}/analytics"), 403, "forbidden")
    problem(stranger.post(f"/v1/streams/{sid}/viewers"), 403, "followers-only")
    assert refused_at_connect(stack, sid, ids["stranger"]) == (4403, "followers-only")
    assert sse_status(stack, sid, ids["stranger"]) == 403
    assert not listed(stranger, sid)

    eventually(lambda: _ok(fan.get(f"/v1/streams/{sid}")))  # once the follow is in the read model
    for path in READ_PATHS:
        _ok(fan.get(f"/v1/streams/{sid}{path}"))
    assert listed(fan, sid)
    assert viewer_of_url(_ok(fan.post(f"/v1/streams/{sid}/viewers"))["playbackUrl"]) == ids["fan"]
    watching(stack, sid, ids["fan"]).conn.close()


def test_an_age_restricted_stream_refuses_known_minors(stack: DevStack, user: Callable[..., Api]) -> None:
    year = clock.now().year
    ids = {name: uid(name) for name in ("owner", "kid", "adult", "unknown")}
    sid = go_live(user(ids["owner"]), isAgeRestricted=True)
    kid, adult, unknown = (
        user(ids["kid"], birth_year=year - 15),
        user(ids["adult"], birth_year=year - 30),
        user(ids["unknown"]),
    )

    for path in READ_PATHS:
        problem(kid.get(f"/v1/streams/{sid}{path}"), 403, "age-restricted")
        _ok(adult.get(f"/v1/streams/{sid}{path}"))
        _ok(unknown.get(f"/v1/streams/{sid}{path}"))  # reading: an unknown age passes
    problem(kid.post(f"/v1/streams/{sid}/viewers"), 403, "age-restricted")
    problem(unknown.post(f"/v1/streams/{sid}/viewers"), 403, "age-restricted")  # watching needs an adult
    _ok(adult.post(f"/v1/streams/{sid}/viewers"))
    assert refused_at_connect(stack, sid, ids["kid"], birth_year=year - 15) == (4403, "age-restricted")
    assert sse_status(stack, sid, ids["kid"], birth_year=year - 15) == 403
    assert not listed(kid, sid) and listed(adult, sid)
    watching(stack, sid, ids["adult"], birth_year=year - 30).conn.close()


def test_a_ban_closes_the_open_feed_with_4403_and_stops_new_playback_urls(
    stack: DevStack, user: Callable[..., Api]
) -> None:
    ids = {name: uid(name) for name in ("owner", "troll", "fan")}
    owner, troll = user(ids["owner"]), user(ids["troll"])
    sid = go_live(owner)
    _ok(troll.post(f"/v1/streams/{sid}/viewers"))
    beat = _ok(troll.post(f"/v1/streams/{sid}/heartbeat"))
    assert viewer_of_url(beat["playbackUrl"]) == ids["troll"]
    trolls_feed, fans_feed = watching(stack, sid, ids["troll"]), watching(stack, sid, ids["fan"])

    assert owner.post(f"/v1/streams/{sid}/bans", json={"userId": ids["troll"]}).status_code == 200
    assert trolls_feed.close_frame() == (4403, "user-banned")
    eventually(lambda: _assert([i for i in fans_feed.items if i["type"] == "banned"]))
    assert fans_feed.closed is None  # the others keep watching
    fans_feed.conn.close()

    eventually(lambda: problem(troll.get(f"/v1/streams/{sid}"), 403, "user-banned"))
    problem(troll.get(f"/v1/streams/{sid}/comments"), 403, "user-banned")
    assert refused_at_connect(stack, sid, ids["troll"]) == (4403, "user-banned")
    assert not listed(troll, sid)
    refused = troll.post(f"/v1/streams/{sid}/heartbeat")  # the ban took them out of the audience
    assert refused.status_code == 409 or refused.json()["playbackUrl"] is None, refused.text


def test_a_privacy_change_closes_the_feeds_of_those_it_excludes(
    stack: DevStack, pg: Engine, user: Callable[..., Api]
) -> None:
    ids = {name: uid(name) for name in ("owner", "fan", "passerby")}
    owner, fan, passerby = user(ids["owner"]), user(ids["fan"]), user(ids["passerby"])
    assert fan.post(f"/v1/users/{ids['owner']}/follow").status_code == 200
    sid = go_live(owner)
    eventually(
        lambda: _assert(follows_channel_of_stream(pg, ids["fan"], sid))
    )  # the feed reads it at connect
    _ok(fan.post(f"/v1/streams/{sid}/viewers"))
    _ok(passerby.post(f"/v1/streams/{sid}/viewers"))

    passers_feed, fans_feed = watching(stack, sid, ids["passerby"]), watching(stack, sid, ids["fan"])
    assert owner.patch(f"/v1/streams/{sid}", json={"privacy": "followers"}).status_code == 200
    assert passers_feed.close_frame() == (4403, "followers-only")
    eventually(lambda: _assert([i for i in fans_feed.items if i["type"] == "updated"]))
    assert fans_feed.closed is None
    fans_feed.conn.close()

    # the heartbeat's answer carries no new playback URL for the one who may no longer watch
    def refused_beat() -> None:
        beat = _ok(passerby.post(f"/v1/streams/{sid}/heartbeat"))
        assert (beat["playbackUrl"], beat["playbackRefused"]) == (None, "followers-only")

    eventually(refused_beat)
    assert viewer_of_url(_ok(fan.post(f"/v1/streams/{sid}/heartbeat"))["playbackUrl"]) == ids["fan"]

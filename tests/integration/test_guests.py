"""Multi-guest over HTTP/WebSocket against the real stack: invite, accept, leave, the feed."""

from __future__ import annotations

from collections.abc import Callable

from harness import Api, eventually, problem, uid
from test_live_feed import Feed, wait_for_document, ws_url
from websockets.sync.client import connect

from spaktok.api.auth import mint_token
from spaktok.infra.devstack import DevStack
from spaktok.settings import Settings


def test_a_guest_is_invited_accepts_appears_on_the_document_and_the_feed_and_leaves(
    stack: DevStack, user: Callable[..., Api]
) -> None:
    host_id, ann_id, bob_id = uid("host"), uid("ann"), uid("bob")
    host, ann, bob = user(host_id), user(ann_id), user(bob_id)
    sid = host.post("/v1/streams", json={"title": "Panel", "category": "talk"}).json()["streamId"]
    wait_for_document(host, sid)
    with connect(ws_url(stack, sid, mint_token(Settings(), uid("watcher"))), open_timeout=10) as conn:
        feed = Feed(conn)
        feed.until(lambda items: len(items) > 0)
        problem(bob.post(f"/v1/streams/{sid}/guests", json={"userId": ann_id}), 403, "not-stream-owner")
        problem(ann.post(f"/v1/streams/{sid}/guests/accept"), 403, "not-invited")
        invited = host.post(f"/v1/streams/{sid}/guests", json={"userId": ann_id})
        assert invited.status_code == 200 and invited.json()["status"] == "invited", invited.text

        def told() -> None:
            kinds = [n["kind"] for n in ann.get("/v1/notifications").json()["notifications"]]
            assert "guest_invited" in kinds

        eventually(told)
        assert ann.post(f"/v1/streams/{sid}/guests/accept").json()["status"] == "joined"
        eventually(lambda: _guests(host, sid, [ann_id]))
        assert ann.delete(f"/v1/streams/{sid}/guests/{ann_id}").status_code == 200
        eventually(lambda: _guests(host, sid, []))
        items = feed.until(lambda items: any(i["type"] == "guest_left" for i in items))
        stage = [(i["type"], i["userId"], i["guests"]) for i in items if i["type"].startswith("guest_")]
        assert stage == [("guest_joined", ann_id, [ann_id]), ("guest_left", ann_id, [])]
        assert [i["reason"] for i in items if i["type"] == "guest_left"] == ["left"]


def _guests(api: Api, stream_id: str, expected: list[str]) -> None:
    assert api.get(f"/v1/streams/{stream_id}").json()["guestUsers"] == expected

"""The end of a big stream on the real stack: it lets 2,000 viewers go and ends, then lets the
others go 2,000 per decision (`ReleaseViewers`, the stream's own forward); the log, the read models
and what the clients are told agree (docs/decisions.md "A big stream's rare moments")."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson
from harness import Api, eventually, uid
from sqlalchemy import Engine, text

from spaktok import clock
from spaktok.commands.stream.lifecycle import LEAVES_PER_DECISION
from spaktok.commands.streams import ArrivingViewer, JoinViewers

CROWD = LEAVES_PER_DECISION + 1_500  # two turns after the end's own
EDGE_BATCH = 500


def crowd_joins(edge: Callable[..., None], sid: str) -> list[str]:
    """`CROWD` viewers in edge batches, as the API's join batcher sends a busy stream's joins."""
    users = [f"crowd-{sid[-6:]}-{n:05d}" for n in range(CROWD)]
    for start in range(0, CROWD, EDGE_BATCH):
        command = JoinViewers(
            command_id=str(uuid.uuid4()),
            issued_at=clock.now(),
            actor_id="edge",
            stream_id=sid,
            viewers=[ArrivingViewer(user_id=u, username=u) for u in users[start : start + EDGE_BATCH]],
        )
        edge(command)
    return users


def test_a_big_stream_ends_and_lets_every_viewer_go_with_their_watch_time(
    user: Callable[..., Api], edge: Callable[..., None], pg: Engine
) -> None:
    fan_id = uid("fan")
    owner, fan, early = user(uid("owner")), user(fan_id), user(uid("early"))
    sid = owner.post("/v1/streams", json={"title": "a crowd", "category": "chat"}).json()["streamId"]
    assert early.post(f"/v1/streams/{sid}/viewers").status_code == 200
    assert early.delete(f"/v1/streams/{sid}/viewers/me").status_code == 200  # left before the end
    assert fan.post(f"/v1/streams/{sid}/viewers").status_code == 200
    crowd = crowd_joins(edge, sid)
    watching = CROWD + 1
    eventually(lambda: _count_is(owner, sid, watching), timeout=60)

    ended = owner.post(f"/v1/streams/{sid}/end")

    assert ended.status_code == 200, ended.text
    assert ended.json()["status"] == "ended" and ended.json()["peakViewerCount"] == watching
    assert fan.delete(f"/v1/streams/{sid}/viewers/me").status_code == 409  # the end let them go

    def all_left() -> list[dict[str, Any]]:
        events = owner.get(f"/v1/streams/{sid}/log", params={"limit": 10_000}).json()["events"]
        ends = [e for e in events if e["type"] == "streams.StreamEnded"]
        gone = [
            e for e in events if e["type"] == "streams.ViewerLeft" and _payload(e)["reason"] == "stream_ended"
        ]
        assert ends and len(gone) == watching, (len(ends), len(gone))
        return events

    events = eventually(all_left, timeout=90)
    sequences = [e["sequence"] for e in events]
    assert sequences == list(range(1, len(events) + 1))  # gap-free
    end_at = next(e["sequence"] for e in events if e["type"] == "streams.StreamEnded")
    leaves, before_end = {}, 0
    for event in events:
        if event["type"] == "streams.ViewerLeft" and _payload(event)["reason"] == "stream_ended":
            before_end += event["sequence"] < end_at
            leaves[_payload(event)["user_id"]] = _payload(event)
    assert set(leaves) == {*crowd, fan_id}
    assert 0 < before_end <= LEAVES_PER_DECISION < watching  # the end's own turn; the others after it

    def projected() -> dict[str, int]:
        assert owner.get(f"/v1/streams/{sid}").json()["viewerCount"] == 0
        with pg.connect() as conn:
            rows = conn.execute(
                text("SELECT user_id, is_active, watch_time FROM stream_viewers WHERE stream_id = :s"),
                {"s": sid},
            ).all()
        assert not any(active for _, active, _ in rows) and len(rows) == watching + 1
        return {user_id: watch for user_id, _, watch in rows}

    watch_times = eventually(projected, timeout=60)
    assert {user_id: leave["watch_time"] for user_id, leave in leaves.items()} == {
        user_id: watch_times[user_id] for user_id in leaves
    }


def _payload(event: dict[str, Any]) -> dict[str, Any]:
    payload = event["payload"]
    return orjson.loads(payload) if isinstance(payload, str | bytes) else payload


def _count_is(owner: Api, sid: str, count: int) -> None:
    assert owner.get(f"/v1/streams/{sid}").json()["viewerCount"] == count

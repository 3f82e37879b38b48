"""Edge batches of joins on the real stack: concurrent joins over HTTP travel as `JoinViewers`, each
viewer gets their own answer, and a batch's refusals are answered by viewer."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness import Api, eventually, uid
from sqlalchemy import Engine, text

from spaktok import clock
from spaktok.commands.streams import ArrivingViewer, JoinViewers

VIEWERS = 40


def batches_sent(admin: Api) -> int:
    metrics = admin.get("/metrics").text
    [line] = [x for x in metrics.splitlines() if x.startswith("spaktok_edge_batches_sent_total ")]
    return int(float(line.split()[1]))


def join_all(viewers: list[Api], sid: str) -> list[Any]:
    with ThreadPoolExecutor(len(viewers)) as pool:
        return list(pool.map(lambda v: v.post(f"/v1/streams/{sid}/viewers"), viewers))


def test_concurrent_joins_travel_in_batches_and_each_viewer_gets_their_answer(
    user: Callable[..., Api], pg: Engine
) -> None:
    owner, admin = user(uid("owner")), user(uid("admin"), roles=["admin"])
    viewers = [user(uid("viewer"), name=f"V{i}") for i in range(VIEWERS)]
    sid = owner.post("/v1/streams", json={"title": "rush", "category": "chat"}).json()["streamId"]
    before = batches_sent(admin)

    answers = join_all(viewers, sid)

    assert [a.status_code for a in answers] == [200] * VIEWERS, [
        a.text for a in answers if a.status_code != 200
    ]
    assert not any(a.json()["alreadyWatching"] for a in answers)
    counts = [a.json()["viewerCount"] for a in answers]
    assert max(counts) == VIEWERS and min(counts) >= 1
    sent = batches_sent(admin) - before
    assert 1 <= sent < VIEWERS, f"{VIEWERS} concurrent joins left as {sent} batches: none was gathered"

    again = join_all(viewers, sid)
    assert [a.status_code for a in again] == [200] * VIEWERS
    assert all(a.json()["alreadyWatching"] and a.json()["viewerCount"] == VIEWERS for a in again)

    def projected() -> None:
        assert owner.get(f"/v1/streams/{sid}").json()["viewerCount"] == VIEWERS
        with pg.connect() as conn:
            rows = conn.execute(
                text("SELECT count(*) FROM stream_viewers WHERE stream_id = :s AND is_active"), {"s": sid}
            ).scalar_one()
        assert rows == VIEWERS

    eventually(projected)

    def logged() -> list[dict[str, Any]]:
        events = owner.get(f"/v1/streams/{sid}/log").json()["events"]
        joins = [e for e in events if e["type"] == "streams.ViewerJoined"]
        assert len(joins) == VIEWERS
        return joins

    joins = eventually(logged)
    assert len({e["user_id"] for e in joins}) == VIEWERS  # each viewer once, in sequence
    assert [e["sequence"] for e in joins] == sorted(e["sequence"] for e in joins)


def test_a_batch_answers_each_viewer_and_refuses_the_banned_one_alone(
    user: Callable[..., Api], edge: Callable[..., None]
) -> None:
    owner, admin = user(uid("owner")), user(uid("admin"), roles=["admin"])
    troll, fan, watcher = uid("troll"), uid("fan"), user(uid("watcher"))
    sid = owner.post("/v1/streams", json={"title": "batch", "category": "chat"}).json()["streamId"]
    assert owner.post(f"/v1/streams/{sid}/bans", json={"userId": troll}).status_code == 200
    assert watcher.post(f"/v1/streams/{sid}/viewers").status_code == 200

    command = JoinViewers(
        command_id=str(uuid.uuid4()),
        issued_at=clock.now(),
        actor_id="edge",
        stream_id=sid,
        viewers=[ArrivingViewer(user_id=u, username=u) for u in (troll, fan, fan)],
    )
    edge(command)

    def decided() -> dict[str, Any]:
        status = admin.get(f"/v1/commands/{command.command_id}").json()
        assert status["status"] != "pending"
        return status

    outcome = eventually(decided)
    assert outcome["status"] == "accepted"
    assert outcome["stats"]["viewerCount"] == 2  # the watcher and the fan (once)
    assert outcome["answers"] == {
        troll: {"status": "rejected", "reason": "user-banned", "detail": "you are banned from this stream"},
        fan: {"status": "accepted"},
    }
    joined = [e["payload"]["user_id"] for e in outcome["events"] if e["type"] == "streams.ViewerJoined"]
    refused = [e["payload"]["refused"] for e in outcome["events"] if e["type"] == "streams.ViewersRefused"]
    assert (joined, list(refused[0])) == ([fan], [troll])

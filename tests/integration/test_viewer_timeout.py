"""Silent viewers are dropped by the worker's sweep; time is moved, not waited for.

Runs on its own stack: moving the clock forward would time out the viewers of other tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from harness import Api, eventually, start_stack
from spaktok import clock
from spaktok.api.auth import mint_token
from spaktok.infra.devstack import DevStack
from spaktok.settings import Settings
from sqlalchemy import create_engine, text


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    # the sweep runs every 60 s in production; here twice a second, so a test waits for it briefly
    stack, cleanup = start_stack("timeout", env={"SPAKTOK_VIEWER_SWEEP_INTERVAL_S": "0.5"})
    try:
        yield stack
    finally:
        cleanup()


def viewer_row(stack: DevStack, stream_id: str, user_id: str) -> dict[str, Any]:
    engine = create_engine(stack.postgres_dsn)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT is_active, watch_time FROM stream_viewers WHERE stream_id = :s AND user_id = :u"
                ),
                {"s": stream_id, "u": user_id},
            ).one()
        return dict(row._mapping)
    finally:
        engine.dispose()


def test_a_silent_viewer_is_dropped_and_counted_out(stack: DevStack) -> None:
    settings = Settings()
    names = {role: f"{role}-{uuid.uuid4().hex[:6]}" for role in ("owner", "ann", "bob")}
    owner, ann, bob = (Api(stack.api_url, mint_token(settings, names[r])) for r in ("owner", "ann", "bob"))
    started = owner.post("/v1/streams", json={"title": "Quiet crowd", "category": "chat"})
    assert started.status_code == 201, started.text
    sid = started.json()["streamId"]
    assert ann.post(f"/v1/streams/{sid}/viewers").status_code == 200
    assert bob.post(f"/v1/streams/{sid}/viewers").json()["viewerCount"] == 2

    clock.set_offset(stack.data_dir, 20)
    assert bob.post(f"/v1/streams/{sid}/heartbeat").status_code == 200
    clock.set_offset(stack.data_dir, 60)
    assert ann.post(f"/v1/streams/{sid}/heartbeat").json()["viewerCount"] == 2

    # 150 s after the start: bob has been silent 130 s (> 120), ann 90 s
    clock.set_offset(stack.data_dir, 150)

    def bob_dropped() -> dict[str, Any]:
        doc = owner.get(f"/v1/streams/{sid}").json()
        assert doc["viewerCount"] == 1
        row = viewer_row(stack, sid, names["bob"])
        assert row["is_active"] is False
        return row

    row = eventually(bob_dropped)
    assert 20 <= row["watch_time"] <= 22  # from his join to his last heartbeat, not to the sweep
    assert viewer_row(stack, sid, names["ann"])["is_active"] is True
    refused = bob.post(f"/v1/streams/{sid}/heartbeat")
    assert refused.status_code == 409 and refused.json()["type"].endswith("/not-watching")

    clock.set_offset(stack.data_dir, 200)  # ann now silent 140 s
    eventually(lambda: _assert_equal(owner.get(f"/v1/streams/{sid}").json()["viewerCount"], 0))
    ann_row = viewer_row(stack, sid, names["ann"])
    assert ann_row["is_active"] is False and 60 <= ann_row["watch_time"] <= 62

    rejoined = bob.post(f"/v1/streams/{sid}/viewers")
    assert rejoined.status_code == 200 and rejoined.json()["viewerCount"] == 1


def _assert_equal(actual: Any, expected: Any) -> None:
    assert actual == expected


def advance(stack: DevStack, seconds: float) -> None:
    """Time only moves forward here: the tests of this module share one stack and its clock."""
    clock.set_offset(stack.data_dir, clock.offset_seconds(Settings(data_dir=stack.data_dir)) + seconds)


def test_a_stream_whose_broadcaster_vanished_is_ended(stack: DevStack) -> None:
    settings = Settings()
    owner_id, fan_id = f"owner-{uuid.uuid4().hex[:6]}", f"fan-{uuid.uuid4().hex[:6]}"
    owner, fan = (
        Api(stack.api_url, mint_token(settings, owner_id)),
        Api(stack.api_url, mint_token(settings, fan_id)),
    )
    sid = owner.post("/v1/streams", json={"title": "Vanishing", "category": "chat"}).json()["streamId"]
    assert fan.post(f"/v1/streams/{sid}/viewers").status_code == 200

    advance(stack, 100)
    assert owner.post(f"/v1/streams/{sid}/heartbeat").status_code == 200  # the broadcaster's app
    assert fan.post(f"/v1/streams/{sid}/heartbeat").status_code == 200
    advance(stack, 100)
    assert fan.post(f"/v1/streams/{sid}/heartbeat").status_code == 200
    advance(stack, 150)  # the broadcaster silent 250 s: within the 300 s grace
    assert owner.get(f"/v1/streams/{sid}").json()["status"] == "live"
    assert fan.post(f"/v1/streams/{sid}/heartbeat").status_code == 200
    advance(stack, 60)  # silent 310 s

    def ended() -> dict[str, Any]:
        doc = owner.get(f"/v1/streams/{sid}").json()
        assert doc["status"] == "ended"
        return doc

    doc = eventually(ended)
    assert doc["viewerCount"] == 0
    assert viewer_row(stack, sid, fan_id)["is_active"] is False

    def end_reason() -> str:
        log = owner.get(f"/v1/streams/{sid}/log").json()["events"]
        ends = [orjson.loads(e["payload"]) for e in log if e["type"] == "streams.StreamEnded"]
        assert len(ends) == 1
        return str(ends[0]["reason"])

    assert eventually(end_reason) == "broadcaster_lost"
    again = owner.post("/v1/streams", json={"title": "Back", "category": "chat"})
    assert again.status_code == 201  # the broadcaster may go live again

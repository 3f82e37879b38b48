"""The worker's timers: silent viewers dropped, vanished broadcasters' streams ended, scheduled
streams announced. Time is moved, not waited for.

Runs on its own stack: moving the clock forward would time out the viewers of other tests.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
from harness import Api, eventually, start_stack
from sqlalchemy import create_engine, text
from test_crash_restart import read_log

from spaktok import clock
from spaktok.api.auth import mint_token
from spaktok.infra import topics
from spaktok.infra.devstack import DevStack
from spaktok.settings import Settings


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    # the sweep runs every 60 s in production, analytics snapshots every 300 s; here much more often,
    # so a test waits for them briefly
    env = {"SPAKTOK_VIEWER_SWEEP_INTERVAL_S": "0.5", "SPAKTOK_ANALYTICS_SNAPSHOT_S": "1"}
    stack, cleanup = start_stack("timeout", env=env)
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
    # the fan beats at most 100 s apart: a sweep between a move of the clock and the next beat must
    # not find them silent for more than the 120 s viewer timeout
    advance(stack, 100)
    assert fan.post(f"/v1/streams/{sid}/heartbeat").status_code == 200
    advance(stack, 50)  # the broadcaster silent 250 s: within the 300 s grace
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


def test_a_schedule_announces_reminds_ahead_once_is_due_then_links_the_stream(stack: DevStack) -> None:
    settings = Settings()
    ids = {role: f"{role}-{uuid.uuid4().hex[:6]}" for role in ("host", "fan", "keen", "both")}
    host, fan, keen, both = (Api(stack.api_url, mint_token(settings, ids[r], name=r.title())) for r in ids)
    for follower in (fan, both):
        assert follower.post(f"/v1/users/{ids['host']}/follow").status_code == 200

    now = clock.now(Settings(data_dir=stack.data_dir))
    past = host.post("/v1/schedules", json=schedule_body(now - timedelta(minutes=1)))
    assert past.status_code == 422 and past.json()["type"].endswith("/schedule-in-past")
    created = host.post("/v1/schedules", json=schedule_body(now + timedelta(minutes=30)))
    assert created.status_code == 201, created.text
    schedule_id = created.json()["scheduleId"]
    for reminder_holder in (keen, both):
        reminded = reminder_holder.post(f"/v1/schedules/{schedule_id}/reminders")
        assert reminded.status_code == 200 and reminded.json()["reminderSet"] is True

    for api in (fan, both):  # followers hear of it as soon as it is scheduled
        check_notice(eventually(lambda api=api: notices(api, "schedule_announced", schedule_id)), ids)
    assert notices(keen, "schedule_announced", schedule_id, expected=0) == []  # not a follower

    listed = eventually(
        lambda: _one(host.get("/v1/schedules", params={"userId": ids["host"]}).json()["schedules"])
    )
    assert (listed["scheduleId"], listed["status"], listed["title"]) == (
        schedule_id,
        "scheduled",
        "Album launch",
    )
    refused = fan.delete(f"/v1/schedules/{schedule_id}")
    assert refused.status_code == 403 and refused.json()["type"].endswith("/not-schedule-owner")

    advance(stack, 16 * 60)  # 14 minutes to go: inside the 15-minute reminder lead
    for api in (fan, keen, both):  # followers and reminder holders; `both` only once
        check_notice(eventually(lambda api=api: notices(api, "schedule_reminder", schedule_id)), ids)
    reminded_doc = eventually(lambda: _reminded(host.get(f"/v1/schedules/{schedule_id}").json()))
    assert reminded_doc["status"] == "scheduled" and reminded_doc["notifiedAt"] is None

    # a worker restart inside the lead (its tables restored from the changelog) reminds nobody again
    stack.kill("worker")
    stack.start_worker()
    stack.wait_ready()
    advance(stack, 60)
    time.sleep(3)  # several timer ticks of the restarted worker
    assert schedule_events(stack, schedule_id).count("schedules.ScheduleReminded") == 1

    advance(stack, 15 * 60)  # the time has come
    for api in (fan, keen, both):
        check_notice(eventually(lambda api=api: notices(api, "schedule_due", schedule_id)), ids)
    assert len(notices(keen, "schedule_reminder", schedule_id)) == 1

    started = host.post(
        "/v1/streams", json={"title": "Album launch", "category": "music", "scheduleId": schedule_id}
    )
    assert started.status_code == 201
    stream_id = started.json()["streamId"]
    doc = eventually(lambda: _status(host.get(f"/v1/schedules/{schedule_id}").json(), "started"))
    assert doc["streamId"] == stream_id and doc["notifiedAt"] is not None
    assert doc["remindedAt"] == reminded_doc["remindedAt"]


def test_cancelling_a_schedule_tells_reminder_holders_and_reminds_nobody(stack: DevStack) -> None:
    settings = Settings()
    host_id = f"host-{uuid.uuid4().hex[:6]}"
    host, keen = (
        Api(stack.api_url, mint_token(settings, host_id)),
        Api(stack.api_url, mint_token(settings, "keen-2")),
    )
    now = clock.now(Settings(data_dir=stack.data_dir))
    schedule_id, control_id = (
        host.post("/v1/schedules", json=schedule_body(now + timedelta(hours=2))).json()["scheduleId"]
        for _ in range(2)
    )
    for sid in (schedule_id, control_id):
        assert keen.post(f"/v1/schedules/{sid}/reminders").status_code == 200
    assert host.delete(f"/v1/schedules/{schedule_id}").json()["status"] == "cancelled"

    def cancelled_notice() -> dict[str, Any]:
        items = keen.get("/v1/notifications").json()["notifications"]
        return _one(
            [i for i in items if i["kind"] == "schedule_cancelled" and i["scheduleId"] == schedule_id]
        )

    eventually(cancelled_notice)
    late = keen.post(f"/v1/schedules/{schedule_id}/reminders")
    assert late.status_code == 409 and late.json()["type"].endswith("/schedule-closed")

    advance(stack, 2 * 3600 - 10 * 60)  # inside both schedules' reminder lead
    eventually(lambda: notices(keen, "schedule_reminder", control_id))  # the timer did run
    assert notices(keen, "schedule_reminder", schedule_id, expected=0) == []
    assert "schedules.ScheduleReminded" not in schedule_events(stack, schedule_id)


def notices(api: Api, kind: str, schedule_id: str, expected: int = 1) -> list[dict[str, Any]]:
    items = [
        i
        for i in api.get("/v1/notifications").json()["notifications"]
        if i["kind"] == kind and i["scheduleId"] == schedule_id
    ]
    assert len(items) == expected, items
    return items


def check_notice(items: list[dict[str, Any]], ids: dict[str, str]) -> None:
    [item] = items
    assert (item["channelId"], item["title"], item["actorName"]) == (ids["host"], "Album launch", "Host")


def schedule_events(stack: DevStack, schedule_id: str) -> list[str]:
    """The types of one schedule's events in the log (notices travel on their own topic)."""
    records = read_log(stack.broker, topics.EVENTS_SCHEDULES.name)
    return [r["type"] for r in records if r["aggregate_id"] == schedule_id]


def _reminded(doc: dict[str, Any]) -> dict[str, Any]:
    assert doc["remindedAt"] is not None, doc
    return doc


def schedule_body(when: datetime) -> dict[str, Any]:
    return {"title": "Album launch", "category": "music", "scheduledFor": when.isoformat()}


def _one(items: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(items) == 1, items
    return items[0]


def _status(doc: dict[str, Any], status: str) -> dict[str, Any]:
    assert doc["status"] == status, doc
    return doc


def test_a_timeout_mutes_and_expires_on_time(stack: DevStack) -> None:
    settings = Settings()
    owner_id, loud_id = f"owner-{uuid.uuid4().hex[:6]}", f"loud-{uuid.uuid4().hex[:6]}"
    owner = Api(stack.api_url, mint_token(settings, owner_id))
    loud = Api(stack.api_url, mint_token(settings, loud_id))
    sid = owner.post("/v1/streams", json={"title": "Muting", "category": "chat"}).json()["streamId"]
    assert loud.post(f"/v1/streams/{sid}/viewers").status_code == 200
    muted = owner.post(f"/v1/streams/{sid}/timeouts", json={"userId": loud_id, "durationSeconds": 600})
    assert muted.status_code == 200, muted.text
    refused = loud.post(f"/v1/streams/{sid}/comments", json={"text": "still here"})
    assert refused.status_code == 403 and refused.json()["type"].endswith("/timed-out")
    assert loud.post(f"/v1/streams/{sid}/heartbeat").status_code == 200  # still watching

    for step in (100, 100, 100, 100, 100, 90):  # the broadcaster's app and the viewer keep beating
        advance(stack, step)
        assert owner.post(f"/v1/streams/{sid}/heartbeat").status_code == 200
        assert loud.post(f"/v1/streams/{sid}/heartbeat").status_code == 200
    # 590 s moved, plus the few real seconds this test took: the rest of the 600 s is still muted
    refused = loud.post(f"/v1/streams/{sid}/comments", json={"text": "now?"})
    assert refused.status_code == 403, refused.text
    remaining = int(refused.json()["detail"].split("another ")[1].split(" s")[0])
    assert 1 <= remaining <= 10
    advance(stack, remaining)  # the exact boundary is covered by the decider's tests
    assert loud.post(f"/v1/streams/{sid}/comments", json={"text": "free again"}).status_code == 201
    too_long = owner.post(
        f"/v1/streams/{sid}/timeouts", json={"userId": loud_id, "durationSeconds": 14 * 86400 + 1}
    )
    assert too_long.status_code == 422


def test_a_pk_battle_ends_at_its_time_and_an_unanswered_invitation_expires(stack: DevStack) -> None:
    settings = Settings()
    ids = {role: f"{role}-{uuid.uuid4().hex[:6]}" for role in ("h1", "h2", "h3", "fan")}
    h1, h2, h3, fan = (Api(stack.api_url, mint_token(settings, ids[r])) for r in ("h1", "h2", "h3", "fan"))
    admin = Api(stack.api_url, mint_token(settings, "admin-timers", roles=["admin"]))
    s1, s2, s3 = (
        api.post("/v1/streams", json={"title": f"PK {n}", "category": "games"}).json()["streamId"]
        for n, api in enumerate((h1, h2, h3))
    )
    bought = admin.post(
        "/v1/wallet/purchases", json={"userId": ids["fan"], "coins": 500, "paymentRef": ids["fan"]}
    )
    assert bought.status_code == 201, bought.text
    for sid, api in ((s1, h1), (s2, h2), (s3, h3)):
        eventually(lambda sid=sid, api=api: _assert_equal(api.get(f"/v1/streams/{sid}").status_code, 200))

    invited = h1.post("/v1/pk-battles", json={"streamId": s1, "opponentStreamId": s2, "durationSeconds": 30})
    battle_id = invited.json()["battleId"]
    assert h2.post(f"/v1/pk-battles/{battle_id}/accept").status_code == 200
    eventually(lambda: _assert_equal(h1.get(f"/v1/pk-battles/{battle_id}").json()["status"], "active"))
    assert fan.post(f"/v1/streams/{s1}/gifts", json={"giftId": "perfume"}).status_code == 200
    eventually(lambda: _assert_equal(h1.get(f"/v1/pk-battles/{battle_id}").json()["score1"], 20))

    advance(stack, 31)  # the battle's time is up; a gift sent now is too late, whatever the timer does
    assert fan.post(f"/v1/streams/{s2}/gifts", json={"giftId": "doughnut"}).status_code == 200

    def ended() -> dict[str, Any]:
        doc = h1.get(f"/v1/pk-battles/{battle_id}").json()
        assert doc["status"] == "ended"
        return dict(doc)

    result = eventually(ended)
    assert (result["score1"], result["score2"], result["winnerId"]) == (20, 0, ids["h1"])
    assert result["endReason"] == "time_up"
    started, ended_at = (datetime.fromisoformat(result[k]) for k in ("startedAt", "endedAt"))
    assert ended_at - started == timedelta(seconds=30)  # closed at its end time, not at the timer's tick

    unanswered = h1.post("/v1/pk-battles", json={"streamId": s1, "opponentStreamId": s3}).json()["battleId"]
    advance(stack, settings.pk_invite_ttl_s)
    eventually(lambda: _assert_equal(h1.get(f"/v1/pk-battles/{unanswered}").json()["status"], "expired"))
    refused = h3.post(f"/v1/pk-battles/{unanswered}/accept")
    assert refused.status_code == 409, refused.text


def test_live_streams_record_analytics_snapshots(stack: DevStack) -> None:
    settings = Settings()
    owner_id, fan_id = f"owner-{uuid.uuid4().hex[:6]}", f"fan-{uuid.uuid4().hex[:6]}"
    owner, fan = (Api(stack.api_url, mint_token(settings, u)) for u in (owner_id, fan_id))
    sid = owner.post("/v1/streams", json={"title": "Snapshots", "category": "chat"}).json()["streamId"]
    assert fan.post(f"/v1/streams/{sid}/viewers").status_code == 200
    assert fan.post(f"/v1/streams/{sid}/likes", json={"count": 7}).status_code == 200

    def snapshot_with_the_like() -> dict[str, Any]:
        response = owner.get(f"/v1/streams/{sid}/analytics")
        assert response.status_code == 200, response.text  # 404 until ClickHouse has the stream
        snapshots = response.json()["snapshots"]
        latest = snapshots[-1] if snapshots else {}
        assert latest.get("likes") == 7
        return dict(latest)

    latest = eventually(snapshot_with_the_like, timeout=30)
    assert latest["viewerCount"] == 1 and latest["topViewers"][0]["userId"] == fan_id
    assert owner.post(f"/v1/streams/{sid}/end").status_code == 200

    def none_after_the_end() -> int:
        body = owner.get(f"/v1/streams/{sid}/analytics").json()
        assert body.get("status") == "ended"
        return len(body["snapshots"])

    count = eventually(none_after_the_end)
    time.sleep(2.5)  # two more timer rounds: an ended stream takes no snapshot
    assert len(owner.get(f"/v1/streams/{sid}/analytics").json()["snapshots"]) == count

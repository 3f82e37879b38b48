"""Platform enforcement over HTTP and WebSocket on the real stack (issue #15): stream suspension,
account suspension and reinstatement, the reports queue, allowed users, and the audit trail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness import Api, eventually, problem, uid
from test_live_feed import Feed, wait_for_document, ws_url
from websockets.sync.client import connect

from spaktok.api.auth import mint_token
from spaktok.infra.devstack import DevStack
from spaktok.settings import Settings

CLOSE_REFUSED = 4403  # API.md: the feed closes with 4403 when a suspension takes the right away


def go_live(api: Api, **fields: Any) -> str:
    response = api.post("/v1/streams", json={"title": "Enforced", "category": "chat", **fields})
    assert response.status_code == 201, response.text
    return str(response.json()["streamId"])


def ended_suspended(api: Api, sid: str) -> dict[str, Any]:
    doc = api.get(f"/v1/streams/{sid}").json()
    assert (doc["status"], doc["endReason"], doc["moderationStatus"]) == ("ended", "suspended", "suspended")
    return doc


def audit(api: Api, **params: str) -> list[tuple[str, str, str]]:
    items = api.get("/v1/audit/moderation", params=params).json()["items"]
    return [(i["action"], i["userId"], i["actorId"]) for i in items]


def test_the_platform_suspends_a_live_stream_and_its_feed_closes(
    stack: DevStack, user: Callable[..., Api]
) -> None:
    owner_id, admin_id = uid("owner"), uid("admin")
    owner, admin = user(owner_id), user(admin_id, roles=["admin"])
    stranger, team = user(uid("stranger")), user(uid("team"), roles=["moderation"])
    sid = go_live(owner)
    wait_for_document(owner, sid)
    body = {"reason": "violence"}
    for refused in (owner, stranger):  # the check fails for anyone outside the platform team
        problem(refused.post(f"/v1/admin/streams/{sid}/suspend", json=body), 403, "not-platform-moderator")
    with connect(ws_url(stack, sid, mint_token(Settings(), uid("watcher"))), open_timeout=10) as conn:
        feed = Feed(conn)
        feed.until(lambda items: len(items) > 0)  # the snapshot: connected and admitted
        answer = admin.post(f"/v1/admin/streams/{sid}/suspend", json=body)
        assert answer.status_code == 200, answer.text
        assert (answer.json()["status"], answer.json()["endReason"]) == ("ended", "suspended")
        closed = feed.wait_closed()
        assert closed.rcvd is not None and closed.rcvd.code == CLOSE_REFUSED, closed
    eventually(lambda: ended_suspended(owner, sid))
    problem(admin.post(f"/v1/admin/streams/{sid}/suspend", json=body), 409, "stream-not-live")
    problem(
        admin.post(f"/v1/admin/streams/st_{uid('none')}/suspend".replace("-", ""), json=body),
        404,
        "stream-not-found",
    )

    def logged() -> list[Any]:
        entries = team.get(f"/v1/streams/{sid}/moderation-log").json()["entries"]
        assert [(e["action"], e["moderatorId"], e["reason"]) for e in entries] == [
            ("end_stream", admin_id, "suspended"),  # newest first: the end the suspension caused
            ("suspend", admin_id, "violence"),
        ]
        assert entries[0]["timestamp"] == entries[1]["timestamp"]  # one decision: ordered by sequence
        return entries

    eventually(logged)
    eventually(lambda: _contains(audit(team, stream=sid), ("StreamSuspended", "", admin_id)))


def test_a_suspended_account_cannot_go_live_schedule_comment_or_gift_until_reinstated(
    user: Callable[..., Api],
) -> None:
    ids = {r: uid(r) for r in ("host", "other", "admin", "team")}
    host, other = user(ids["host"]), user(ids["other"])
    admin, team = user(ids["admin"], roles=["admin"]), user(ids["team"], roles=["moderation"])
    live_sid, other_sid = go_live(host), go_live(other)
    wait_for_document(host, live_sid)
    problem(
        host.put(f"/v1/admin/users/{ids['other']}/suspension", json={"reason": "x"}),
        403,
        "not-platform-moderator",
    )
    problem(
        team.put(
            f"/v1/admin/users/{ids['host']}/suspension", json={"reason": "x", "until": "2000-01-01T00:00:00Z"}
        ),
        422,
        "suspension-in-past",
    )
    suspended = team.put(f"/v1/admin/users/{ids['host']}/suspension", json={"reason": "fraud"})
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["endedStreamId"] == live_sid

    eventually(lambda: ended_suspended(host, live_sid))  # the live stream ended with the suspension
    problem(host.post("/v1/streams", json={"title": "Back", "category": "chat"}), 403, "account-suspended")

    def refused_at_the_edge() -> None:  # the read model catches up within its lag
        problem(host.post(f"/v1/streams/{other_sid}/comments", json={"text": "hi"}), 403, "account-suspended")
        gift = host.post(f"/v1/streams/{other_sid}/gifts", json={"giftId": "rose", "count": 1})
        problem(gift, 403, "account-suspended")
        later = {"title": "Comeback", "category": "chat", "scheduledFor": "2999-01-01T00:00:00Z"}
        problem(host.post("/v1/schedules", json=later), 403, "account-suspended")  # no announcement

    eventually(refused_at_the_edge)
    state = admin.get(f"/v1/admin/users/{ids['host']}/suspension").json()
    assert (state["suspended"], state["lastSuspension"]["reason"]) == (True, "fraud")

    assert admin.delete(f"/v1/admin/users/{ids['host']}/suspension").json() == {
        "userId": ids["host"],
        "suspended": False,
    }
    go_live(host)  # the channel decides at once: no read-model lag

    def lifted() -> None:
        assert host.post(f"/v1/streams/{other_sid}/comments", json={"text": "hi"}).status_code == 201

    eventually(lifted)
    expected = [
        ("AccountSuspended", ids["host"], ids["team"]),
        ("AccountReinstated", ids["host"], ids["admin"]),
    ]
    eventually(lambda: _contains(audit(team, user=ids["host"]), *expected))


def test_reports_queue_from_open_to_suspend_user(user: Callable[..., Api]) -> None:
    ids = {r: uid(r) for r in ("owner", "ann", "bob", "team")}
    owner, ann, bob = user(ids["owner"], name="Reported host"), user(ids["ann"]), user(ids["bob"])
    team = user(ids["team"], roles=["moderation"])
    sid = go_live(owner, title="Reported show")
    assert ann.post(f"/v1/streams/{sid}/reports", json={"reason": "spam"}).status_code == 200
    assert bob.post(f"/v1/streams/{sid}/reports", json={"reason": "scam"}).status_code == 200
    assert ann.post(f"/v1/streams/{sid}/reports", json={"reason": "spam again"}).status_code == 200
    problem(owner.get("/v1/admin/reports"), 403, "not-platform-moderator")

    def listed(status: str) -> dict[str, Any]:
        reports = team.get("/v1/admin/reports", params={"status": status, "limit": 100}).json()["reports"]
        matching = [r for r in reports if r["streamId"] == sid]
        assert len(matching) == 1, reports  # an assertion: eventually() retries it until projected
        return matching[0]

    def both_reporters() -> dict[str, Any]:
        report = listed("open")
        assert report["count"] == 2
        assert sorted((r["userId"], r["reason"]) for r in report["reporters"]) == sorted(
            [(ids["ann"], "spam"), (ids["bob"], "scam")]
        )
        return report

    report = eventually(both_reporters)
    assert report["reportId"] == f"{sid}-1" and report["status"] == "open"
    assert (report["stream"]["title"], report["stream"]["ownerId"]) == ("Reported show", ids["owner"])
    assert report["firstReportedAt"] <= report["lastReportedAt"]

    problem(
        owner.post(f"/v1/admin/reports/{sid}-1/resolve", json={"action": "dismiss"}),
        403,
        "not-platform-moderator",
    )
    problem(
        team.post(f"/v1/admin/reports/{sid}-2/resolve", json={"action": "dismiss"}), 404, "report-not-found"
    )
    problem(
        team.post(f"/v1/admin/reports/{sid}/resolve", json={"action": "dismiss"}), 404, "report-not-found"
    )
    body = {"action": "suspend-user", "note": "scam confirmed"}
    resolved = team.post(f"/v1/admin/reports/{sid}-1/resolve", json=body)
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["status"], resolved.json()["reporters"]) == ("resolved", 2)
    problem(team.post(f"/v1/admin/reports/{sid}-1/resolve", json=body), 409, "report-resolved")

    eventually(lambda: ended_suspended(owner, sid))  # the channel suspended the owner, who was live
    problem(owner.post("/v1/streams", json={"title": "Again", "category": "chat"}), 403, "account-suspended")

    def closed() -> None:
        report = listed("resolved")
        assert report["resolution"]["action"] == "suspend-user"
        assert report["resolution"]["note"] == "scam confirmed"
        assert not [r for r in team.get("/v1/admin/reports").json()["reports"] if r["streamId"] == sid]

    eventually(closed)

    def audited() -> None:
        on_stream = audit(team, stream=sid)
        _contains(
            on_stream,
            ("StreamReported", "", ids["ann"]),
            ("StreamReported", "", ids["bob"]),
            ("ReportsResolved", "", ids["team"]),
            ("StreamSuspended", "", ids["team"]),
        )
        _contains(audit(team, user=ids["owner"]), ("AccountSuspended", ids["owner"], ids["team"]))

    eventually(audited)


def test_allowed_users_are_shown_to_the_owner_only(user: Callable[..., Api]) -> None:
    ids = {r: uid(r) for r in ("owner", "friend", "other")}
    owner, friend = user(ids["owner"]), user(ids["friend"])
    sid = go_live(owner, privacy="private", allowedUserIds=[ids["friend"], ids["friend"]])
    wait_for_document(owner, sid)
    assert owner.get(f"/v1/streams/{sid}").json()["allowedUserIds"] == [ids["friend"]]
    assert "allowedUserIds" not in friend.get(f"/v1/streams/{sid}").json()
    changed = owner.patch(f"/v1/streams/{sid}", json={"allowedUserIds": [ids["friend"], ids["other"]]})
    assert changed.json()["changes"] == {"allowedUserIds": [ids["friend"], ids["other"]]}
    eventually(
        lambda: _equal(
            owner.get(f"/v1/streams/{sid}").json()["allowedUserIds"], [ids["friend"], ids["other"]]
        )
    )
    too_many = {"allowedUserIds": [f"u{i}" for i in range(201)]}
    problem(owner.patch(f"/v1/streams/{sid}", json=too_many), 422, "validation-error")
    problem(owner.patch(f"/v1/streams/{sid}", json={"allowedUserIds": [""]}), 422, "validation-error")


def _contains(rows: list[Any], *expected: Any) -> None:
    missing = [e for e in expected if e not in rows]
    assert not missing, (missing, rows)


def _equal(actual: Any, expected: Any) -> None:
    assert actual == expected, actual

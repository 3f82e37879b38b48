"""Analytics, platform metrics and audits over HTTP against the real stack (chDB in the API process)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import Api, eventually, problem, uid
from sqlalchemy import Engine, text
from test_live_feed import wait_for_document
from test_money import buy

from spaktok.infra.devstack import DevStack


def test_a_broadcaster_reads_the_analytics_of_their_stream(
    stack: DevStack, user: Callable[..., Api], pg: Engine, tmp_path: Path
) -> None:
    ids = {name: uid(name) for name in ("host", "ann", "bob", "cat", "dan", "troll", "fan1", "fan2")}
    year = datetime.now(UTC).year
    host = user(ids["host"], name="Host")
    ann = user(ids["ann"], country="fr", birth_year=year - 31)  # youngest possible age 30
    bob = user(ids["bob"], name="Bob", country="US")
    cat = user(ids["cat"], birth_year=year - 20)  # 19
    dan = user(ids["dan"], country="France")  # not a country code: counted as unknown
    admin = user(uid("admin"), roles=["admin"])
    sid = host.post("/v1/streams", json={"title": "Numbers", "category": "chat"}).json()["streamId"]
    wait_for_document(host, sid)
    buy(admin, ids["bob"], 500)
    for viewer in (ann, bob, cat, dan):
        assert viewer.post(f"/v1/streams/{sid}/viewers").status_code == 200
    assert ann.post(f"/v1/streams/{sid}/likes", json={"count": 5}).status_code == 200
    assert bob.post(f"/v1/streams/{sid}/likes", json={"count": 3}).status_code == 200
    assert ann.post(f"/v1/streams/{sid}/comments", json={"text": "hello"}).status_code == 201
    assert cat.post(f"/v1/streams/{sid}/comments", json={"text": "hi"}).status_code == 201
    gift = bob.post(f"/v1/streams/{sid}/gifts", json={"giftId": "doughnut", "count": 2})
    assert gift.status_code == 200, gift.text
    coins = gift.json()["coinCost"]
    assert (
        host.post(f"/v1/streams/{sid}/bans", json={"userId": ids["troll"], "reason": "spam"}).status_code
        == 200
    )
    for fan in ("fan1", "fan2"):
        assert user(ids[fan]).post(f"/v1/users/{ids['host']}/follow").status_code == 200
    left = dan.delete(f"/v1/streams/{sid}/viewers/me").json()
    ended = host.post(f"/v1/streams/{sid}/end")
    assert ended.status_code == 200, ended.text

    def complete() -> dict[str, Any]:
        response = host.get(f"/v1/streams/{sid}/analytics")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "ended" and body["followerGrowth"]["net"] == 2
        return dict(body)

    body = eventually(complete, timeout=30)
    assert body["totals"] == {
        "visits": 4,
        "uniqueViewers": 4,
        "totalViews": 4,
        "peakViewers": 4,
        "likes": 8,
        "comments": 2,
        "giftSends": 1,
        "gifts": 2,
        "revenue": coins,
    }
    assert body["engagement"] == {"engagedViewers": 3, "rate": 0.75}  # dan only watched
    broadcaster = coins * 50 // 100
    assert body["revenue"]["coins"] == coins
    assert (body["revenue"]["broadcasterCoins"], body["revenue"]["platformCoins"]) == (
        broadcaster,
        coins - broadcaster,
    )
    assert body["topGifters"] == [{"userId": ids["bob"], "username": "Bob", "coins": coins, "gifts": 2}]
    assert body["demographics"] == {
        "countries": {"unknown": 2, "FR": 1, "US": 1},
        "ageBuckets": {"unknown": 2, "18-24": 1, "25-34": 1},
    }
    assert body["followerGrowth"] == {"gained": 2, "lost": 0, "net": 2}

    # watch time: the same seconds as the Postgres read model (once its projector has the end too:
    # the two projectors run independently) and the leave answer
    def watched_in_postgres() -> dict[str, int]:
        with pg.connect() as conn:
            watched = dict(
                conn.execute(
                    text("SELECT user_id, watch_time FROM stream_viewers WHERE stream_id = :s"), {"s": sid}
                ).all()
            )
        assert {v["userId"]: v["watchTimeSeconds"] for v in body["topViewers"]} == watched
        return watched

    watched = eventually(watched_in_postgres)
    assert watched[ids["dan"]] == left["watchTime"]
    assert body["averageWatchTimeSeconds"] == round(sum(watched.values()) / 4, 2)
    timeline = body["viewerTimeline"]
    assert sum(m["joins"] for m in timeline) == 4 and sum(m["leaves"] for m in timeline) == 4
    assert max(m["peakViewers"] for m in timeline) == 4
    assert sum(m["likes"] for m in timeline) == 8 and sum(m["revenue"] for m in timeline) == coins

    # who may read it
    problem(bob.get(f"/v1/streams/{sid}/analytics"), 403, "forbidden")
    assert admin.get(f"/v1/streams/{sid}/analytics").status_code == 200
    problem(host.get("/v1/streams/no-such-stream/analytics"), 404, "stream-not-found")

    # audits, from the log
    gifts = admin.get("/v1/audit/gifts", params={"stream": sid}).json()
    assert [(g["senderId"], g["coinCost"], g["status"]) for g in gifts["items"]] == [
        (ids["bob"], coins, "received")
    ]
    assert gifts["nextCursor"] is None
    by_user = (
        user(uid("cashier"), roles=["payments"]).get("/v1/audit/gifts", params={"user": ids["bob"]}).json()
    )
    assert [g["streamId"] for g in by_user["items"]] == [sid]
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert admin.get("/v1/audit/gifts", params={"stream": sid, "since": later}).json()["items"] == []
    moderator = user(uid("mod"), roles=["moderation"])
    moderation = moderator.get("/v1/audit/moderation", params={"stream": sid}).json()["items"]
    assert [(m["action"], m["userId"], m["actorId"], m["reason"]) for m in moderation] == [
        ("UserBanned", ids["troll"], ids["host"], "spam")
    ]
    problem(host.get("/v1/audit/gifts"), 403, "forbidden")
    problem(moderator.get("/v1/audit/gifts"), 403, "forbidden")
    problem(admin.get("/v1/audit/gifts", params={"cursor": "nonsense"}), 400, "invalid-cursor")

    # the export CLI through the API (the API process holds the chDB directory)
    from typer.testing import CliRunner

    from spaktok.cli import app

    out = tmp_path / "gifts.csv"
    args = ["audit", "export", "--kind", "gifts", "--format", "csv", "--out", str(out), "--stream", sid]
    result = CliRunner().invoke(
        app, [*args, "--api", stack.api_url, "--token", admin.headers["Authorization"][7:]]
    )
    assert result.exit_code == 0, result.output
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["senderId"], int(r["coinCost"]), r["giftId"]) for r in rows] == [
        (ids["bob"], coins, "doughnut")
    ]

    # the report CLI through the API, with the broadcaster's token
    reports = tmp_path / "reports"
    args = ["report", sid, "--out", str(reports), "--api", stack.api_url]
    result = CliRunner().invoke(app, [*args, "--token", host.headers["Authorization"][7:]])
    assert result.exit_code == 0, result.output
    page = (reports / f"stream-{sid}-report.html").read_text(encoding="utf-8")
    assert (reports / f"stream-{sid}-report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"<td>1</td><td>Bob</td><td>{ids['bob']}</td><td>{coins:,}</td><td>2</td>" in page
    assert "<tr><th>Unique viewers</th><td>4</td></tr>" in page
    result = CliRunner().invoke(app, [*args, "--token", bob.headers["Authorization"][7:]])
    assert result.exit_code == 1 and "403" in result.output  # not Bob's stream
    missing = ["report", "no-such-stream", "--out", str(reports), "--api", stack.api_url]
    result = CliRunner().invoke(app, [*missing, "--token", host.headers["Authorization"][7:]])
    assert result.exit_code == 1 and "no stream 'no-such-stream'" in " ".join(result.output.split())


def test_platform_metrics_for_admins_and_prometheus(user: Callable[..., Api]) -> None:
    host, admin = user(uid("host")), user(uid("admin"), roles=["admin"])
    sid = host.post("/v1/streams", json={"title": "Counted", "category": "chat"}).json()["streamId"]
    wait_for_document(host, sid)
    problem(host.get("/v1/admin/metrics"), 403, "forbidden")

    def counted() -> dict[str, Any]:
        response = admin.get("/v1/admin/metrics", params={"hours": 1})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["concurrentStreams"] >= 1 and body["window"]["streamsStarted"] >= 1
        return dict(body)

    body = eventually(counted)
    assert body["errors"]["responsesByClass"]["4xx"] >= 1  # the 403 above
    assert 0 < body["errors"]["clientErrorRate"] < 1
    assert body["errors"]["deadLetteredRecords"] is not None
    metrics = admin.get("/metrics").text
    for name in (
        'spaktok_http_responses_total{code="403",class="4xx"}',
        "spaktok_live_streams ",
        "spaktok_live_viewers ",
        "spaktok_deadletter_records ",
        'spaktok_watch_time_average_seconds{window="24h"}',
        'spaktok_gift_revenue_per_stream_coins{window="24h"}',
    ):
        assert name in metrics, name
    assert host.post(f"/v1/streams/{sid}/end").status_code == 200

"""Limits and command hardening against the real stack (docs/security.md "Limits", "Tokens, command
status, metrics, idempotency"): a like flood answered 429 with Retry-After, Idempotency-Key on a
route that used to ignore it, a key reused with another body, command status by actor, /metrics."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from harness import Api, eventually, problem, uid

from spaktok.events.envelope import derive_id


def live_stream(owner: Api) -> str:
    response = owner.post("/v1/streams", json={"title": "Limits", "category": "chat"})
    assert response.status_code == 201, response.text
    return str(response.json()["streamId"])


def test_a_like_flood_is_answered_429_with_retry_after(user: Callable[..., Api]) -> None:
    owner, flooder, fan = user(uid("owner")), user(uid("flooder")), user(uid("fan"))
    sid = live_stream(owner)
    # default: 1,000 taps per 10 s per user per stream; the first batch takes it all
    first = flooder.post(f"/v1/streams/{sid}/likes", json={"count": 1000})
    assert first.status_code == 200 and first.json()["accepted"] == 1000, first.text
    refused = [flooder.post(f"/v1/streams/{sid}/likes", json={"count": 1000}) for _ in range(5)]
    for response in refused:
        problem(response, 429, "rate-limited")
        assert re.fullmatch(r"[1-9][0-9]*", response.headers["Retry-After"]), response.headers
    other = fan.post(f"/v1/streams/{sid}/likes", json={"count": 10})
    assert other.status_code == 200 and other.json()["accepted"] == 10, other.text

    def counted() -> None:  # the refused batches never reached the log
        assert owner.get(f"/v1/streams/{sid}").json()["likes"] == 1010

    eventually(counted)


def _moderation_log(owner: Api, sid: str, n: int) -> list[dict[str, Any]]:
    entries = owner.get(f"/v1/streams/{sid}/moderation-log").json()["entries"]
    assert len(entries) == n, entries
    return list(entries)


def test_the_same_key_twice_has_one_effect_and_the_same_answer(user: Callable[..., Api]) -> None:
    owner, troll_id = user(uid("owner")), uid("troll")
    sid = live_stream(owner)
    user(troll_id).post(f"/v1/streams/{sid}/viewers")
    body = {"userId": troll_id, "durationSeconds": 600, "reason": "spam"}
    key = {"Idempotency-Key": uid("timeout")}
    first = owner.post(f"/v1/streams/{sid}/timeouts", json=body, headers=key)
    again = owner.post(f"/v1/streams/{sid}/timeouts", json=body, headers=key)
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.json() == first.json()
    eventually(lambda: _moderation_log(owner, sid, 1))
    # a new key is a new intent: a second timeout (it replaces the first)
    renewed = owner.post(f"/v1/streams/{sid}/timeouts", json=body, headers={"Idempotency-Key": uid("t")})
    assert renewed.status_code == 200, renewed.text
    eventually(lambda: _moderation_log(owner, sid, 2))


def test_the_same_key_with_another_body_is_refused_and_the_first_effect_stands(
    user: Callable[..., Api],
) -> None:
    owner, fan = user(uid("owner")), user(uid("fan"))
    sid = live_stream(owner)
    key = {"Idempotency-Key": uid("comment")}
    first = fan.post(f"/v1/streams/{sid}/comments", json={"text": "first words"}, headers=key)
    assert first.status_code == 201, first.text
    problem(
        fan.post(f"/v1/streams/{sid}/comments", json={"text": "other words"}, headers=key),
        422,
        "idempotency-key-reused",
    )
    liked = fan.post(f"/v1/streams/{sid}/likes", json={"count": 1}, headers=key)
    problem(liked, 422, "idempotency-key-reused")
    same = fan.post(f"/v1/streams/{sid}/comments", json={"text": "first words"}, headers=key)
    assert same.status_code == 201 and same.json()["commentId"] == first.json()["commentId"], same.text

    def texts() -> list[str]:
        comments = owner.get(f"/v1/streams/{sid}/comments").json()["comments"]
        found = [c["text"] for c in comments if c.get("type", "text") == "text"]
        assert found == ["first words"], comments
        return found

    eventually(texts)
    # the key is the user's: another user may use the same string for their own request
    other = user(uid("other")).post(f"/v1/streams/{sid}/comments", json={"text": "mine"}, headers=key)
    assert other.status_code == 201, other.text


def test_one_key_sent_with_two_bodies_at_once_binds_one_of_them(user: Callable[..., Api]) -> None:
    owner, fan = user(uid("owner")), user(uid("fan"))
    sid = live_stream(owner)
    key = {"Idempotency-Key": uid("race")}
    with ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(
                lambda text: fan.post(f"/v1/streams/{sid}/comments", json={"text": text}, headers=key),
                ["left", "right"],
            )
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 422], [a.text for a in answers]
    winner = next(a for a in answers if a.status_code == 201).json()["text"]
    eventually(lambda: _only_text(owner, sid, winner))


def _only_text(owner: Api, sid: str, text: str) -> None:
    answer = owner.get(f"/v1/streams/{sid}/comments")
    assert answer.status_code == 200, answer.text  # 404 until the stream is in the read model
    comments = answer.json()["comments"]
    assert [c["text"] for c in comments] == [text], comments


def test_command_status_is_for_its_actor_or_an_admin(user: Callable[..., Api]) -> None:
    owner_id = uid("owner")
    owner, stranger, admin = user(owner_id), user(uid("stranger")), user(uid("admin"), roles=["admin"])
    sid = live_stream(owner)
    key = uid("end")
    assert owner.post(f"/v1/streams/{sid}/end", headers={"Idempotency-Key": key}).status_code == 200
    command_id = derive_id("idem", owner_id, f"end:{sid}", key)
    mine = owner.get(f"/v1/commands/{command_id}")
    assert mine.status_code == 200 and mine.json()["status"] == "accepted", mine.text
    assert admin.get(f"/v1/commands/{command_id}").json()["status"] == "accepted"
    problem(stranger.get(f"/v1/commands/{command_id}"), 404, "command-not-found")
    base = str(owner.client.base_url).rstrip("/")
    assert httpx.get(f"{base}/v1/commands/{command_id}").status_code == 401


def test_metrics_are_for_admins(user: Callable[..., Api]) -> None:
    admin = user(uid("admin"), roles=["admin"])
    base = str(admin.client.base_url).rstrip("/")
    assert httpx.get(f"{base}/metrics").status_code == 401
    problem(user(uid("someone")).get("/metrics"), 403, "forbidden")
    scraped = admin.get("/metrics")
    assert scraped.status_code == 200 and "spaktok_outcomes_received_total" in scraped.text

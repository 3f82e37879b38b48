"""Bad HTTP input gets a 4xx problem+json, never a 500; bad Kafka records go to the dead-letter topic."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable

import httpx
from confluent_kafka import Consumer, Producer
from harness import Api

from spaktok.infra import topics
from spaktok.infra.devstack import DevStack
from spaktok.infra.kafka import producer_config
from spaktok.settings import Settings


def test_http_bad_input_is_a_problem(stack: DevStack, user: Callable[..., Api]) -> None:
    api = user(f"bad-{uuid.uuid4().hex[:6]}")
    anonymous = httpx.Client(base_url=stack.api_url)
    cases = [
        (anonymous.post("/v1/streams", json={"title": "x", "category": "y"}), 401, "unauthorized"),
        (
            anonymous.post("/v1/streams", json={}, headers={"Authorization": "Bearer not-a-jwt"}),
            401,
            "invalid-token",
        ),
        (
            api.post("/v1/streams", content=b"{not json", headers={"content-type": "application/json"}),
            400,
            "malformed-json",
        ),
        (api.post("/v1/streams", json={"title": "", "category": "c"}), 422, "validation-error"),
        (
            api.post("/v1/streams", json={"title": "t", "category": "c", "privacy": "secret"}),
            422,
            "validation-error",
        ),
        (api.post("/v1/streams", json={"title": "t", "category": "c", "bogus": 1}), 422, "validation-error"),
        (api.post("/v1/streams/x/likes", json={"count": 0}), 422, "validation-error"),
        (api.post("/v1/streams/x/likes", json={"count": 1001}), 422, "validation-error"),
        (api.post("/v1/streams/x/comments", json={"text": "   "}), 422, "invalid-comment"),
        (api.post("/v1/streams/x/comments", json={"text": "y" * 501}), 422, "invalid-comment"),
        (api.post("/v1/streams/bad%20id!/viewers"), 422, "validation-error"),
        (api.get("/v1/streams", params={"cursor": "%%%"}), 400, "invalid-cursor"),
        (api.get("/v1/streams", params={"limit": 1000}), 422, "validation-error"),
        (api.get("/v1/streams/st_nope"), 404, "stream-not-found"),
        (api.get("/v1/nowhere"), 404, "not-found"),
    ]
    for response, status, slug in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["type"].endswith(f"/{slug}") and body["status"] == status and body["detail"]


def test_undecodable_records_are_dead_lettered_and_processing_continues(
    stack: DevStack, user: Callable[..., Api]
) -> None:
    settings = Settings(broker=stack.broker)
    marker = uuid.uuid4().hex
    consumer = Consumer(
        {"bootstrap.servers": stack.broker, "group.id": f"dlq-{marker}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topics.DEADLETTER.name])
    producer = Producer(producer_config(settings))
    poison = {
        topics.COMMANDS_STREAMS.name: [f"garbage-{marker}".encode(), b'{"type": "streams.JoinStream"}'],
        topics.EVENTS_STREAMS.name: [f"not-an-event-{marker}".encode()],
    }
    for topic, values in poison.items():
        for value in values:
            producer.produce(topic, key=f"st_{marker}".encode(), value=value)
    producer.flush(10)

    seen: dict[bytes, dict[str, bytes]] = {}
    unexpected: list[dict[str, bytes]] = []
    deadline = time.monotonic() + 30
    wanted = {v for values in poison.values() for v in values}
    while time.monotonic() < deadline and not wanted <= set(seen):
        msg = consumer.poll(0.5)
        if msg is None or msg.error() is not None:
            continue
        headers = {k: v for k, v in (msg.headers() or [])}
        if msg.value() in wanted:
            seen[msg.value()] = headers
        elif msg.key() == f"st_{marker}".encode():  # other tests' poison shares the topic
            unexpected.append(headers)
    consumer.close()
    assert wanted <= set(seen), f"dead-lettered: {list(seen)}"
    assert unexpected == [], "only the poison may be dead-lettered, never a good record"
    stages = sorted(h["dlq-stage"].decode() for h in seen.values())
    # the worker parks the two commands (garbage: decode; a known command missing its fields:
    # validate); both projectors park the bad event
    assert stages.count("decode") == 1 and stages.count("validate") == 1
    assert any(s.startswith("project:") for s in stages)
    for headers in seen.values():
        assert headers["dlq-error"] and headers["dlq-source-topic"].startswith(b"spaktok.")

    api = user(f"after-dlq-{marker[:6]}")
    response = api.post("/v1/streams", json={"title": "still alive", "category": "chat"})
    assert response.status_code == 201, response.text


def _assert_problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith(f"/{slug}") and body["status"] == status and body["detail"]


def _cursor(millis: int, event_id: str = "x") -> str:
    return base64.urlsafe_b64encode(json.dumps([millis, event_id]).encode()).decode()


def test_fuzz_findings_are_problems_not_500s(stack: DevStack, user: Callable[..., Api]) -> None:
    """Each case is one 5xx a fuzzer found (issue 15, bench/fuzz.py), kept so it cannot come back."""
    admin = user(f"bad-admin-{uuid.uuid4().hex[:6]}", roles=["admin"])
    owner = user(f"bad-owner-{uuid.uuid4().hex[:6]}")
    started = owner.post("/v1/streams", json={"title": "tags", "category": "chat"})
    assert started.status_code == 201, started.text
    stream_id = started.json()["streamId"]
    cases: list[tuple[httpx.Response, int, str]] = []
    for kind in ("gifts", "moderation"):
        path = f"/v1/audit/{kind}"
        # ClickHouse's DateTime64 holds 1900..2299; year 1 was rendered "1-01-01" and refused by it
        for bad in ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
            cases.append((admin.get(path, params={"since": bad}), 422, "validation-error"))
            cases.append((admin.get(path, params={"until": bad}), 422, "validation-error"))
        cases.append((admin.get(path, params={"since": "1899-12-31T23:59:59Z"}), 422, "validation-error"))
        cases.append((admin.get(path, params={"cursor": _cursor(-62135596800000)}), 400, "invalid-cursor"))
        cases.append((admin.get(path, params={"cursor": _cursor(10**17)}), 400, "invalid-cursor"))
    # the command model refused empty tags the request body let through
    for target in (stream_id, "st_nope", "a" * 64):
        cases.append(
            (owner.patch(f"/v1/streams/{target}", json={"tags": [""] * 19}), 422, "validation-error")
        )
    cases.append(
        (owner.patch(f"/v1/streams/{stream_id}", json={"tags": ["x" * 41]}), 422, "validation-error")
    )
    cases.append(
        (
            owner.post("/v1/streams", json={"title": "t", "category": "c", "tags": [""]}),
            422,
            "validation-error",
        )
    )
    for response, status, slug in cases:
        _assert_problem(response, status, slug)
    # and the good requests next to them still work
    assert admin.get("/v1/audit/gifts", params={"since": "1900-01-01T00:00:00Z"}).status_code == 200
    assert admin.get("/v1/audit/moderation", params={"until": "2299-12-31T00:00:00Z"}).status_code == 200
    assert owner.patch(f"/v1/streams/{stream_id}", json={"tags": ["ok"]}).status_code in (200, 202)

"""Webhooks end to end (docs/webhooks.md): a real HTTP receiver on this machine, the real pipeline.

Deliveries arrive signed (the receiver verifies, and refuses a wrong secret), a receiver failing three
times then succeeding gets the event once accepted under one event id with three failed attempts
logged, an always-failing receiver gets its subscription disabled, and a worker killed mid-delivery
loses nothing. A stack of its own: backoff is short here, and the last test kills its worker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from harness import Api, eventually, uid
from harness import start_stack as start_test_stack

from spaktok.api.auth import mint_token
from spaktok.infra.devstack import DevStack
from spaktok.processors import webhook_signing as signing
from spaktok.settings import Settings

pytestmark = pytest.mark.integration

HOOKS_ENV = {
    "SPAKTOK_WEBHOOK_BACKOFF_S": "0.5",
    "SPAKTOK_WEBHOOK_BACKOFF_MAX_S": "2",
    "SPAKTOK_WEBHOOK_DISABLE_AFTER": "5",
    "SPAKTOK_WEBHOOK_TIMEOUT_S": "5",
    "SPAKTOK_WEBHOOK_POLL_S": "0.2",
}
TYPES = ["streams.StreamStarted", "streams.StreamUpdated", "streams.StreamEnded"]


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    verified: bool

    @property
    def event(self) -> dict[str, Any]:
        return dict(orjson.loads(self.body))


class Receiver:
    """A local HTTP server: per path, a plan of answers (then 200s) and the secret to verify with.
    A bad signature is answered 400, as a real receiver would."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.plans: dict[str, list[tuple[float, int]]] = {}
        self.got: dict[str, list[Received]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.handle(self, body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"

    def handle(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        name = request.path.strip("/")
        headers = dict(request.headers.items())
        try:
            signing.verify(self.secrets[name], headers, body, time.time())
            verified = True
        except (signing.InvalidSignature, KeyError):
            verified = False
        with self.lock:
            plan = self.plans.get(name, [])
            delay, status = plan.pop(0) if plan else (0.0, 200)
        time.sleep(delay)
        status = status if verified else 400
        with self.lock:
            self.got.setdefault(name, []).append(Received(headers, body, status, verified))
        request.send_response(status)
        request.send_header("Content-Length", "0")
        request.end_headers()

    def received(self, name: str) -> list[Received]:
        with self.lock:
            return list(self.got.get(name, []))

    def accepted_ids(self, name: str) -> list[str]:
        return [r.event["id"] for r in self.received(name) if 200 <= r.status < 300]


@pytest.fixture(scope="module")
def hooks_stack() -> Iterator[DevStack]:
    stack, cleanup = start_test_stack("hooks", env=HOOKS_ENV)
    try:
        yield stack
    finally:
        cleanup()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def client(stack: DevStack, user_id: str, **claims: Any) -> Api:
    return Api(stack.api_url, mint_token(Settings(), user_id, **claims))


def subscribe(api: Api, receiver: Receiver, name: str, types: list[str] = TYPES) -> dict[str, Any]:
    response = api.post("/v1/webhooks", json={"url": receiver.url(name), "eventTypes": types})
    assert response.status_code == 201, response.text
    hook = dict(response.json())
    receiver.secrets[name] = hook["secret"]
    return hook


def start_stream(api: Api) -> str:
    response = api.post("/v1/streams", json={"title": "Hooked", "category": "chat"})
    assert response.status_code in (200, 201), response.text
    return str(response.json()["streamId"])


def log_of(api: Api, hook_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/v1/webhooks/{hook_id}/deliveries", params={"limit": 500})
    assert response.status_code == 200, response.text
    return list(response.json()["deliveries"])


def test_deliveries_are_signed_and_only_for_the_owners_streams(
    hooks_stack: DevStack, receiver: Receiver
) -> None:
    alice, bob = client(hooks_stack, uid("alice")), client(hooks_stack, uid("bob"))
    hook = subscribe(alice, receiver, "signed")
    assert "secret" not in alice.get(f"/v1/webhooks/{hook['id']}").json(), "the secret is shown once"
    sid = start_stream(alice)
    start_stream(bob)  # someone else's stream: not alice's to hear of

    (got,) = eventually(lambda: _exactly(receiver.received("signed"), 1), timeout=60)
    assert got.verified and got.status == 200
    event = got.event
    assert event["type"] == "streams.StreamStarted" and event["streamId"] == sid
    assert event["data"]["stream_id"] == sid and event["time"].endswith("Z")
    assert got.headers[signing.ID_HEADER] == event["id"]
    # the check can fail: the same request does not verify under another secret, nor once stale
    with pytest.raises(signing.InvalidSignature):
        signing.verify("whsec_not-the-secret", got.headers, got.body, time.time())
    with pytest.raises(signing.InvalidSignature):
        signing.verify(hook["secret"], got.headers, got.body, time.time() + signing.REPLAY_WINDOW_S + 5)

    def recorded() -> dict[str, Any]:
        (row,) = _exactly(log_of(alice, hook["id"]), 1)
        assert row["outcome"] != "sending", row  # the answer is in; its record may lag a moment
        return row

    row = eventually(recorded)
    assert row["outcome"] == "delivered" and row["statusCode"] == 200 and row["attempt"] == 1
    assert row["eventId"] == event["id"] and row["durationMs"] is not None
    assert alice.get(f"/v1/webhooks/{hook['id']}").json()["deliveries"] == {"pending": 0, "delivered": 1}


def test_a_receiver_failing_three_times_gets_the_event_once_with_one_id(
    hooks_stack: DevStack, receiver: Receiver
) -> None:
    alice = client(hooks_stack, uid("alice"))
    receiver.plans["flaky"] = [(0.0, 500), (0.0, 503), (0.0, 500)]
    hook = subscribe(alice, receiver, "flaky", ["streams.StreamStarted"])
    start_stream(alice)

    eventually(lambda: _exactly(receiver.accepted_ids("flaky"), 1), timeout=60)
    time.sleep(2)  # time for a wrongful extra attempt to show
    got = receiver.received("flaky")
    assert [r.status for r in got] == [500, 503, 500, 200]
    assert len({r.headers[signing.ID_HEADER] for r in got}) == 1, "one event id across attempts"
    assert len({r.body for r in got}) == 1, "every attempt sends the same body"
    assert [r.headers[signing.ATTEMPT_HEADER] for r in got] == ["1", "2", "3", "4"]
    rows = sorted(log_of(alice, hook["id"]), key=lambda r: r["attempt"])
    assert [(r["attempt"], r["outcome"], r["statusCode"]) for r in rows] == [
        (1, "failed", 500),
        (2, "failed", 503),
        (3, "failed", 500),
        (4, "delivered", 200),
    ]
    assert rows[0]["error"] == "HTTP 500"
    status = alice.get(f"/v1/webhooks/{hook['id']}").json()
    assert status["status"] == "active" and status["consecutiveFailures"] == 0


def test_a_receiver_that_always_fails_gets_its_subscription_disabled(
    hooks_stack: DevStack, receiver: Receiver
) -> None:
    alice = client(hooks_stack, uid("alice"))
    receiver.plans["down"] = [(0.0, 500)] * 100
    hook = subscribe(alice, receiver, "down", ["streams.StreamStarted"])
    start_stream(alice)

    def disabled() -> dict[str, Any]:
        status = dict(alice.get(f"/v1/webhooks/{hook['id']}").json())
        assert status["status"] == "disabled", status
        return status

    status = eventually(disabled, timeout=90)
    assert "5 delivery attempts in a row failed" in status["disabledReason"], status
    assert status["lastError"] == "HTTP 500" and status["disabledAt"]
    time.sleep(3)  # a disabled subscription is not tried again
    assert len(receiver.received("down")) == 5
    assert [r["outcome"] for r in log_of(alice, hook["id"])] == ["failed"] * 5


def test_a_worker_killed_mid_delivery_loses_nothing(hooks_stack: DevStack, receiver: Receiver) -> None:
    """The first request hangs at the receiver; the worker is killed while it waits, and more events
    are decided after the restart. Every event is accepted, and the log has each attempt once: the
    interrupted one marked so (the receiver may have had it: at least once, de-duplicated by id)."""
    alice = client(hooks_stack, uid("alice"))
    receiver.plans["killed"] = [(8.0, 200)]
    hook = subscribe(alice, receiver, "killed")
    sid = start_stream(alice)
    eventually(lambda: _started(receiver), timeout=60)
    hooks_stack.kill("worker")
    for n in range(3):  # decided once the worker is back
        response = alice.patch(f"/v1/streams/{sid}", json={"title": f"while down {n}"})
        assert response.status_code in (200, 202), response.text
    hooks_stack.start_worker()

    def all_accepted() -> set[str]:
        accepted = receiver.accepted_ids("killed")
        types = {orjson.loads(r.body)["type"] for r in receiver.received("killed") if r.status == 200}
        assert len(set(accepted)) == 4 and types == {"streams.StreamStarted", "streams.StreamUpdated"}, (
            accepted
        )
        return set(accepted)

    accepted = eventually(all_accepted, timeout=120)

    def settled() -> list[dict[str, Any]]:
        rows = log_of(alice, hook["id"])
        assert all(r["outcome"] != "sending" for r in rows), rows
        assert {r["eventId"] for r in rows if r["outcome"] == "delivered"} == accepted, rows
        return rows

    rows = eventually(settled, timeout=60)
    keys = [(r["eventId"], r["attempt"]) for r in rows]
    assert len(keys) == len(set(keys)), "an attempt recorded twice"
    for event_id in accepted:
        attempts = sorted(r["attempt"] for r in rows if r["eventId"] == event_id)
        assert attempts == list(range(1, len(attempts) + 1)), (event_id, attempts)
        assert [r["outcome"] for r in rows if r["eventId"] == event_id].count("delivered") == 1
    started = [r for r in rows if r["eventType"] == "streams.StreamStarted"]
    assert sorted((r["attempt"], r["outcome"]) for r in started) == [(1, "interrupted"), (2, "delivered")]
    assert alice.get(f"/v1/webhooks/{hook['id']}").json()["deliveries"] == {"pending": 0, "delivered": 4}


def _started(receiver: Receiver) -> None:
    """The receiver has begun (not finished) the first request of the kill test."""
    assert receiver.plans["killed"] == [], "the first request has not arrived yet"


def _exactly(items: list[Any], n: int) -> list[Any]:
    assert len(items) == n, items
    return items

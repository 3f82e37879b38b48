"""Idempotency keys (api/idempotency.py): the fingerprint of a request's intent, and the key reaching
every command route's command id without the route declaring it. The Postgres binding is exercised
by tests/integration/test_limits.py."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from spaktok.api.auth import Principal
from spaktok.api.deps import CommandMeta
from spaktok.api.idempotency import check_idempotency_key, fingerprint
from spaktok.api.problems import install_problem_handlers


def test_the_fingerprint_ignores_json_key_order_and_spacing() -> None:
    a = fingerprint("POST", "/v1/streams/s1/gifts", "", b'{"giftId": "rose", "count": 2}')
    b = fingerprint("POST", "/v1/streams/s1/gifts", "", b'{"count":2,"giftId":"rose"}')
    assert a == b


def test_the_fingerprint_tells_apart_body_path_method_and_query() -> None:
    base = fingerprint("POST", "/v1/streams/s1/gifts", "", b'{"count": 2}')
    assert fingerprint("POST", "/v1/streams/s1/gifts", "", b'{"count": 3}') != base
    assert fingerprint("POST", "/v1/streams/s2/gifts", "", b'{"count": 2}') != base
    assert fingerprint("PUT", "/v1/streams/s1/gifts", "", b'{"count": 2}') != base
    assert fingerprint("POST", "/v1/streams/s1/gifts", "a=1", b'{"count": 2}') != base
    assert fingerprint("DELETE", "/x", "a=1&b=2", b"") == fingerprint("DELETE", "/x", "b=2&a=1", b"")
    assert fingerprint("POST", "/x", "", b"not json") != fingerprint("POST", "/x", "", b"not json!")


def _app() -> FastAPI:
    app = FastAPI(dependencies=[Depends(check_idempotency_key)])
    install_problem_handlers(app)
    ann = Principal("ann", "Ann")

    @app.post("/v1/things/{thing}/do")
    async def do(thing: str) -> dict[str, str]:
        # like the routes that never declared the header (PATCH stream, pin, follow, moderation ...)
        return {"commandId": CommandMeta.for_request(ann, f"do:{thing}").command_id}

    return app


def test_every_command_route_takes_the_header_without_declaring_it() -> None:
    client = TestClient(_app())
    key = {"Idempotency-Key": "k-1"}
    first = client.post("/v1/things/t1/do", headers=key).json()["commandId"]
    assert client.post("/v1/things/t1/do", headers=key).json()["commandId"] == first
    assert client.post("/v1/things/t1/do", headers={"Idempotency-Key": "k-2"}).json()["commandId"] != first
    unkeyed = {client.post("/v1/things/t1/do").json()["commandId"] for _ in range(2)}
    assert len(unkeyed) == 2 and first not in unkeyed  # no key: a new intent each time


def test_an_over_long_key_is_refused() -> None:
    response = TestClient(_app()).post("/v1/things/t1/do", headers={"Idempotency-Key": "k" * 201})
    assert response.status_code == 400
    assert response.json()["type"].endswith("/invalid-idempotency-key")

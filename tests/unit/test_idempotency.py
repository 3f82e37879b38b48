"""Idempotency keys (api/idempotency.py): the fingerprint of a request's intent, and the key reaching
every command route's command id without the route declaring it. The Postgres binding is exercised
by tests/integration/test_limits.py."""

from __future__ import annotations

import asyncio
import threading

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from spaktok.api import idempotency
from spaktok.api.auth import Principal
from spaktok.api.deps import CommandMeta
from spaktok.api.idempotency import Binding, KeyBinder, Request_, check_idempotency_key, fingerprint
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


def test_keys_arriving_together_are_bound_in_one_statement_and_a_quiet_key_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Group commit: the first key goes at once with those of the same turn of the loop; keys that
    arrive while a statement runs go together when it is done."""
    statements: list[list[str]] = []
    release = threading.Event()

    def bind_keys(engine: object, ttl_s: int, wanted: list[Request_]) -> dict[tuple[str, str], Binding]:
        statements.append([key for _, key, *_ in wanted])
        if len(statements) == 1:
            release.wait(5)  # the first statement is slow: the next keys pile up meanwhile
        return {(user, key): (print_, method, path) for user, key, print_, method, path in wanted}

    monkeypatch.setattr(idempotency, "bind_keys", bind_keys)

    async def scenario() -> None:
        binder = KeyBinder(engine=None, ttl_s=60)  # type: ignore[arg-type]

        def bind(key: str) -> asyncio.Task[Binding]:
            return asyncio.ensure_future(binder.bind("ann", key, f"fp-{key}", "POST", "/x"))

        first = [bind("k1"), bind("k2")]
        while not statements:
            await asyncio.sleep(0.001)
        later = [bind(f"k{n}") for n in range(3, 7)]
        await asyncio.sleep(0.05)
        assert statements == [["k1", "k2"]]  # the others wait for the running statement
        release.set()
        bound = await asyncio.gather(*first, *later)
        assert [b[0] for b in bound] == [f"fp-k{n}" for n in range(1, 7)]
        assert statements == [["k1", "k2"], ["k3", "k4", "k5", "k6"]]
        assert await binder.bind("ann", "k7", "fp-k7", "POST", "/x") == ("fp-k7", "POST", "/x")
        assert statements[-1] == ["k7"]  # quiet again: at once, alone

    asyncio.run(scenario())

"""Rate limits (api/ratelimit.py): over the limit -> 429 `rate-limited` with Retry-After, per user,
per address when anonymous, stricter named classes, like taps clipped, and every mutating route of
the real app covered."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from spaktok.api.app import create_app
from spaktok.api.auth import mint_token
from spaktok.api.problems import install_problem_handlers
from spaktok.api.ratelimit import MUTATING, RateLimits, clip_like_taps, limit_mutations
from spaktok.settings import Settings


def tiny_app(**limits: Any) -> FastAPI:
    """A few routes shaped like the real ones, behind the app-wide limiter."""
    settings = Settings(**limits)
    app = FastAPI(dependencies=[Depends(limit_mutations)])
    install_problem_handlers(app)
    app.state.rate_limits = RateLimits(settings)

    @app.post("/v1/streams/{stream_id}/comments")
    async def comment(stream_id: str) -> dict[str, str]:
        return {"ok": stream_id}

    @app.get("/v1/streams/{stream_id}/comments")
    async def comments(stream_id: str) -> dict[str, str]:
        return {"ok": stream_id}

    @app.post("/v1/streams/{stream_id}/reports")
    async def report(stream_id: str) -> dict[str, str]:
        return {"ok": stream_id}

    @app.post("/v1/hooks/rtmp/publish")
    async def publish() -> dict[str, str]:
        return {"ok": "publish"}

    @app.post("/v1/streams/{stream_id}/likes")
    async def like(stream_id: str, request: Request, count: int, user: str) -> dict[str, int]:
        return {"accepted": await clip_like_taps(request, user, stream_id, count)}

    return app


def bearer(user: str, settings: Settings | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings or Settings(), user)}"}


def assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/rate-limited")
    retry = response.headers["Retry-After"]
    assert re.fullmatch(r"[1-9][0-9]*", retry), retry  # whole seconds, at least 1


@pytest.fixture
def client() -> Iterator[TestClient]:
    yield TestClient(tiny_app(rate_limit_default="3/minute", rate_limit_reports="1/minute"))


def test_over_the_limit_is_429_with_retry_after(client: TestClient) -> None:
    ann = bearer("ann")
    for _ in range(3):
        assert client.post("/v1/streams/s1/comments", headers=ann).status_code == 200
    assert_limited(client.post("/v1/streams/s1/comments", headers=ann))
    assert_limited(client.post("/v1/streams/s2/comments", headers=ann))  # per user, not per stream


def test_reads_are_not_limited(client: TestClient) -> None:
    ann = bearer("ann")
    for _ in range(10):
        assert client.get("/v1/streams/s1/comments", headers=ann).status_code == 200


def test_users_are_counted_apart(client: TestClient) -> None:
    for _ in range(3):
        client.post("/v1/streams/s1/comments", headers=bearer("ann"))
    assert_limited(client.post("/v1/streams/s1/comments", headers=bearer("ann")))
    assert client.post("/v1/streams/s1/comments", headers=bearer("bob")).status_code == 200


def test_anonymous_callers_are_counted_by_address() -> None:
    app = tiny_app(rate_limit_anonymous="2/minute")
    here, there = TestClient(app, client=("10.0.0.1", 5000)), TestClient(app, client=("10.0.0.2", 5000))
    for _ in range(2):
        assert here.post("/v1/streams/s1/comments").status_code == 200
    assert_limited(here.post("/v1/streams/s1/comments"))
    assert there.post("/v1/streams/s1/comments").status_code == 200


def test_a_forged_token_spends_its_address_not_the_named_user() -> None:
    app = tiny_app(rate_limit_default="2/minute", rate_limit_anonymous="2/minute")
    attacker = TestClient(app, client=("10.0.0.9", 5000))
    token = jwt.encode({"sub": "ann", "exp": 2**40}, "not-the-secret-of-this-api-0123456789", "HS256")
    forged = {"Authorization": f"Bearer {token}"}
    for _ in range(2):
        attacker.post("/v1/streams/s1/comments", headers=forged)
    assert_limited(attacker.post("/v1/streams/s1/comments", headers=forged))
    victim = TestClient(app, client=("10.0.0.1", 5000))
    assert victim.post("/v1/streams/s1/comments", headers=bearer("ann")).status_code == 200


def test_a_named_class_is_stricter_than_the_general_rate(client: TestClient) -> None:
    ann = bearer("ann")
    assert client.post("/v1/streams/s1/reports", headers=ann).status_code == 200
    limited = client.post("/v1/streams/s2/reports", headers=ann)
    assert_limited(limited)
    assert limited.json()["limit"] == "reports"
    assert client.post("/v1/streams/s1/comments", headers=ann).status_code == 200  # general rate left


def test_media_hooks_are_counted_per_address_not_against_users() -> None:
    app = tiny_app(rate_limit_default="1/minute", rate_limit_media_hooks="3/minute")
    media = TestClient(app, client=("127.0.0.1", 5000))
    for _ in range(3):
        assert media.post("/v1/hooks/rtmp/publish").status_code == 200
    assert_limited(media.post("/v1/hooks/rtmp/publish"))
    assert media.post("/v1/streams/s1/comments").status_code == 200  # the general rate is untouched


def test_like_taps_beyond_the_allowance_are_dropped_then_refused() -> None:
    client = TestClient(tiny_app(rate_limit_like_taps="100/10 seconds"))

    def like(count: int, stream: str = "s1", user: str = "ann") -> httpx.Response:
        return client.post(f"/v1/streams/{stream}/likes", params={"count": count, "user": user})

    assert like(60).json() == {"accepted": 60}
    assert like(60).json() == {"accepted": 40}  # clipped to what is left
    assert_limited(like(1))
    assert like(50, stream="s2").json() == {"accepted": 50}  # per stream
    assert like(50, user="bob").json() == {"accepted": 50}  # per user


def test_limits_can_be_switched_off() -> None:
    client = TestClient(tiny_app(rate_limits_enabled=False, rate_limit_default="1/minute"))
    for _ in range(5):
        assert client.post("/v1/streams/s1/comments", headers=bearer("ann")).status_code == 200


def test_a_bad_rate_string_is_refused_at_start() -> None:
    with pytest.raises(ValueError):
        Settings(rate_limit_follows="thirty a minute")


def _served(app: FastAPI) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []

    def walk(routes: Any, prefix: str = "") -> None:
        for route in routes:
            if hasattr(route, "original_router"):
                walk(route.original_router.routes, prefix + getattr(route, "prefix", ""))
            else:
                for method in getattr(route, "methods", None) or ():
                    found.append((method, prefix + route.path))

    walk(app.routes)
    return found


def test_every_mutating_route_of_the_app_is_limited() -> None:
    """No route can opt out: with a zero allowance, every POST/PUT/PATCH/DELETE the app serves is
    refused with 429 before anything else runs (no services are even started here)."""
    zero = "0/minute"
    app = create_app(
        Settings(rate_limit_default=zero, rate_limit_anonymous=zero, rate_limit_media_hooks=zero)
    )
    client = TestClient(app, raise_server_exceptions=False)
    mutating = [(m, p) for m, p in _served(app) if m in MUTATING]
    assert len(mutating) > 30, mutating
    for method, template in mutating:
        path = re.sub(r"\{[^}]+\}", "x1", template)
        for headers in (bearer("ann"), {}):  # a user, and an anonymous caller
            response = client.request(method, path, headers=headers)
            assert response.status_code == 429, (method, template, response.status_code, response.text)


def test_the_in_memory_store_sweeps_inline_and_answers_as_the_library_does(monkeypatch: Any) -> None:
    """`memory://` is limits' store with its sweep once a second on the calling thread (no timer thread
    per burst of hits); expired counters go, and every answer is the library store's answer."""
    import threading
    import time

    import limits
    import limits.storage
    import limits.strategies

    from spaktok.api import ratelimit

    now = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    item = limits.parse("5/second")

    def answers(storage: Any) -> list[bool]:
        now[0] = 1_000_000.0
        seen = []
        for strategy in ("sliding-window-counter", "fixed-window", "moving-window"):
            limiter = limits.strategies.STRATEGIES[strategy](storage)
            for step in range(60):
                now[0] += 0.13
                for user in ("ann", "bob")[: 1 + step % 2]:
                    seen.append(limiter.hit(item, strategy, user))
        return seen

    swept = ratelimit.make_storage("memory://")
    assert isinstance(swept, ratelimit.SweptMemoryStorage)
    threads = threading.active_count()
    ours = answers(swept)
    assert threading.active_count() <= threads  # no timer thread started on the way
    assert ours == answers(limits.storage.MemoryStorage())
    assert False in ours and True in ours
    now[0] += 10
    swept.incr("other", 1)  # a hit more than a second after the last sweep sweeps
    assert set(swept.storage) == {"other"} and not any(swept.events.values())

"""Rate limits on every mutating request (API.md "Limits", DESIGN §3b), with the `limits` library.

One app-wide dependency (`limit_mutations`, installed by `create_app`) runs for every route, so a
route added later is limited without anyone remembering to: a POST, PUT, PATCH or DELETE counts
against the caller's general rate and, for a few routes, a stricter named class. The caller is the
token's `sub` when the token verifies, otherwise the client address (a forged token cannot spend
someone else's allowance). The nginx-rtmp hooks are counted per media-server address instead.

Likes are counted in taps (`count`), per user per stream, by `clip_like_taps`: a batch is cut to
what is left of the allowance, and refused with 429 only when nothing is left.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import limits
import limits.aio.storage
import limits.aio.strategies
import limits.storage
import limits.strategies
from starlette.requests import HTTPConnection

from spaktok.api.auth import InvalidToken, decode_token
from spaktok.api.problems import Problem
from spaktok.settings import Settings

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MEDIA_HOOKS_PREFIX = "/v1/hooks/rtmp/"

# route template -> its stricter class (a request there also counts against the general rate)
NAMED_CLASSES: dict[tuple[str, str], str] = {
    ("POST", "/v1/streams/{stream_id}/reports"): "reports",
    ("POST", "/v1/users/{user_id}/follow"): "follows",
    ("DELETE", "/v1/users/{user_id}/follow"): "follows",
    ("POST", "/v1/wallet/purchases"): "purchases",
    ("POST", "/v1/payouts"): "payouts",
    ("POST", "/v1/payouts/{payout_id}/complete"): "payouts",
    ("POST", "/v1/payouts/{payout_id}/fail"): "payouts",
}

T = TypeVar("T")


async def _value(result: T | Awaitable[T]) -> T:
    """The sync strategies answer at once; the async ones (shared stores such as Redis) are awaited."""
    if isinstance(result, Awaitable):
        return await result
    return result


SWEEP_EVERY_S = 1.0


class SweptMemoryStorage(limits.storage.MemoryStorage):
    """limits' in-memory store, its expired counters swept at most once a second, inline.

    The library sweeps in a `threading.Timer` started 10 ms after a hit whenever the previous one
    has fired: under load a new thread every ~10 ms, each walking every key (py-spy on
    bench/gifts.py: thread start-up alone was a twentieth of the API's event-loop time). The sweep
    only frees memory: a counter is read through `get`, which drops it once expired, and a moving
    window compares its entries' times, so the answers are the same whenever it runs."""

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: str) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._swept_at = time.monotonic()

    def _MemoryStorage__schedule_expiry(self) -> None:  # replaces the library's private timer start
        now = time.monotonic()
        if now - self._swept_at >= SWEEP_EVERY_S:
            self._swept_at = now
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


def make_storage(uri: str) -> limits.storage.Storage | limits.aio.storage.Storage:
    """The counter store a URI names; `memory://` is the swept in-memory store above."""
    if urlsplit(uri).scheme == "memory":
        return SweptMemoryStorage(uri)
    return limits.storage.storage_from_string(uri)


class RateLimits:
    """The configured classes over one counter store (in memory by default, shared by URI)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.enabled = settings.rate_limits_enabled
        self.classes: dict[str, limits.RateLimitItem] = {
            "default": limits.parse(settings.rate_limit_default),
            "anonymous": limits.parse(settings.rate_limit_anonymous),
            "like-taps": limits.parse(settings.rate_limit_like_taps),
            "reports": limits.parse(settings.rate_limit_reports),
            "follows": limits.parse(settings.rate_limit_follows),
            "purchases": limits.parse(settings.rate_limit_purchases),
            "payouts": limits.parse(settings.rate_limit_payouts),
            "media-hooks": limits.parse(settings.rate_limit_media_hooks),
        }
        storage = make_storage(settings.rate_limit_storage_uri)
        # the in-memory store answers synchronously (a few µs, no event-loop hop); a network store is
        # used through the library's asyncio API so that it never blocks the loop
        strategies = (
            limits.aio.strategies.STRATEGIES
            if isinstance(storage, limits.aio.storage.Storage)
            else limits.strategies.STRATEGIES
        )
        self.limiter: Any = strategies[settings.rate_limit_strategy](storage)  # sync or asyncio API

    async def hit(self, rate: str, *key: str, cost: int = 1) -> None:
        """Count `cost` against `rate` for `key`; over the limit -> 429 `rate-limited` with Retry-After."""
        item = self.classes[rate]
        if not await _value(self.limiter.hit(item, rate, *key, cost=cost)):
            raise self.refusal(rate, item, await self.retry_after(rate, *key))

    async def remaining(self, rate: str, *key: str) -> int:
        stats = await _value(self.limiter.get_window_stats(self.classes[rate], rate, *key))
        return max(0, int(stats.remaining))

    async def retry_after(self, rate: str, *key: str) -> int:
        """Whole seconds until the window lets the next request through (at least 1)."""
        stats = await _value(self.limiter.get_window_stats(self.classes[rate], rate, *key))
        return max(1, math.ceil(stats.reset_time - time.time()))

    def refusal(self, rate: str, item: limits.RateLimitItem, retry_after: int) -> Problem:
        return Problem(
            429,
            "rate-limited",
            f"too many requests ({rate}: {item}); try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
            limit=rate,
            retryAfter=retry_after,
        )


def caller_key(request: HTTPConnection, settings: Settings) -> str:
    """`user:<sub>` for a caller whose token verifies, else `addr:<client address>`."""
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            try:
                return "user:" + decode_token(settings, token.strip()).user_id
            except InvalidToken:
                pass  # the route answers 401; meanwhile the address pays
    return "addr:" + address(request)


def address(request: HTTPConnection) -> str:
    """The client's address as the ASGI server saw it (behind a proxy: run uvicorn with
    --proxy-headers and --forwarded-allow-ips so that this is the real client)."""
    return request.client.host if request.client is not None else "unknown"


async def limit_mutations(request: HTTPConnection) -> None:
    """App-wide dependency: every mutating HTTP request pays its general rate and its named class."""
    if request.scope["type"] != "http" or request.scope["method"] not in MUTATING:
        return
    rates: RateLimits | None = getattr(request.app.state, "rate_limits", None)
    if rates is None or not rates.enabled:
        return
    method = request.scope["method"]
    template = getattr(request.scope.get("route"), "path", None)
    if template is None:  # not routed (a 404 or 405 on its way): the path as requested
        template = request.url.path
    if template.startswith(MEDIA_HOOKS_PREFIX):  # the media server, not a user: per address
        await rates.hit("media-hooks", address(request))
        return
    who = caller_key(request, rates.settings)
    # an address may be many users (NAT); its requests without a valid token are bound for a 401
    await rates.hit("anonymous" if who.startswith("addr:") else "default", who)
    named = NAMED_CLASSES.get((method, template))
    if named is not None:
        await rates.hit(named, who)


async def clip_like_taps(request: HTTPConnection, user_id: str, stream_id: str, count: int) -> int:
    """How many of a batch's `count` taps fit the user's like allowance on this stream (they are
    counted); the rest are dropped. Nothing left -> 429 `rate-limited` with Retry-After."""
    rates: RateLimits | None = getattr(request.app.state, "rate_limits", None)
    if rates is None or not rates.enabled:
        return count
    key = (user_id, stream_id)
    allowed = min(count, await rates.remaining("like-taps", *key))
    if allowed <= 0:
        retry = await rates.retry_after("like-taps", *key)
        raise rates.refusal("like-taps", rates.classes["like-taps"], retry)
    await rates.hit("like-taps", *key, cost=allowed)
    return allowed

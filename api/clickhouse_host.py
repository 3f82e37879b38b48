"""Routes that read ClickHouse, answered by the one API process that holds an embedded chDB.

chDB is a library: one process may open its directory (DESIGN §4). With several API processes on the
embedded stack (`spaktok dev --apis N`, issue #20) the first opens it and hosts the ClickHouse
projector; every other one forwards the requests of the routes marked `@on_clickhouse_host` to the
first's private address (`SPAKTOK_CLICKHOUSE_HOST_URL`) and relays the answer as it came: status,
headers, body. The host checks the caller's token and the access policy itself, so forwarding adds
no second policy. With a ClickHouse server every process reads it directly and nothing is forwarded.

Replays of ClickHouse run on the host too: the projector they pause and the job they report live
there, so a status asked of any process is the host's one job.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spaktok.api.openapi import api_routes
from spaktok.api.problems import problem_response

log = logging.getLogger(__name__)

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])

MARK = "on_clickhouse_host"
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"host", b"content-length"}
)
FORWARD_TIMEOUT_S = 60.0  # a replay's start or a big audit page, not a stream of answers


def on_clickhouse_host(endpoint: Endpoint) -> Endpoint:
    """Mark a route (under its `@router.get`) as answered by the process that holds ClickHouse."""
    setattr(endpoint, MARK, True)
    return endpoint


def needs_clickhouse_host(route: BaseRoute) -> bool:
    return bool(getattr(getattr(route, "endpoint", None), MARK, False))


class ForwardToClickHouseHost:
    """ASGI middleware of a process without chDB: marked routes are answered by the host."""

    def __init__(self, app: ASGIApp, host_url: str) -> None:
        self.app = app
        self.host_url = host_url.rstrip("/")
        self._routes: list[tuple[re.Pattern[str], set[str]]] | None = None  # marked: path, methods
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._closing(send))
            return
        if scope["type"] != "http" or not self._marked(scope):
            await self.app(scope, receive, send)
            return
        await self._forward(scope, receive, send)

    def _marked(self, scope: Scope) -> bool:
        if self._routes is None:
            self._routes = [
                (compile_path(path)[0], route.methods or set())
                for path, route in api_routes(scope["app"].routes)
                if needs_clickhouse_host(route)
            ]
        path, method = scope["path"], scope["method"]
        return any(method in methods and regex.match(path) for regex, methods in self._routes)

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP]
        query = scope.get("query_string", b"").decode("latin-1")
        url = self.host_url + scope["path"] + (f"?{query}" if query else "")
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=FORWARD_TIMEOUT_S)
        try:
            answer = await self._client.request(scope["method"], url, headers=headers, content=body)
        except httpx.HTTPError as exc:
            log.warning("ClickHouse host %s did not answer %s: %s", self.host_url, scope["path"], exc)
            await _unavailable(scope, receive, send, self.host_url)
            return
        relayed = [(k, v) for k, v in answer.headers.raw if k.lower() not in HOP_BY_HOP]
        relayed.append((b"content-length", str(len(answer.content)).encode()))
        await send({"type": "http.response.start", "status": answer.status_code, "headers": relayed})
        await send({"type": "http.response.body", "body": answer.content})

    def _closing(self, send: Send) -> Send:
        """Close the forwarding client when the app's lifespan ends."""

        async def wrapped(message: Message) -> None:
            if message["type"].startswith("lifespan.shutdown") and self._client is not None:
                await self._client.aclose()
                self._client = None
            await send(message)

        return wrapped


async def _unavailable(scope: Scope, receive: Receive, send: Send, host_url: str) -> None:
    detail = (
        f"the API process that holds ClickHouse ({host_url}) does not answer; it may be restarting: "
        "try again shortly, or see docs/operations.md"
    )
    await problem_response(503, "analytics-unavailable", detail)(scope, receive, send)

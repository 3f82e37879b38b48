"""FastAPI dependencies as `Annotated` aliases: the services, the current user, command ids."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Header, Path
from sqlalchemy import Engine
from starlette.requests import HTTPConnection

from spaktok import clock
from spaktok.api.auth import USER_ID_PATTERN, InvalidToken, Principal, decode_token
from spaktok.api.batching import EdgeBatcher
from spaktok.api.bus import CommandBus
from spaktok.api.chat_filter import ChatFilter
from spaktok.api.idempotency import request_idempotency_key
from spaktok.api.problems import Problem
from spaktok.commands.gifts import CatalogGift
from spaktok.events.envelope import derive_id
from spaktok.projections.clickhouse import ClickHouse
from spaktok.settings import Settings


@dataclass
class Services:
    settings: Settings
    bus: CommandBus
    batcher: EdgeBatcher
    engine: Engine
    clickhouse: ClickHouse | None
    feed: Any = None  # the realtime FeedHub (api/live.py)
    chat_filter: ChatFilter = field(default_factory=ChatFilter)
    catalog: dict[str, CatalogGift] = field(default_factory=dict)  # the gift catalog, by id


# Dependencies are `async def` although they never await: FastAPI runs a plain `def` dependency in
# its thread pool, and that hand-off cost more than the work itself (py-spy, bench/gifts.py).


async def get_services(request: HTTPConnection) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def current_user(request: HTTPConnection) -> Principal:
    """The caller named by `Authorization: Bearer …` (or `?access_token=`, for browsers' WebSockets).

    Both are read off the request rather than declared as parameters: they are shown as the
    `bearerAuth` scheme (api/openapi.py), not as a free-form header and query, and FastAPI's
    per-parameter extraction was a tenth of a gift's dependency resolution (py-spy)."""
    services: Services = request.app.state.services
    authorization = request.headers.get("authorization")
    token = request.query_params.get("access_token") if request.scope.get("query_string") else None
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise Problem(401, "unauthorized", "use `Authorization: Bearer <token>`")
        token = value.strip()
    if not token:
        raise Problem(401, "unauthorized", "a bearer token is required (run `spaktok token USER_ID` in dev)")
    try:
        return decode_token(services.settings, token)
    except InvalidToken as exc:
        raise Problem(401, "invalid-token", f"the token was refused: {exc}") from exc


@dataclass(frozen=True)
class CommandMeta:
    """Identity of one client intent: the id is derived from `Idempotency-Key` when one is given."""

    command_id: str
    issued_at: datetime

    @staticmethod
    def for_request(user: Principal, scope: str, idempotency_key: str | None = None) -> CommandMeta:
        """Without an explicit key, the request's `Idempotency-Key` header is used (set by the app-wide
        check in api/idempotency.py), so every command route honours it without declaring it."""
        if idempotency_key is None:
            idempotency_key = request_idempotency_key.get()
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= 200:
                raise Problem(400, "invalid-idempotency-key", "Idempotency-Key must be 1-200 characters")
            command_id = derive_id("idem", user.user_id, scope, idempotency_key)
        else:
            command_id = str(uuid.uuid4())
        return CommandMeta(command_id, clock.now())


ServicesDep = Annotated[Services, Depends(get_services)]
CurrentUser = Annotated[Principal, Depends(current_user)]
# checked (400 `invalid-idempotency-key`) where the command is built; declared so clients see it
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="repeat a command with the same key to get its first outcome (API.md)",
        json_schema_extra={"minLength": 1, "maxLength": 200},
    ),
]
# Path parameters, in one place: the OpenAPI document shows exactly what is accepted, so a generated
# request (schemathesis, bench/fuzz.py) reaches the route's behaviour instead of its validation.
ID_PATTERN = r"^[A-Za-z0-9_\-]+$"  # ids this API mints: st_…, comment, battle, schedule, payout ids


def _id_path(what: str, max_length: int = 64) -> Any:
    return Path(min_length=1, max_length=max_length, pattern=ID_PATTERN, description=what)


StreamPath = Annotated[str, _id_path("a stream id, e.g. st_3f2a…")]
CommentPath = Annotated[str, _id_path("a comment id")]
BattlePath = Annotated[str, _id_path("a PK battle id")]
SchedulePath = Annotated[str, _id_path("a schedule id")]
PayoutPath = Annotated[str, _id_path("a payout id")]
ReportPath = Annotated[str, _id_path("a report id", 128)]
CommandPath = Annotated[str, _id_path("a command id (the Location of a 202 answer)", 128)]
UserPath = Annotated[
    str, Path(min_length=1, max_length=128, pattern=USER_ID_PATTERN, description="a user id (token `sub`)")
]

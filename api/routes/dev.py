"""Dev-mode helpers: a signed-in identity for the web console without an identity provider.

`POST /v1/dev/token` exists only when `settings.env == "dev"` (what `spaktok dev` and the test stack
run); under any other setting it answers 404 like a path that is not there, so a production API
never mints tokens (docs/api.md "Dev tokens").
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import Field
from starlette.requests import HTTPConnection

from spaktok.api.auth import USER_ID_PATTERN, mint_token
from spaktok.api.problems import Problem
from spaktok.api.schemas import Body
from spaktok.settings import Settings

router = APIRouter(tags=["dev"])

PROBLEM_CONTENT = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
Role = Literal["admin", "moderation", "analyst", "payments"]


async def app_settings(request: HTTPConnection) -> Settings:
    """The settings the app was built with (set by create_app; no services needed)."""
    return request.app.state.settings  # type: ignore[no-any-return]


AppSettings = Annotated[Settings, Depends(app_settings)]


class DevTokenBody(Body):
    user_id: str = Field(min_length=1, max_length=128, pattern=USER_ID_PATTERN)
    name: str | None = Field(None, min_length=1, max_length=100)
    roles: list[Role] = Field(default_factory=list, max_length=4)
    premium: bool = False
    birth_year: int | None = Field(None, ge=1900, le=2100)
    country: str | None = Field(None, pattern=r"^[A-Za-z]{2}$")


@router.post(
    "/v1/dev/token",
    responses={404: {"description": "not a dev-mode API", "content": PROBLEM_CONTENT}},
)
async def dev_token(body: DevTokenBody, settings: AppSettings) -> dict[str, Any]:
    """A token for any user, in dev mode only (the console's sign-in page)."""
    if settings.env != "dev":
        raise Problem(404, "not-found", "dev tokens are issued by a dev-mode API only")
    token = mint_token(
        settings,
        body.user_id,
        name=body.name,
        roles=list(dict.fromkeys(body.roles)),
        premium=body.premium,
        birth_year=body.birth_year,
        country=body.country,
    )
    return {"token": token, "userId": body.user_id, "expiresIn": settings.jwt_ttl_seconds}

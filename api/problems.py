"""RFC 9457 problem+json errors with stable type slugs; bad input is a 4xx, never a 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

# decider rejection slug -> HTTP status
STATUS_BY_REASON = {
    "stream-not-found": 404,
    "stream-not-live": 409,
    "stream-exists": 409,
    "stream-already-active": 409,
    "not-stream-owner": 403,
    "not-moderator": 403,
    "private-stream": 403,
    "user-banned": 403,
    "cannot-report-own-stream": 422,
    "timed-out": 403,
    "cannot-moderate-broadcaster": 422,
    "followers-only": 403,
    "cannot-follow-self": 422,
    "cannot-moderate-self": 422,
    "moderator-limit": 409,
    "follow-limit": 409,
    "schedule-in-past": 422,
    "schedule-not-found": 404,
    "schedule-exists": 409,
    "schedule-closed": 409,
    "not-schedule-owner": 403,
    "age-restricted": 403,
    "comment-not-found": 404,
    "not-watching": 409,
    "comments-disabled": 403,
    "invalid-comment": 422,
    "rate-limited": 429,
    "unsupported-command": 400,
    "insufficient-coins": 409,
    "guest-limit": 409,
    "not-invited": 403,
    "cannot-invite-self": 422,
    "gifts-disabled": 403,
    "cannot-gift-self": 422,
    "payment-ref-conflict": 409,
    "payout-below-minimum": 422,
    "insufficient-earnings": 409,
    "payout-not-found": 404,
    "payout-not-pending": 409,
    "battle-exists": 409,
    "battle-not-found": 404,
    "battle-not-pending": 409,
    "battle-invite-expired": 409,
    "battle-starting": 409,
    "battle-not-active": 409,
    "not-battle-opponent": 403,
    "not-battle-broadcaster": 403,
    "cannot-battle-self": 422,
    "stream-in-battle": 409,
    "stream-key-revoked": 403,
    "not-recorded": 409,
    "account-suspended": 403,  # platform enforcement (docs/security.md)
    "streaming-not-permitted": 403,  # the permission to go live (docs/security.md "Going live")
    "not-platform-moderator": 403,
    "report-resolved": 409,
    "report-not-found": 404,
    "suspension-in-past": 422,
}


class Problem(Exception):
    def __init__(
        self, status: int, type_: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        """`extra` goes into the body; `headers` onto the response (e.g. Retry-After on a 429)."""
        super().__init__(detail)
        self.status = status
        self.type = type_
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    @classmethod
    def from_rejection(cls, reason: str | None, detail: str | None) -> Problem:
        slug = reason or "rejected"
        return cls(STATUS_BY_REASON.get(slug, 409), slug, detail or slug)


def problem_response(status: int, type_: str, detail: str, **extra: Any) -> JSONResponse:
    title = type_.replace("-", " ").capitalize()
    body = {
        "type": f"https://spaktok.dev/problems/{type_}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        response = problem_response(exc.status, exc.type, exc.detail, **exc.extra)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        malformed = any(e["type"] == "json_invalid" for e in errors)
        if malformed:
            return problem_response(
                400, "malformed-json", "the request body is not valid JSON", errors=errors
            )
        return problem_response(
            422, "validation-error", "the request does not match the contract", errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed"}.get(
            exc.status_code, "http-error"
        )
        headers = getattr(exc, "headers", None)
        response = problem_response(exc.status_code, slug, str(exc.detail))
        if headers:
            response.headers.update(headers)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "internal-error", "something failed on our side; it has been logged")

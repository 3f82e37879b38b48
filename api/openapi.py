"""The OpenAPI document as the API really answers: bearer auth and problem+json errors.

FastAPI's generated document declares every 422 as its own `HTTPValidationError` (`detail` a list),
while this API answers every error as an RFC 9457 problem (api/problems.py). A schema-driven client
or fuzzer (schemathesis, bench/fuzz.py) checks answers against the document, so the document must
say what is sent: the problem schema for the statuses a route can answer, the bearer scheme instead
of a free-form `authorization` header, and no success model a route does not produce.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from spaktok.api.deps import current_user

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; `type` ends with a stable slug (API.md).",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "https://spaktok.dev/problems/<slug>"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "validation errors: where and why",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array"},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}
WHY = {
    400: "Malformed JSON, a bad cursor or Idempotency-Key (problem+json).",
    401: "No, or an invalid, bearer token (problem+json).",
    403: "Not allowed: role, ownership, ban, privacy, suspension (problem+json).",
    404: "No such resource, or one the caller may not know of (problem+json).",
    409: "Conflicts with the resource's state, e.g. `stream-not-live` (problem+json).",
    422: "The request does not match this document, or a rule refuses it (problem+json).",
    429: "Over a rate limit: `rate-limited`, see `Retry-After` (problem+json).",
}
# what any signed-in request may be answered with (API.md "Conventions"); 429 on commands only
SIGNED_IN = (400, 401, 403, 404, 409, 422)
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def _problem(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": WHY[status],
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status == 429:
        response["headers"] = {
            "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 0}}
        }
    return response


def _tree(dependant: Dependant) -> list[Dependant]:
    """A route's dependant and every dependency under it."""
    return [dependant, *(d for sub in dependant.dependencies for d in _tree(sub))]


def signed_in(route: APIRoute) -> bool:
    return any(d.call is current_user for d in _tree(route.dependant))


def error_statuses(route: APIRoute, method: str) -> tuple[int, ...]:
    """The problem statuses a route can answer: all of them once signed in, else what its input allows."""
    if signed_in(route):
        return SIGNED_IN + ((429,) if method in MUTATING else ())
    tree = _tree(route.dependant)
    statuses: set[int] = set()
    if any(d.path_params or d.query_params or d.header_params or d.body_params for d in tree):
        statuses.add(422)
    if route.dependant.body_params:
        statuses.add(400)
    if method in MUTATING:
        statuses.add(429)
    return tuple(sorted(statuses))


def api_routes(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every APIRoute with its public path, also inside included routers (FastAPI ≥ 0.16x nests them)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path_format, route
        elif (inner := getattr(route, "original_router", None)) is not None:
            context = getattr(route, "include_context", None)
            yield from api_routes(inner.routes, prefix + (getattr(context, "prefix", "") or ""))


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document with the problem responses and the bearer scheme put right."""
    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = {
        "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    for path, route in api_routes(app.routes):
        if not route.include_in_schema:
            continue
        path_item = spec["paths"].get(path, {})
        needs_token = signed_in(route)
        for method in route.methods:
            operation = path_item.get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)  # FastAPI's HTTPValidationError: never what is sent
            for status in error_statuses(route, method):
                responses.setdefault(str(status), _problem(status))
            if needs_token:
                operation["security"] = [{"bearerAuth": []}]
    return spec


def install_openapi(app: FastAPI) -> None:
    """Serve `build_openapi` at /openapi.json (built once, on first request, like FastAPI's own)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

"""Webhook subscriptions (docs/webhooks.md): register, list, inspect, delete, read the delivery log.

A broadcaster subscribes to event types of its own streams; an admin may subscribe the platform
("app" scope) to any event type. The secret is shown once, in the answer to the registration.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Query, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import Field, StringConstraints, field_validator

from spaktok import clock
from spaktok.api.auth import Principal
from spaktok.api.deps import ID_PATTERN, CommandMeta, CurrentUser, IdempotencyKey, ServicesDep
from spaktok.api.problems import Problem
from spaktok.api.schemas import Body
from spaktok.events.base import EVENT_TYPES
from spaktok.processors.webhook_signing import new_secret
from spaktok.projections import webhooks
from spaktok.projections.webhook_outbox import subscribable

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

WebhookPath = Annotated[
    str, Path(min_length=1, max_length=64, pattern=ID_PATTERN, description="a webhook id, e.g. wh_3f2a…")
]
EventType = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class WebhookBody(Body):
    url: str = Field(min_length=1, max_length=2000, description="http(s) URL that receives the POSTs")
    event_types: list[EventType] = Field(min_length=1, max_length=100)
    # "streams": events of the caller's own streams; "app": every event (admins only)
    scope: Literal["streams", "app"] = "streams"
    description: str = Field("", max_length=500)

    @field_validator("url")
    @classmethod
    def _no_blanks_or_controls(cls, value: str) -> str:
        """A URL has neither (and Postgres text refuses NUL: it would be a 500, not a 422)."""
        if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in value):
            raise ValueError("a URL has no spaces or control characters")
        return value

    @field_validator("description")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("no NUL characters")
        return value


@router.post("", status_code=201)
async def create_webhook(
    body: WebhookBody, user: CurrentUser, services: ServicesDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """The answer carries `secret`, shown this once (a retry with the same Idempotency-Key shows it
    again). 422 `invalid-webhook-url` / `unknown-event-type`; 403 for an "app" scope without admin."""
    if body.scope == "app" and not user.is_admin:
        raise Problem(403, "forbidden", 'the "app" scope (every stream) is for admins; use "streams"')
    types = sorted(set(body.event_types))
    refused = [t for t in types if not subscribable(t, body.scope)]
    if refused:
        allowed = sorted(t for t in EVENT_TYPES if subscribable(t, body.scope))
        raise Problem(
            422,
            "unknown-event-type",
            f"not an event type a {body.scope!r} webhook can receive: {', '.join(refused)[:300]}",
            allowed=allowed,
        )
    await _check_url(body.url, services.settings.webhooks_may_reach_private)
    meta = CommandMeta.for_request(user, "webhook", idempotency_key)
    created = await run_in_threadpool(
        _create, services, user, body, types, "wh_" + meta.command_id.replace("-", "")[:24]
    )
    document, secret = created
    return {**document, "secret": secret}


def _create(
    services: Any, user: Principal, body: WebhookBody, types: list[str], webhook_id: str
) -> tuple[dict[str, Any], str]:
    try:
        created = webhooks.create(
            services.engine,
            webhook_id=webhook_id,
            owner_id=user.user_id,
            scope=body.scope,
            url=body.url,
            secret=new_secret(),
            event_types=types,
            description=body.description,
            created_at=clock.now(),
            max_per_owner=services.settings.webhook_max_per_owner,
        )
    except webhooks.TooManyWebhooks as exc:
        raise Problem(409, "too-many-webhooks", str(exc)) from exc
    if created is None:
        raise Problem(409, "idempotency-key-reused", "this Idempotency-Key named another request")
    return created


@router.get("")
async def list_webhooks(user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """The caller's own subscriptions, oldest first (secrets are never shown again)."""
    return {"webhooks": await run_in_threadpool(webhooks.list_for, services.engine, user.user_id)}


@router.get("/{webhook_id}")
async def get_webhook(webhook_id: WebhookPath, user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """Status (`active` / `disabled` with `disabledReason`), last error, counts of deliveries."""
    return await _owned(webhook_id, user, services)


@router.delete("/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: WebhookPath, user: CurrentUser, services: ServicesDep) -> Response:
    """Stops deliveries at once; its pending deliveries and log go with it."""
    await _owned(webhook_id, user, services)
    await run_in_threadpool(webhooks.delete, services.engine, webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries")
async def list_deliveries(
    webhook_id: WebhookPath,
    user: CurrentUser,
    services: ServicesDep,
    event_id: Annotated[str | None, Query(alias="eventId", max_length=64, pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """The delivery log: one row per attempt, newest first (outcome, status code, error, duration)."""
    await _owned(webhook_id, user, services)
    rows = await run_in_threadpool(
        webhooks.attempts, services.engine, webhook_id, limit=limit, event_id=event_id
    )
    return {"deliveries": rows}


async def _owned(webhook_id: str, user: Principal, services: Any) -> dict[str, Any]:
    """The subscription if the caller owns it or is an admin (403 otherwise, like a stream's owner-only
    routes: ids are 96 random bits, so a 403 tells a prober nothing it could use)."""
    doc = await run_in_threadpool(webhooks.get, services.engine, webhook_id)
    if doc is None:
        raise Problem(404, "webhook-not-found", "no webhook with this id")
    if doc["ownerId"] != user.user_id and not user.is_admin:
        raise Problem(403, "not-webhook-owner", "only the webhook's owner (or an admin) may see or delete it")
    return doc


async def _check_url(url: str, allow_private: bool) -> None:
    """http(s) with a host and no credentials; outside dev, no loopback/private/link-local target
    (docs/security.md "Webhooks": the platform must not be made to call its own network)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Problem(422, "invalid-webhook-url", f"not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Problem(422, "invalid-webhook-url", "give an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise Problem(422, "invalid-webhook-url", "no credentials in the URL: verify the signature instead")
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, port or 443)
    except (socket.gaierror, UnicodeError) as exc:
        raise Problem(422, "invalid-webhook-url", f"{parts.hostname} does not resolve: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            raise Problem(
                422,
                "invalid-webhook-url",
                f"{parts.hostname} resolves to {address}, a non-public address; use a public host",
            )

"""Webhook subscriptions and their delivery log, as the API writes and reads them (docs/webhooks.md).

A subscription is configuration a user gives the platform, not a fact of the log, so the API writes
it here directly (like `idempotency_keys`); what is delivered is derived from the log by the outbox
(projections/webhook_outbox.py) and the deliverer (processors/webhook_delivery.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text

_FIELDS = (
    "id, owner_id, scope, url, event_types, description, status, disabled_reason, disabled_at, "
    "consecutive_failures, last_error, last_success_at, created_at"
)


class TooManyWebhooks(Exception):
    """The owner already has the most subscriptions allowed."""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _document(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "ownerId": row.owner_id,
        "scope": row.scope,
        "url": row.url,
        "eventTypes": list(row.event_types),
        "description": row.description,
        "status": row.status,
        "disabledReason": row.disabled_reason,
        "disabledAt": _iso(row.disabled_at),
        "consecutiveFailures": row.consecutive_failures,
        "lastError": row.last_error,
        "lastSuccessAt": _iso(row.last_success_at),
        "createdAt": _iso(row.created_at),
    }


def create(
    engine: Engine,
    *,
    webhook_id: str,
    owner_id: str,
    scope: str,
    url: str,
    secret: str,
    event_types: list[str],
    description: str,
    created_at: datetime,
    max_per_owner: int,
) -> tuple[dict[str, Any], str] | None:
    """Store a subscription; returns its document and secret. The same id again (a retried request
    with the same Idempotency-Key) returns the first one, secret included; None if the id is someone
    else's. Raises TooManyWebhooks past `max_per_owner`."""
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:o))"), {"o": f"webhooks:{owner_id}"})
        existing = conn.execute(
            text(f"SELECT {_FIELDS}, secret FROM webhooks.subscriptions WHERE id = :i"), {"i": webhook_id}
        ).first()
        if existing is not None:
            return (_document(existing), existing.secret) if existing.owner_id == owner_id else None
        count = conn.execute(
            text("SELECT count(*) FROM webhooks.subscriptions WHERE owner_id = :o"), {"o": owner_id}
        ).scalar_one()
        if count >= max_per_owner:
            raise TooManyWebhooks(f"at most {max_per_owner} webhooks per user; delete one first")
        row = conn.execute(
            text(
                "INSERT INTO webhooks.subscriptions (id, owner_id, scope, url, secret, event_types, "
                "description, created_at) VALUES (:i, :o, :s, :u, :k, :t, :d, :c) "
                f"RETURNING {_FIELDS}"
            ),
            {
                "i": webhook_id,
                "o": owner_id,
                "s": scope,
                "u": url,
                "k": secret,
                "t": event_types,
                "d": description,
                "c": created_at,
            },
        ).one()
        return _document(row), secret


def get(engine: Engine, webhook_id: str) -> dict[str, Any] | None:
    """One subscription with its outbox counts (pending, delivered); the secret never."""
    with engine.connect() as conn:
        row = conn.execute(
            text(f"SELECT {_FIELDS} FROM webhooks.subscriptions WHERE id = :i"), {"i": webhook_id}
        ).first()
        if row is None:
            return None
        counts = dict(
            conn.execute(
                text(
                    "SELECT state, count(*) FROM webhooks.deliveries WHERE subscription_id = :i "
                    "GROUP BY state"
                ),
                {"i": webhook_id},
            ).all()
        )
    return {**_document(row), "deliveries": {s: counts.get(s, 0) for s in ("pending", "delivered")}}


def list_for(engine: Engine, owner_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT {_FIELDS} FROM webhooks.subscriptions WHERE owner_id = :o ORDER BY created_at"),
            {"o": owner_id},
        ).all()
    return [_document(row) for row in rows]


def delete(engine: Engine, webhook_id: str) -> bool:
    """Remove a subscription with its outbox and log (an attempt in flight is then not recorded)."""
    with engine.begin() as conn:
        gone = conn.execute(text("DELETE FROM webhooks.subscriptions WHERE id = :i"), {"i": webhook_id})
    return gone.rowcount == 1


def attempts(
    engine: Engine, webhook_id: str, *, limit: int, event_id: str | None = None
) -> list[dict[str, Any]]:
    """The delivery log, newest attempt first: one row per attempt, with its delivery's state."""
    where = "a.subscription_id = :i" + (" AND a.event_id = :e" if event_id else "")
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.event_id, d.event_type, a.attempt, a.outcome, a.status_code, a.error, "
                "a.duration_ms, a.started_at, d.state FROM webhooks.attempts a JOIN webhooks.deliveries d "
                f"USING (subscription_id, event_id) WHERE {where} "
                "ORDER BY a.started_at DESC, a.attempt DESC LIMIT :n"
            ),
            {"i": webhook_id, "e": event_id, "n": limit},
        ).all()
    return [
        {
            "eventId": r.event_id,
            "eventType": r.event_type,
            "attempt": r.attempt,
            "outcome": r.outcome,
            "statusCode": r.status_code,
            "error": r.error,
            "durationMs": r.duration_ms,
            "startedAt": _iso(r.started_at),
            "deliveryState": r.state,
        }
        for r in rows
    ]

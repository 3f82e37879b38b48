"""Webhook signatures and the retry schedule: pure functions, shared by the deliverer, the tests and
any Python receiver (docs/webhooks.md "Verifying a delivery").

A delivery is signed with HMAC-SHA256 over `"{timestamp}.{body}"` under the subscription's secret,
sent as `Spaktok-Webhook-Signature: v1=<hex>`. The timestamp is in the signed text so that a
captured request cannot be replayed later with a fresh timestamp; receivers refuse timestamps
outside a window (`REPLAY_WINDOW_S`). The `v1=` prefix leaves room for a second scheme or a
rotated secret: a header may carry several space-separated signatures, any one valid suffices.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

ID_HEADER = "Spaktok-Webhook-Id"
TIMESTAMP_HEADER = "Spaktok-Webhook-Timestamp"
SIGNATURE_HEADER = "Spaktok-Webhook-Signature"
ATTEMPT_HEADER = "Spaktok-Webhook-Attempt"
SUBSCRIPTION_HEADER = "Spaktok-Webhook-Subscription"
REPLAY_WINDOW_S = 300  # 5 minutes either way: clocks drift, retries are signed afresh
SECRET_PREFIX = "whsec_"


class InvalidSignature(Exception):
    """The delivery was not signed with this secret, or too long ago (replay)."""


def new_secret() -> str:
    """A fresh signing secret (256 random bits), shown to its owner once."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def headers(secret: str, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The signed headers of one attempt (the timestamp is the attempt's, so retries stay fresh)."""
    return {
        "Content-Type": "application/json",
        ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


def verify(
    secret: str, received: Mapping[str, str], body: bytes, now: float, window_s: int = REPLAY_WINDOW_S
) -> None:
    """Raise InvalidSignature unless `body` with these headers was signed with `secret` within
    `window_s` of `now`. `received` is looked up case-insensitively (HTTP header names are)."""
    lowered = {k.lower(): v for k, v in received.items()}
    raw_ts = lowered.get(TIMESTAMP_HEADER.lower(), "")
    if not raw_ts.isdigit():
        raise InvalidSignature("missing or malformed timestamp")
    timestamp = int(raw_ts)
    if abs(now - timestamp) > window_s:
        raise InvalidSignature(f"timestamp {timestamp} is outside the {window_s} s window")
    expected = sign(secret, timestamp, body)
    offered = lowered.get(SIGNATURE_HEADER.lower(), "").split()
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise InvalidSignature("no signature matches")


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Wait after failed attempt number `attempt` (1-based): base, 2×base, 4×base, … capped.

    No jitter: deliveries already spread over time with the events that caused them, and a fixed
    schedule is one a receiver's operator can read off the delivery log."""
    if attempt < 1:
        raise ValueError("attempts count from 1")
    return float(min(base_s * 2 ** min(attempt - 1, 62), max_s))

"""Webhook signatures and the retry schedule (docs/webhooks.md): what a receiver checks, and that
each check refuses what it must — a tampered body, an old or missing timestamp, another secret."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from spaktok.processors import webhook_signing as signing

SECRET = "whsec_test-secret"
BODY = b'{"id":"ev-1","type":"streams.StreamStarted","data":{}}'
NOW = 1_800_000_000


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    """The documented recipe, computed independently, equals what the deliverer sends."""
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signing.sign(SECRET, NOW, BODY) == f"v1={expected}"


def test_a_signed_delivery_verifies() -> None:
    headers = signing.headers(SECRET, "ev-1", NOW, BODY)
    assert headers[signing.ID_HEADER] == "ev-1"
    signing.verify(SECRET, headers, BODY, now=NOW + 10)
    # header names are case-insensitive, as HTTP has them
    signing.verify(SECRET, {k.lower(): v for k, v in headers.items()}, BODY, now=NOW)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda h, b: (h, b.replace(b"ev-1", b"ev-2")), id="tampered-body"),
        pytest.param(lambda h, b: ({**h, signing.TIMESTAMP_HEADER: str(NOW + 1)}, b), id="moved-timestamp"),
        pytest.param(lambda h, b: ({**h, signing.SIGNATURE_HEADER: "v1=00"}, b), id="wrong-signature"),
        pytest.param(
            lambda h, b: ({k: v for k, v in h.items() if k != signing.TIMESTAMP_HEADER}, b), id="no-timestamp"
        ),
        pytest.param(
            lambda h, b: ({k: v for k, v in h.items() if k != signing.SIGNATURE_HEADER}, b), id="no-signature"
        ),
    ],
)
def test_a_tampered_delivery_is_refused(tamper) -> None:  # type: ignore[no-untyped-def]
    headers, body = tamper(signing.headers(SECRET, "ev-1", NOW, BODY), BODY)
    with pytest.raises(signing.InvalidSignature):
        signing.verify(SECRET, headers, body, now=NOW)


def test_another_secret_is_refused() -> None:
    headers = signing.headers("whsec_someone-else", "ev-1", NOW, BODY)
    with pytest.raises(signing.InvalidSignature, match="no signature matches"):
        signing.verify(SECRET, headers, BODY, now=NOW)


def test_an_old_or_future_timestamp_is_refused_as_a_replay() -> None:
    headers = signing.headers(SECRET, "ev-1", NOW, BODY)
    signing.verify(SECRET, headers, BODY, now=NOW + signing.REPLAY_WINDOW_S)  # the edge is inside
    for now in (NOW + signing.REPLAY_WINDOW_S + 1, NOW - signing.REPLAY_WINDOW_S - 1):
        with pytest.raises(signing.InvalidSignature, match="outside"):
            signing.verify(SECRET, headers, BODY, now=now)


def test_any_of_several_signatures_may_match() -> None:
    """Room for a rotated secret: the header may carry more than one `v1=`."""
    headers = signing.headers(SECRET, "ev-1", NOW, BODY)
    headers[signing.SIGNATURE_HEADER] = f"v1=deadbeef {headers[signing.SIGNATURE_HEADER]}"
    signing.verify(SECRET, headers, BODY, now=NOW)


def test_secrets_are_fresh_and_long() -> None:
    a, b = signing.new_secret(), signing.new_secret()
    assert a != b and a.startswith(signing.SECRET_PREFIX) and len(a) >= 40


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    schedule = [signing.backoff_s(n, 0.5, 5.0) for n in range(1, 8)]
    assert schedule == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert signing.backoff_s(10_000, 5.0, 3600.0) == 3600.0  # no overflow far out
    with pytest.raises(ValueError):
        signing.backoff_s(0, 0.5, 5.0)

"""Bearer tokens: verified once, remembered until they expire, never accepted when PyJWT would refuse."""

from __future__ import annotations

import time

import jwt
import pytest
from spaktok.api import auth
from spaktok.api.auth import InvalidToken, decode_token, mint_token
from spaktok.settings import Settings


def test_a_valid_token_gives_its_principal_and_is_verified_once(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    token = mint_token(settings, "ann", name="Ann", roles=["admin"], premium=True)
    calls = []
    real = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: calls.append(1) or real(*a, **k))

    first = decode_token(settings, token)
    second = decode_token(settings, token)

    assert (first.user_id, first.name, first.roles, first.premium) == (
        "ann",
        "Ann",
        frozenset({"admin"}),
        True,
    )
    assert second == first
    assert len(calls) == 1


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    settings = Settings(jwt_ttl_seconds=1)
    token = mint_token(settings, "bob")
    assert decode_token(settings, token).user_id == "bob"
    time.sleep(2.1)  # past `exp` (whole seconds) on every clock
    with pytest.raises(InvalidToken):
        decode_token(settings, token)


def test_a_token_altered_by_one_character_is_refused_even_after_the_original_was_accepted() -> None:
    settings = Settings()
    token = mint_token(settings, "cy")
    decode_token(settings, token)
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}{signature[-1]}"
    with pytest.raises(InvalidToken):
        decode_token(settings, forged)


def test_a_token_accepted_under_one_secret_is_refused_under_another() -> None:
    token = mint_token(Settings(), "dee")
    decode_token(Settings(), token)
    with pytest.raises(InvalidToken):
        decode_token(Settings(jwt_secret="another-secret-of-enough-length-0123456789"), token)


def test_the_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    monkeypatch.setattr(auth, "VERIFIED_KEPT", 3)
    monkeypatch.setattr(auth, "_verified", {})
    for n in range(10):
        decode_token(settings, mint_token(settings, f"user-{n}"))
    assert len(auth._verified) == 3

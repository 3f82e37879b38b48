"""Bearer tokens: verified once, remembered until they expire, never accepted when PyJWT would refuse."""

from __future__ import annotations

import time
from types import SimpleNamespace

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from spaktok.api import auth
from spaktok.api.auth import InvalidToken, decode_token, mint_token
from spaktok.api.deps import CurrentUser
from spaktok.api.problems import install_problem_handlers
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


# -- hardening (docs/security.md "Tokens"): each rule refuses its bad case ------------------------


def _signed(settings: Settings, headers: dict[str, str] | None = None, **overrides: object) -> str:
    now = int(time.time())
    claims: dict[str, object] = {"sub": "eve", "iss": settings.jwt_issuer, "iat": now, "exp": now + 600}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256", headers=headers)


def _refused(settings: Settings, token: str, why: str) -> None:
    with pytest.raises(InvalidToken, match=f"(?i){why}"):
        decode_token(settings, token)


def test_a_well_formed_token_of_the_test_helper_is_accepted() -> None:
    settings = Settings()
    assert decode_token(settings, _signed(settings)).user_id == "eve"


def test_alg_none_is_refused() -> None:
    settings = Settings()
    now = int(time.time())
    claims = {"sub": "eve", "iss": settings.jwt_issuer, "exp": now + 600}
    unsigned = jwt.encode(claims, None, algorithm="none")
    _refused(settings, unsigned, "alg")


def test_an_rs256_token_is_refused_by_an_hs256_api() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    settings = Settings()
    now = int(time.time())
    token = jwt.encode({"sub": "eve", "iss": settings.jwt_issuer, "exp": now + 600}, pem, algorithm="RS256")
    _refused(settings, token, "alg")


def test_a_wrong_or_missing_issuer_is_refused() -> None:
    settings = Settings()
    _refused(settings, _signed(settings, iss="someone-else"), "issuer")
    _refused(settings, _signed(settings, iss=None), "iss")


def test_a_wrong_audience_is_refused_when_one_is_configured() -> None:
    settings = Settings(jwt_audience="spaktok-api")
    assert decode_token(settings, _signed(settings, aud="spaktok-api")).user_id == "eve"
    _refused(settings, _signed(settings, aud="another-api"), "audience")
    _refused(settings, _signed(settings), "aud")


def test_an_expired_token_is_refused_even_within_the_leeway() -> None:
    settings = Settings()
    _refused(settings, _signed(settings, exp=int(time.time()) - 1), "expired")


def test_a_token_not_yet_valid_is_refused() -> None:
    settings = Settings()
    later = int(time.time()) + 3600
    _refused(settings, _signed(settings, nbf=later), "not yet valid")
    _refused(settings, _signed(settings, iat=later), "not yet valid")


def test_a_little_clock_skew_on_nbf_and_iat_is_tolerated() -> None:
    settings = Settings(jwt_leeway_s=30)
    soon = int(time.time()) + 5
    assert decode_token(settings, _signed(settings, nbf=soon, iat=soon)).user_id == "eve"


def test_an_unknown_kid_is_refused() -> None:
    plain = Settings()
    _refused(plain, _signed(plain, headers={"kid": "k1"}), "key id")
    keyed = Settings(jwt_key_id="k1")
    assert decode_token(keyed, _signed(keyed, headers={"kid": "k1"})).user_id == "eve"
    _refused(keyed, _signed(keyed, headers={"kid": "k2"}), "key id")
    _refused(keyed, _signed(keyed), "key id")


def test_minted_tokens_carry_the_configured_kid() -> None:
    keyed = Settings(jwt_key_id="k1")
    token = mint_token(keyed, "fay")
    assert jwt.get_unverified_header(token)["kid"] == "k1"
    assert decode_token(keyed, token).user_id == "fay"


def test_an_unknown_kid_is_refused_with_a_jwks(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(jwt_algorithm="RS256", jwt_jwks_url="https://idp.example/jwks.json")

    class NoSuchKey:
        def get_signing_key_from_jwt(self, token: str) -> object:
            raise jwt.PyJWKClientError(f'Unable to find a signing key that matches: "{token[:3]}"')

    monkeypatch.setattr(auth, "_jwks_client", lambda url: NoSuchKey())
    _refused(settings, _signed(Settings(), headers={"kid": "nope"}), "signing key")


@pytest.mark.parametrize("sub", [42, ["eve"], {"id": "eve"}, "", "x" * 129, "eve smith", "eve/../adm", "é"])
def test_a_sub_that_is_not_a_user_id_is_refused(sub: object) -> None:
    settings = Settings()
    with pytest.raises(InvalidToken):
        decode_token(settings, _signed(settings, sub=sub))


@pytest.mark.parametrize("sub", ["eve", "auth0|123", "google-oauth2|1", "eve@example.com", "x" * 128])
def test_a_user_id_an_identity_provider_issues_is_accepted(sub: str) -> None:
    settings = Settings()
    assert decode_token(settings, _signed(settings, sub=sub)).user_id == sub


def test_the_memory_is_keyed_by_the_rules_too() -> None:
    """A token remembered under one issuer is not accepted after the issuer setting changes."""
    first = Settings()
    token = _signed(first)
    decode_token(first, token)
    _refused(Settings(jwt_issuer="another-issuer"), token, "issuer")


def test_the_current_user_comes_from_the_bearer_header_or_the_access_token_query() -> None:
    """`CurrentUser` (api/deps.py): the header wins over `?access_token=` (browsers' WebSockets)."""
    settings = Settings()
    app = FastAPI()
    install_problem_handlers(app)
    app.state.services = SimpleNamespace(settings=settings)

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, str]:
        return {"userId": user.user_id}

    client = TestClient(app)
    ann, bob = mint_token(settings, "ann"), mint_token(settings, "bob")

    def who(headers: dict[str, str] | None = None, query: str = "") -> tuple[int, str]:
        response = client.get(f"/me{query}", headers=headers or {})
        body = response.json()
        return response.status_code, body.get("userId") or body["type"].rsplit("/", 1)[-1]

    assert who({"Authorization": f"Bearer {ann}"}) == (200, "ann")
    assert who({"Authorization": f"bearer  {ann} "}) == (200, "ann")
    assert who(query=f"?access_token={bob}") == (200, "bob")
    assert who({"Authorization": f"Bearer {ann}"}, f"?access_token={bob}") == (200, "ann")
    assert who() == (401, "unauthorized")
    assert who({"Authorization": f"Basic {ann}"}) == (401, "unauthorized")
    assert who({"Authorization": "Bearer"}, f"?access_token={bob}") == (401, "unauthorized")
    assert who(query="?access_token=") == (401, "unauthorized")
    assert who({"Authorization": "Bearer nope"}) == (401, "invalid-token")

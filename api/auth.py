"""Bearer-token auth: HS256 with a secret by default, RS256 with a PEM key or a JWKS URL."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jwt

from spaktok.settings import Settings


@dataclass(frozen=True)
class Principal:
    user_id: str
    name: str
    picture: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    premium: bool = False
    birth_year: int | None = None
    country: str | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


# A user id is what a token's `sub` may be and what a `{user_id}` path accepts (api/deps.py UserPath):
# one alphabet, so every user the API lets in can also be named in a path (unbanned, followed).
USER_ID_PATTERN = r"^[A-Za-z0-9_.:@|\-]+$"  # e.g. auth0|123, google-oauth2|1, user@example.com
_USER_ID = re.compile(USER_ID_PATTERN)


class InvalidToken(Exception):
    pass


@lru_cache(maxsize=4)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url)


def _verification_key(settings: Settings, token: str) -> Any:
    """The key that must have signed `token`. A `kid` naming no configured key is refused: with a
    JWKS it must be in the key set (PyJWKClient raises), otherwise it must equal
    SPAKTOK_JWT_KEY_ID — and a token without `kid` is refused when a key id is configured."""
    if settings.jwt_jwks_url and settings.jwt_algorithm != "HS256":
        return _jwks_client(settings.jwt_jwks_url).get_signing_key_from_jwt(token).key
    kid = jwt.get_unverified_header(token).get("kid")
    if kid != settings.jwt_key_id:
        raise InvalidToken(
            f"unknown key id (kid) {kid!r}" if kid is not None else "the token names no key id (kid)"
        )
    if settings.jwt_algorithm == "HS256":
        return settings.jwt_secret
    if settings.jwt_public_key:
        return settings.jwt_public_key
    raise InvalidToken("RS256 needs SPAKTOK_JWT_PUBLIC_KEY or SPAKTOK_JWT_JWKS_URL")


VERIFIED_KEPT = 100_000  # tokens whose verified claims are kept (a few hundred bytes each)
_verified: dict[tuple[str, tuple[Any, ...]], tuple[Principal, float]] = {}


def decode_token(settings: Settings, token: str) -> Principal:
    """The principal of a valid token. A token verified once is remembered until it expires.

    Verifying an HS256 token costs PyJWT about 0.5 ms here, a quarter of the API's CPU on the gift
    bench; a client sends the same token with every request. The memory is keyed by the token's
    exact bytes (its signature included) and by the verification settings, and still refuses the
    token once its `exp` has passed, so it accepts nothing PyJWT would refuse: every other rule
    (algorithm, `kid`, issuer, audience, `nbf`, `iat`, `sub`) depends only on the token and the
    settings, and a token that was not yet valid was refused, never remembered."""
    config = (
        settings.jwt_algorithm,
        settings.jwt_secret,
        settings.jwt_public_key,
        settings.jwt_jwks_url,
        settings.jwt_audience,
        settings.jwt_issuer,
        settings.jwt_key_id,
        settings.jwt_leeway_s,
    )
    remembered = _verified.get((token, config))
    if remembered is not None:
        principal, expires = remembered
        if time.time() < expires:
            return principal
        del _verified[(token, config)]
    principal, expires = _verify(settings, token)
    if len(_verified) >= VERIFIED_KEPT:
        del _verified[next(iter(_verified))]  # the oldest
    _verified[(token, config)] = (principal, expires)
    return principal


def _verify(settings: Settings, token: str) -> tuple[Principal, float]:
    try:
        claims = jwt.decode(
            token,
            _verification_key(settings, token),
            algorithms=[settings.jwt_algorithm],  # never `none`, never the other family
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_s,
            options={
                "require": ["sub", "exp", "iss"],
                "verify_aud": settings.jwt_audience is not None,
                "verify_iat": True,
                "verify_nbf": True,
            },
        )
    except (jwt.PyJWTError, ValueError) as exc:
        raise InvalidToken(str(exc)) from exc
    if float(claims["exp"]) <= time.time():  # the leeway is for issuers' clocks ahead (nbf, iat) only
        raise InvalidToken("Signature has expired")
    sub = claims["sub"]
    if not isinstance(sub, str) or len(sub) > 128 or not _USER_ID.fullmatch(sub):
        raise InvalidToken("`sub` must be a user id of 1-128 characters from [A-Za-z0-9_.:@|-]")
    roles = claims.get("roles") or []
    birth_year = claims.get("birthYear")
    principal = Principal(
        user_id=sub,
        name=str(claims.get("name") or sub),
        picture=claims.get("picture"),
        roles=frozenset(str(r) for r in roles) if isinstance(roles, list) else frozenset(),
        premium=claims.get("premium") is True,
        birth_year=birth_year if isinstance(birth_year, int) else None,
        country=claims.get("country"),
    )
    return principal, float(claims["exp"])


def mint_token(
    settings: Settings,
    user_id: str,
    *,
    name: str | None = None,
    picture: str | None = None,
    roles: list[str] | None = None,
    premium: bool = False,
    birth_year: int | None = None,
    country: str | None = None,
) -> str:
    """A token the API accepts (dev and tests; production tokens come from the identity provider)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_id,
        "name": name or user_id,
        "iss": settings.jwt_issuer,
        "iat": now,
        "exp": now + settings.jwt_ttl_seconds,
        "roles": roles or [],
        "premium": premium,
    }
    if picture:
        claims["picture"] = picture
    if birth_year is not None:
        claims["birthYear"] = birth_year
    if country:
        claims["country"] = country
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    headers = {"kid": settings.jwt_key_id} if settings.jwt_key_id else None
    if settings.jwt_algorithm == "HS256":
        return jwt.encode(claims, settings.jwt_secret, algorithm="HS256", headers=headers)
    if not settings.jwt_private_key:
        raise InvalidToken("minting RS256 tokens needs SPAKTOK_JWT_PRIVATE_KEY")
    return jwt.encode(claims, settings.jwt_private_key, algorithm="RS256", headers=headers)

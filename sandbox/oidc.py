"""OpenID Connect pieces the emulated identity servers share: a signing key, its JWKS, and
id_tokens (OpenID Connect Core 1.0 §2), signed RS256 like Xero's and Intuit's.

Clients such as intuit-oauth verify an id_token's signature against the provider's JWKS,
so the sandbox signs for real, with a key made on first use in each process (never stored).
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from datetime import datetime, timedelta
from functools import cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ID_TOKEN_LIFETIME = timedelta(minutes=5)


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def user_subject(user: str) -> str:
    """A stable `sub` for a sandbox user: the same person, the same id, every start."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, user.lower()))


class IdTokenSigner:
    """One RSA key: signs JWTs and publishes itself as a JWK Set."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(8)

    def sign(self, claims: dict[str, object]) -> str:
        """A compact JWS (RS256) of `claims`."""
        header = {"alg": "RS256", "kid": self.kid, "typ": "JWT"}
        signing_input = ".".join(
            b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"

    def jwks(self) -> dict[str, object]:
        """The public key as `GET jwks_uri` serves it (RFC 7517)."""
        numbers = self._key.public_key().public_numbers()
        key = {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": _uint(numbers.n),
            "e": _uint(numbers.e),
        }
        return {"keys": [key]}


def registered_claims(
    *, issuer: str, audience: str | list[str], user: str, now: datetime
) -> dict[str, object]:
    """The claims every id_token carries (OpenID Connect Core §2)."""
    issued = int(now.timestamp())
    return {
        "iss": issuer,
        "aud": audience,
        "sub": user_subject(user),
        "iat": issued,
        "auth_time": issued,
        "exp": issued + int(ID_TOKEN_LIFETIME.total_seconds()),
    }


def person_claims(user: str, scopes: list[str]) -> dict[str, object]:
    """The standard claims the `email` and `profile` scopes release (Core §5.4)."""
    local = user.partition("@")[0]
    given, _, family = local.replace(".", " ").title().partition(" ")
    family = family or "Practice"
    claims: dict[str, object] = {}
    if "email" in scopes:
        claims |= {"email": user, "email_verified": True}
    if "profile" in scopes:
        claims |= {"given_name": given, "family_name": family, "name": f"{given} {family}"}
    return claims


@cache
def signer() -> IdTokenSigner:
    """The process's signing key, made on first use."""
    return IdTokenSigner()

"""Access tokens (JWT) and refresh tokens (opaque). Pure: no I/O.

Access tokens are HS256 JWTs with the algorithm pinned on verification (no `alg: none`, no RS/HS confusion),
`exp`, `iat` and `sub` required, and a `kid` naming the signing secret so that a secret can be rotated later.
Refresh tokens are 256 random bits; only their SHA-256 is stored.
"""
from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import jwt

from ..protocol.errors import TOKEN_EXPIRED, TOKEN_INVALID, HaptaError

ALGORITHM = "HS256"
LEEWAY = 5  # seconds of clock skew tolerated on exp/iat


def key_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    session_id: str
    expires_at: int


class TokenSigner:
    def __init__(self, secret: str, ttl: int):
        self._secret = secret
        self._kid = key_id(secret)
        self.ttl = ttl

    def issue(self, user_id: str, session_id: str, now: float | None = None) -> tuple[str, int]:
        issued = int(now if now is not None else time.time())
        expires = issued + self.ttl
        token = jwt.encode({"sub": user_id, "sid": session_id, "iat": issued, "exp": expires},
                           self._secret, algorithm=ALGORITHM, headers={"kid": self._kid})
        return token, expires

    def verify(self, token: object) -> AccessClaims:
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise HaptaError(TOKEN_INVALID, "token is not valid")
        try:
            header = jwt.get_unverified_header(token)
            if header.get("kid") != self._kid:
                raise HaptaError(TOKEN_INVALID, "token is not valid")
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM], leeway=LEEWAY,
                                options={"require": ["exp", "iat", "sub", "sid"]})
        except jwt.ExpiredSignatureError:
            raise HaptaError(TOKEN_EXPIRED, "token has expired") from None
        except jwt.PyJWTError:
            raise HaptaError(TOKEN_INVALID, "token is not valid") from None
        if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("sid"), str):
            raise HaptaError(TOKEN_INVALID, "token is not valid")
        return AccessClaims(claims["sub"], claims["sid"], int(claims["exp"]))


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(value: str) -> str:
    """How refresh tokens (and other high-entropy secrets) are kept at rest."""
    return hashlib.sha256(value.encode()).hexdigest()

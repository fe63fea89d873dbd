"""Access tokens (JWT) and refresh tokens (opaque). Pure: no I/O.

Access tokens are HS256 JWTs with the algorithm pinned on verification (no `alg: none`, no RS/HS confusion),
`exp`, `iat` and `sub` required, and a `kid` naming the signing secret so that a secret can be rotated later.
Refresh tokens are 256 random bits; only their SHA-256 is stored. So that two tabs racing with the same refresh
token both end up in one family, each spent token keeps its successor *sealed under itself* (a one-time pad derived
from the spent token): whoever presents the spent token again within the reuse interval can be handed the current
token, and nobody else, the database included, can read it.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

import jwt

from ..clock import Clock, wall
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
    impersonated: bool = False   # minted for an admin acting as the user (auth.impersonate)


class TokenSigner:
    """Signs with the current secret; verifies with it and with retired secrets (named by `kid`), so a secret can
    be rotated without logging everyone out: keep the old one in `retired` until its tokens have expired."""

    def __init__(self, secret: str, ttl: int, retired: tuple[str, ...] = (), *, clock: Clock = wall):
        self._secret = secret
        self._kid = key_id(secret)
        self._keys = {key_id(old): old for old in retired if old}
        self._keys[self._kid] = secret
        self.ttl = ttl
        self.clock = clock   # what expiry is judged by, here and for the sockets that hold these tokens (hub.py)

    def issue(self, user_id: str, session_id: str, now: float | None = None, *, ttl: int | None = None,
              impersonated: bool = False) -> tuple[str, int]:
        issued = int(now if now is not None else self.clock())
        expires = issued + (self.ttl if ttl is None else min(ttl, self.ttl))
        # jti: every token is distinct, even two minted for one session in the same second
        claims = {"sub": user_id, "sid": session_id, "iat": issued, "exp": expires, "jti": secrets.token_urlsafe(12)}
        if impersonated:
            claims["imp"] = True
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM, headers={"kid": self._kid})
        return token, expires

    def verify(self, token: object) -> AccessClaims:
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise HaptaError(TOKEN_INVALID, "token is not valid")
        try:
            header = jwt.get_unverified_header(token)
            secret = self._keys.get(header.get("kid"))   # type: ignore[arg-type]
            if secret is None:
                raise HaptaError(TOKEN_INVALID, "token is not valid")
            # the signature and the claims' presence by PyJWT; the times by this signer's clock, below
            claims = jwt.decode(token, secret, algorithms=[ALGORITHM],
                                options={"require": ["exp", "iat", "sub", "sid"], "verify_exp": False,
                                         "verify_iat": False, "verify_nbf": False})
        except jwt.PyJWTError:
            raise HaptaError(TOKEN_INVALID, "token is not valid") from None
        if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("sid"), str) or \
                not _whole(claims["exp"]) or not _whole(claims["iat"]):
            raise HaptaError(TOKEN_INVALID, "token is not valid")
        now = self.clock()
        if claims["iat"] > now + LEEWAY:   # minted in the future: not by us
            raise HaptaError(TOKEN_INVALID, "token is not valid")
        if claims["exp"] <= now - LEEWAY:
            raise HaptaError(TOKEN_EXPIRED, "token has expired")
        return AccessClaims(claims["sub"], claims["sid"], int(claims["exp"]), claims.get("imp") is True)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def _pad(spent: str) -> bytes:
    return hashlib.sha256(b"hapta refresh seal\0" + spent.encode()).digest()


def seal_successor(spent: str, successor: str) -> bytes:
    """The successor of a spent refresh token, readable only by a holder of the spent one. Each pad is used once
    (a token is spent once), and both tokens are 32 random bytes, so XOR with the pad is a true one-time pad."""
    raw = base64.urlsafe_b64decode(successor + "=")
    return bytes(a ^ b for a, b in zip(raw, _pad(spent)))


def unseal_successor(spent: str, sealed: bytes) -> str:
    raw = bytes(a ^ b for a, b in zip(sealed, _pad(spent)))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hash_secret(value: str) -> str:
    """How refresh tokens (and other high-entropy secrets) are kept at rest."""
    return hashlib.sha256(value.encode()).hexdigest()

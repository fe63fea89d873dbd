"""Access-token logic alone: issue, verify, and the forgeries that must fail."""
import time

import jwt
import pytest

from hapta.auth.tokens import TokenSigner, hash_secret, key_id, new_refresh_token
from hapta.protocol.errors import HaptaError

SECRET = "s" * 40


def code_of(signer, token):
    with pytest.raises(HaptaError) as refused:
        signer.verify(token)
    return refused.value.code


def test_round_trip():
    signer = TokenSigner(SECRET, ttl=60)
    token, expires = signer.issue("user1", "sess1")
    claims = signer.verify(token)
    assert (claims.user_id, claims.session_id, claims.expires_at) == ("user1", "sess1", expires)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT", "kid": key_id(SECRET)}


def test_expired_within_and_past_leeway():
    signer = TokenSigner(SECRET, ttl=60)
    token, _ = signer.issue("u", "s", now=time.time() - 62)   # 2 s past exp: inside the 5 s leeway
    assert signer.verify(token).user_id == "u"
    token, _ = signer.issue("u", "s", now=time.time() - 120)
    assert code_of(signer, token) == "TOKEN_EXPIRED"


def test_forgeries():
    signer = TokenSigner(SECRET, ttl=60)
    now = int(time.time())
    claims = {"sub": "u", "sid": "s", "iat": now, "exp": now + 60}
    kid = {"kid": key_id(SECRET)}
    assert code_of(signer, jwt.encode(claims, "other" * 10, algorithm="HS256", headers=kid)) == "TOKEN_INVALID"
    assert code_of(signer, jwt.encode(claims, SECRET, algorithm="HS384", headers=kid)) == "TOKEN_INVALID"
    assert code_of(signer, jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "old"})) == "TOKEN_INVALID"
    for missing in ("exp", "iat", "sub", "sid"):
        partial = {k: v for k, v in claims.items() if k != missing}
        assert code_of(signer, jwt.encode(partial, SECRET, algorithm="HS256", headers=kid)) == "TOKEN_INVALID"
    assert code_of(signer, jwt.encode({**claims, "sub": 5}, SECRET, algorithm="HS256", headers=kid)) == "TOKEN_INVALID"
    for junk in (None, 5, "", "a.b.c", "x" * 5000):
        assert code_of(signer, junk) == "TOKEN_INVALID"


def test_refresh_tokens_are_random_and_hashed():
    tokens = {new_refresh_token() for _ in range(100)}
    assert len(tokens) == 100 and all(len(t) >= 43 for t in tokens)
    token = next(iter(tokens))
    assert hash_secret(token) != token and len(hash_secret(token)) == 64


class ManualClock:
    """A clock the test moves (hapta/clock.py): expiry is judged without waiting for it."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_expiry_is_judged_by_the_signers_clock():
    clock = ManualClock(1_800_000_000)
    signer = TokenSigner(SECRET, ttl=60, clock=clock)
    token, expires = signer.issue("u", "s")
    assert expires == 1_800_000_060
    clock.now = expires + 4   # inside the 5 s leeway
    assert signer.verify(token).user_id == "u"
    clock.now = expires + 5
    assert code_of(signer, token) == "TOKEN_EXPIRED"
    clock.now = 1_800_000_000 - 100   # minted "in the future" of this clock: not one of ours
    assert code_of(signer, token) == "TOKEN_INVALID"

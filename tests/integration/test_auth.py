"""auth.*: register, login, resume, anon, admin, me — and tokens that must not work."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time

import jwt
import pytest

from hapta.auth.tokens import key_id
from hapta.client import HaptaError
from tests.conftest import ADMIN_KEY, ANON_KEY, PASSWORD

SECRET = "test-secret-" + "x" * 40


async def test_register_returns_a_session_and_signs_in(connect):
    client = await connect()
    name = "r" + secrets.token_hex(4)
    session = await client.call("auth.register", {"email": f"{name.upper()}@Example.com", "password": PASSWORD,
                                                  "username": name})
    assert set(session) == {"user", "token", "expires_at", "refresh_token"}
    assert session["user"]["email"] == f"{name}@example.com"   # stored lowercase
    assert session["user"]["username"] == name
    assert "password_hash" not in session["user"]
    assert session["expires_at"] > time.time()
    me = await client.call("auth.me")
    assert me["user"]["id"] == session["user"]["id"]


async def test_login_by_email_or_username_and_wrong_password(user, connect):
    _, session = await user()
    email, username = session["user"]["email"], session["user"]["username"]
    for identity in (email, username, email.upper()):
        other = await connect()
        logged = await other.call("auth.login", {"identity": identity, "password": PASSWORD})
        assert logged["user"]["id"] == session["user"]["id"]
        assert logged["refresh_token"] != session["refresh_token"]
    for identity, password in ((email, "wrong password"), ("nobody@example.com", PASSWORD)):
        other = await connect()
        with pytest.raises(HaptaError) as refused:
            await other.call("auth.login", {"identity": identity, "password": password})
        assert refused.value.code == "INVALID_CREDENTIALS"
        assert refused.value.message == "identity or password is wrong"   # the same words either way


async def test_register_refusals(user, connect):
    _, session = await user()
    client = await connect()
    cases = [
        ({"email": session["user"]["email"], "password": PASSWORD}, "ALREADY_EXISTS", "email"),
        ({"email": "x" + session["user"]["email"], "password": PASSWORD, "username": session["user"]["username"]},
         "ALREADY_EXISTS", "username"),
        ({"email": "not-an-email", "password": PASSWORD}, "VALIDATION_FAILED", "email"),
        ({"email": "short@example.com", "password": "2short"}, "VALIDATION_FAILED", "password"),
        ({"email": "bad-name@example.com", "password": PASSWORD, "username": "no spaces!"}, "VALIDATION_FAILED",
         "username"),
    ]
    for args, code, field in cases:
        with pytest.raises(HaptaError) as refused:
            await client.call("auth.register", args)
        assert (refused.value.code, refused.value.details) == (code, {"field": field})
    assert await client.call("auth.me") == {"role": "guest"}   # nothing above signed the connection in


async def test_resume_on_another_connection(user, connect):
    _, session = await user()
    other = await connect()
    resumed = await other.call("auth.resume", {"token": session["token"]})
    assert resumed["user"]["id"] == session["user"]["id"] and resumed["expires_at"] == session["expires_at"]
    assert (await other.call("auth.me"))["user"]["email"] == session["user"]["email"]


def _forge(claims: dict, secret: str = SECRET, algorithm: str = "HS256", kid: str | None = None) -> str:
    return jwt.encode(claims, secret, algorithm=algorithm, headers={"kid": kid or key_id(SECRET)})


def _unsigned(claims: dict) -> str:
    def part(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': key_id(SECRET)})}.{part(claims)}."


def _confused(claims: dict, algorithm: str) -> str:
    """A token that names another algorithm but is signed with the HMAC secret (the HS/RS confusion attack)."""
    def part(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    signing_input = f"{part({'alg': algorithm, 'typ': 'JWT', 'kid': key_id(SECRET)})}.{part(claims)}"
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(signature).decode().rstrip("=")


async def test_forged_tokens_are_refused(user, connect):
    _, session = await user()
    now = int(time.time())
    good = {"sub": session["user"]["id"], "sid": jwt.decode(session["token"], options={"verify_signature": False})["sid"],
            "iat": now, "exp": now + 600}
    header, payload, signature = session["token"].split(".")
    tampered_payload = base64.urlsafe_b64encode(json.dumps({**good, "sub": "someone-else"}).encode()).decode().rstrip("=")
    corpus = {
        "alg none": (_unsigned(good), "TOKEN_INVALID"),
        "wrong key": (_forge(good, secret="another-secret-" + "y" * 40), "TOKEN_INVALID"),
        "tampered payload": (f"{header}.{tampered_payload}.{signature}", "TOKEN_INVALID"),
        "expired": (_forge({**good, "iat": now - 7200, "exp": now - 3600}), "TOKEN_EXPIRED"),
        "no exp": (_forge({k: v for k, v in good.items() if k != "exp"}), "TOKEN_INVALID"),
        "unknown session": (_forge({**good, "sid": "nosuchsession12"}), "TOKEN_INVALID"),
        "unknown user": (_forge({**good, "sub": "nosuchuser1234"}), "TOKEN_INVALID"),
        "HS512 instead of HS256": (_forge(good, algorithm="HS512"), "TOKEN_INVALID"),
        "RS256 header, HMAC signature": (_confused(good, "RS256"), "TOKEN_INVALID"),
        "ES256 header, HMAC signature": (_confused(good, "ES256"), "TOKEN_INVALID"),
        "garbage": ("not.a.token", "TOKEN_INVALID"),
        "empty": ("", "TOKEN_INVALID"),
    }
    for name, (token, code) in corpus.items():
        client = await connect()
        with pytest.raises(HaptaError) as refused:
            await client.call("auth.resume", {"token": token})
        assert refused.value.code == code, name
        with pytest.raises(HaptaError) as still_guest:
            await client.call("records.list", {"collection": "posts"})
        assert still_guest.value.code == "UNAUTHENTICATED", name
        assert token == "" or token not in refused.value.message


async def test_anon_and_admin_keys(connect):
    client = await connect()
    for op, args in (("auth.anon", {"apikey": "wrong"}), ("auth.admin", {"key": ANON_KEY})):
        with pytest.raises(HaptaError) as refused:
            await client.call(op, args)
        assert refused.value.code == "INVALID_CREDENTIALS"
    assert await client.call("auth.anon", {"apikey": ANON_KEY}) == {"role": "anon"}
    assert await client.call("auth.me") == {"role": "anon"}
    assert await client.call("auth.admin", {"key": ADMIN_KEY}) == {"role": "admin"}
    assert await client.call("auth.me") == {"role": "admin"}

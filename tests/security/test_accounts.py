"""Identities (issue 11, item 4), limits on guessing and writing (item 9), weak passwords and distinct tokens
(item 15)."""
from __future__ import annotations

import secrets
from pathlib import Path

import asyncpg
import pytest

from hapta.auth.identity import InvalidIdentity, normalize_username, weakness
from hapta.auth.tokens import TokenSigner
from hapta.settings import Settings, SettingsError
from tests.conftest import ADMIN_KEY, PASSWORD
from tests.security.helpers import post, refused


async def test_a_username_can_never_be_another_users_email(user, connect):
    alice, a = await user()
    bob, b = await user()
    taken = await refused(bob.call("records.update", {"collection": "users", "id": b["user"]["id"],
                                                      "data": {"username": a["user"]["email"]}}))
    assert taken.code == "VALIDATION_FAILED" and taken.details == {"field": "username"}
    # the email still names alice, and alice alone
    again = await connect()
    session = await again.call("auth.login", {"identity": a["user"]["email"], "password": PASSWORD})
    assert session["user"]["id"] == a["user"]["id"]


@pytest.mark.parametrize("username", [
    "\u0430lice",          # Cyrillic a
    "ali\u200bce",         # zero-width space
    "al ice",
    "ada@home",
    "x",
    "a" * 33,
    "\uff41\uff44\uff41",  # fullwidth
])
async def test_usernames_are_held_to_one_rule_on_every_path(user, connect, username):
    alice, a = await user()
    updated = await refused(alice.call("records.update", {"collection": "users", "id": a["user"]["id"],
                                                          "data": {"username": username}}))
    assert updated.code == "VALIDATION_FAILED" and updated.details == {"field": "username"}
    fresh = await connect()
    registered = await refused(fresh.call("auth.register", {"email": f"{secrets.token_hex(4)}@example.com",
                                                            "password": PASSWORD, "username": username}))
    assert registered.code == "VALIDATION_FAILED" and registered.details == {"field": "username"}


async def test_a_username_is_stored_as_register_stores_it(user):
    alice, a = await user()
    name = "Ada" + secrets.token_hex(3) + "  "
    updated = await alice.call("records.update", {"collection": "users", "id": a["user"]["id"],
                                                  "data": {"username": name}})
    assert updated["username"] == name.strip().lower()


async def test_the_database_refuses_what_the_gateway_refuses(database, user):
    _, a = await user()
    conn = await asyncpg.connect(database)
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE users SET username = $1 WHERE id = $2", a["user"]["email"], a["user"]["id"])
    finally:
        await conn.close()


async def test_auth_fields_of_users_are_the_gateways(user):
    alice, a = await user()
    for field, value in (("email", "new@example.com"), ("verified", True), ("password_hash", "x")):
        error = await refused(alice.call("records.update", {"collection": "users", "id": a["user"]["id"],
                                                            "data": {field: value}}))
        assert error.code == "VALIDATION_FAILED" and error.details == {"field": field}, field
    me = await alice.call("records.get", {"collection": "users", "id": a["user"]["id"]})
    assert "password_hash" not in me and me["verified"] is False


async def test_password_changes_are_limited(user):
    alice, _ = await user()
    codes = []
    for _ in range(6):
        error = await refused(alice.call("auth.password", {"old": "not my password", "new": "a new long secret"}))
        codes.append(error.code)
    assert codes == ["INVALID_CREDENTIALS"] * 5 + ["RATE_LIMITED"]


async def test_admin_key_guesses_are_limited(connect):
    guesser = await connect()
    codes = [(await refused(guesser.call("auth.admin", {"key": secrets.token_hex(8)}))).code for _ in range(6)]
    assert codes == ["INVALID_CREDENTIALS"] * 5 + ["RATE_LIMITED"]
    # ... the right key too, from that address, until the limit lets go: attempts are counted, not failures
    assert (await refused(guesser.call("auth.admin", {"key": ADMIN_KEY}))).code == "RATE_LIMITED"


async def test_updates_are_limited(user):
    alice, a = await user()
    own = await post(alice, a, "often edited")
    replies = await alice.batch([("records.update", {"collection": "posts", "id": own["id"],
                                                     "data": {"text": f"edit {i}"}}) for i in range(60)])
    limited = [r for r in replies if not isinstance(r, dict)]
    assert limited and all(r.code == "RATE_LIMITED" and r.retry_after > 0 for r in limited)
    assert 40 <= sum(isinstance(r, dict) for r in replies) < 60


@pytest.mark.parametrize("password", ["Passw0rd!", "P@ssw0rd123", "qwerty123456", "iloveyou2", "letmein!!"])
async def test_common_passwords_are_refused(connect, password):
    client = await connect()
    error = await refused(client.call("auth.register", {"email": f"{secrets.token_hex(4)}@example.com",
                                                        "password": password}))
    assert error.code == "VALIDATION_FAILED" and error.details == {"field": "password"}
    assert "too common or too simple" in error.message


def test_password_strength_messages():
    assert weakness("correct horse battery", min_length=8) is None
    assert "at least 8" in weakness("short", min_length=8)
    assert "email or username" in weakness("ada-lovelace-1815", min_length=8, identities=("ada@example.com",))
    assert weakness("x" * 1000 + "Tr0ub4dor&3", min_length=8) is not None   # long input is cut, not slow


def test_usernames_are_normalized_once():
    assert normalize_username("  Ada.L_1 ") == "ada.l_1"
    with pytest.raises(InvalidIdentity):
        normalize_username(None)


def test_every_access_token_is_distinct():
    signer = TokenSigner("s" * 40, 900)
    first, _ = signer.issue("u1", "s1", now=1_800_000_000)
    second, _ = signer.issue("u1", "s1", now=1_800_000_000)
    assert first != second


@pytest.mark.parametrize(("name", "value"), [("HAPTA_ADMIN_KEY", "admin"), ("HAPTA_ADMIN_KEY", "x" * 31),
                                             ("HAPTA_ANON_KEY", "anon")])
def test_production_refuses_short_keys(tmp_path: Path, name, value):
    env = {"HAPTA_ENV": "production", "HAPTA_JWT_SECRET": "j" * 40, "HAPTA_ANON_KEY": "a" * 20,
           "HAPTA_ADMIN_KEY": "k" * 40, name: value}
    with pytest.raises(SettingsError, match=name):
        Settings.load(tmp_path, env)
    Settings.load(tmp_path, {**env, name: "long-enough-" + "z" * 32})

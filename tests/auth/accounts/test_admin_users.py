"""An admin's hand on accounts (the dashboard's Users page): auth.user.* and auth.mfa.reset, and records.delete of
a user. Each reaches the user as the user's own flow would: mails through the real SMTP server (aiosmtpd, conftest)
with links that work, and ended sessions closing their sockets with auth.revoked. Anyone but an admin: FORBIDDEN."""
from __future__ import annotations

import secrets

import pyotp
import pytest

from hapta.client import Client
from tests.auth.accounts.conftest import refused, token_in
from tests.auth.sessions.conftest import until
from tests.conftest import ADMIN_KEY, ANON_KEY, PASSWORD

NEW_PASSWORD = "another fine passphrase"
ADMIN_OPS = [("auth.user.create", {"email": "x@example.com", "password": PASSWORD}),
             ("auth.user.password", {"user": "u", "password": NEW_PASSWORD}),
             ("auth.user.reset", {"user": "u"}), ("auth.user.verify", {"user": "u"}),
             ("auth.user.verify.request", {"user": "u"}), ("auth.mfa.reset", {"user": "u"})]


def address(prefix: str = "d") -> str:
    return f"{prefix}{secrets.token_hex(5)}@example.com"


@pytest.fixture
async def admin(connect) -> Client:
    client = await connect(0)
    await client.call("auth.admin", {"key": ADMIN_KEY})
    return client


async def signed_in(connect, email: str, password: str = PASSWORD, node: int = 1) -> Client:
    client = await connect(node)
    await client.call("auth.login", {"identity": email, "password": password})
    return client


async def revoked(client: Client, reason: str) -> None:
    """The socket hears auth.revoked with that reason, then is closed with 1008 (policy)."""
    assert await client.next_event(timeout=10) == {"event": "auth.revoked", "data": {"reason": reason}}

    async def closed() -> bool:
        return client.close_code is not None
    await until(closed)
    assert client.close_code == 1008


async def test_anyone_but_an_admin_is_refused(connect):
    user = await connect(0)
    await user.call("auth.register", {"email": address(), "password": PASSWORD})
    anon = await connect(1)
    await anon.call("auth.anon", {"apikey": ANON_KEY})
    guest = await connect(0)
    for client, refusal in ((user, "FORBIDDEN"), (anon, "FORBIDDEN"), (guest, "UNAUTHENTICATED")):
        for op, args in ADMIN_OPS:
            assert await refused(client.call(op, args)) == refusal, op


async def test_a_user_made_with_a_password_signs_in(connect, admin):
    email = address("made")
    made = await admin.call("auth.user.create", {"email": email, "password": PASSWORD, "username": email[:11],
                                                 "verified": True})
    assert made["mailed"] is False
    user = made["user"]
    assert user["email"] == email and user["verified"] is True and user["username"] == email[:11]
    session = await (await connect(1)).call("auth.login", {"identity": email[:11], "password": PASSWORD})
    assert session["user"]["id"] == made["user"]["id"]
    assert await refused(admin.call("auth.user.create", {"email": email, "password": PASSWORD})) == "ALREADY_EXISTS"
    assert await refused(admin.call("auth.user.create", {"email": address(), "password": "short"})) == \
        "VALIDATION_FAILED"


async def test_a_user_made_without_a_password_is_mailed_a_link_to_choose_one(connect, admin, smtp):
    inbox, _ = smtp
    email = address("invited")
    made = await admin.call("auth.user.create", {"email": email})
    assert made["mailed"] is True and made["user"]["verified"] is False
    mail = await inbox.take(email, "account")
    await (await connect(1)).call("auth.reset", {"token": token_in(mail, "reset"), "password": NEW_PASSWORD})
    session = await (await connect(0)).call("auth.login", {"identity": email, "password": NEW_PASSWORD})
    assert session["user"]["id"] == made["user"]["id"]
    assert session["user"]["verified"] is True   # the link proved the address


async def test_setting_a_password_ends_every_session_as_a_reset_does(connect, admin, nodes):
    email = address("setpw")
    user = (await admin.call("auth.user.create", {"email": email, "password": PASSWORD}))["user"]
    there = await signed_in(connect, email)
    assert await refused(admin.call("auth.user.password", {"user": user["id"], "password": "short"})) == \
        "VALIDATION_FAILED"
    assert await admin.call("auth.user.password", {"user": user["id"], "password": NEW_PASSWORD}) == {"revoked": 1}
    await revoked(there, "password set by an admin")   # on the other process
    assert await refused((await connect(0)).call("auth.login", {"identity": email, "password": PASSWORD})) == \
        "INVALID_CREDENTIALS"
    await signed_in(connect, email, NEW_PASSWORD)
    assert await refused(admin.call("auth.user.password", {"user": "nosuchuser12345", "password": NEW_PASSWORD})) \
        == "NOT_FOUND"

    async def logged() -> bool:   # the admin's action, whom it was done to, never the password
        return f"admin auth.user.password {user['id']} from" in nodes[0].log_text()
    await until(logged)
    assert NEW_PASSWORD not in nodes[0].log_text() and NEW_PASSWORD not in nodes[1].log_text()


async def test_a_reset_mail_sent_by_an_admin_works(connect, admin, smtp):
    inbox, _ = smtp
    email = address("reset")
    user = (await admin.call("auth.user.create", {"email": email, "password": PASSWORD}))["user"]
    there = await signed_in(connect, email)
    assert await admin.call("auth.user.reset", {"user": user["id"]}) == {"sent": True}
    mail = await inbox.take(email, "Reset")
    await (await connect(0)).call("auth.reset", {"token": token_in(mail, "reset"), "password": NEW_PASSWORD})
    await revoked(there, "password reset")
    await signed_in(connect, email, NEW_PASSWORD)
    assert await refused(admin.call("auth.user.reset", {"user": "nosuchuser12345"})) == "NOT_FOUND"


async def test_verifying_and_a_verification_mail(connect, admin, smtp):
    inbox, _ = smtp
    email = address("verify")
    user = (await admin.call("auth.user.create", {"email": email, "password": PASSWORD}))["user"]
    assert await admin.call("auth.user.verify.request", {"user": user["id"]}) == {"sent": True}
    mail = await inbox.take(email, "Confirm")
    assert await (await connect(1)).call("auth.verify", {"token": token_in(mail, "verify"), "password": PASSWORD}) \
        == {"verified": True}
    assert (await (await signed_in(connect, email)).call("auth.me"))["user"]["verified"] is True
    assert await admin.call("auth.user.verify.request", {"user": user["id"]}) == {"sent": False}

    other = (await admin.call("auth.user.create", {"email": address("vouched"), "password": PASSWORD}))["user"]
    assert (await admin.call("auth.user.verify", {"user": other["id"]}))["user"]["verified"] is True
    assert await admin.call("auth.user.verify.request", {"user": other["id"]}) == {"sent": False}
    for op in ("auth.user.verify", "auth.user.verify.request"):
        assert await refused(admin.call(op, {"user": "nosuchuser12345"})) == "NOT_FOUND"


async def test_removing_a_second_factor_ends_the_users_sessions(connect, admin, smtp):
    inbox, _ = smtp
    email = address("factor")
    user = (await admin.call("auth.user.create", {"email": email, "password": PASSWORD}))["user"]
    there = await signed_in(connect, email)
    enrolled = await there.call("auth.mfa.enroll")
    await there.call("auth.mfa.confirm", {"code": pyotp.TOTP(enrolled["secret"]).now()})
    assert await refused((await connect(0)).call("auth.login", {"identity": email, "password": PASSWORD})) == \
        "MFA_REQUIRED"
    assert await admin.call("auth.mfa.reset", {"user": user["id"]}) == {"removed": True}
    await revoked(there, "second factor removed by an admin")
    await inbox.take(email, "second factor")
    await signed_in(connect, email)   # no second factor asked


async def test_deleting_a_user_closes_their_sockets_and_takes_their_records(connect, admin):
    """records.delete of a user, as the dashboard sends it: the row goes, and with it (ON DELETE CASCADE in the
    demo app's migrations) their posts, comments, likes and messages, and their sessions, whose sockets are told."""
    email = address("gone")
    user = (await admin.call("auth.user.create", {"email": email, "password": PASSWORD}))["user"]
    there = await signed_in(connect, email)
    post = await there.call("records.create", {"collection": "posts", "data": {"author": user["id"], "text": "bye",
                                                                                "public": True}})
    assert await admin.call("records.delete", {"collection": "users", "id": user["id"]}) == {"id": user["id"]}
    await revoked(there, "user deleted")
    assert await refused(admin.call("records.get", {"collection": "posts", "id": post["id"]})) == "NOT_FOUND"
    assert await refused((await connect(0)).call("auth.login", {"identity": email, "password": PASSWORD})) == \
        "INVALID_CREDENTIALS"

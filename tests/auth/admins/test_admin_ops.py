"""Admin accounts over the request path (the in-process gateway on a real PostgreSQL): signing in with email,
password and a real authenticator's code (pyotp), resuming the session without a sign-in attempt, signing out,
the Admins page's ops, and that nobody but an admin reaches them."""
from __future__ import annotations

import secrets
import time

import pyotp
import pytest

from hapta.auth.admins import AdminAccounts
from hapta.principal import ADMIN
from hapta.protocol.errors import HaptaError
from tests.conftest import PASSWORD


async def refused(coroutine) -> HaptaError:
    with pytest.raises(HaptaError) as error:
        await coroutine
    return error.value


async def new_admin(gateway, totp: bool = True) -> tuple[str, pyotp.TOTP | None]:
    email = f"a{secrets.token_hex(5)}@example.com"
    created = await gateway.admins.create(email, PASSWORD, totp=totp)
    return email, pyotp.TOTP(created["totp"]["secret"]) if totp else None


async def test_signing_in_binds_the_admin_by_name(harness):
    email, totp = await new_admin(harness.gateway)
    device = harness.device()
    signed = await device.call("auth.admin.signin", {"email": email.upper(), "password": PASSWORD,
                                                      "code": totp.now()})
    assert signed["role"] == ADMIN and signed["admin"] == {"email": email}
    assert len(signed["token"]) >= 43 and signed["expires_at"] > time.time() + 600
    # who logs say acted: the account, not "admin key"
    assert device.peer.principal.name == email and device.peer.principal.label == email
    assert device.peer.principal.expires_at == signed["expires_at"]
    listed = await device.call("admins.list")
    assert listed["you"] == email
    mine = next(item for item in listed["items"] if item["email"] == email)
    assert mine["totp"] is True and mine["sessions"] == 1 and mine["last_sign_in"] is not None
    assert "collections" in await device.call("admin.schema")   # every admin op, as with the key
    # the token is kept hashed: nothing in the database equals it
    assert not await harness.gateway.db.fetchval("SELECT count(*) FROM hapta.admin_sessions WHERE token_hash = $1",
                                                 signed["token"])


async def test_a_wrong_part_gets_one_answer_and_a_code_works_once(harness):
    email, totp = await new_admin(harness.gateway)
    code = totp.now()
    wrong_code = f"{(int(code) + 1) % 10 ** 6:06d}"
    for args in ({"email": email, "password": PASSWORD + "x", "code": code},
                 {"email": "nobody-" + email, "password": PASSWORD, "code": code},
                 {"email": email, "password": PASSWORD, "code": wrong_code},
                 {"email": email, "password": PASSWORD}):   # a factor in force and no code
        device = harness.device()
        error = await refused(device.call("auth.admin.signin", args))
        assert (error.code, error.message) == ("INVALID_CREDENTIALS", "email, password or code is wrong"), args
        assert device.peer.principal.role == "guest"
    await harness.device().call("auth.admin.signin", {"email": email, "password": PASSWORD, "code": code})
    replayed = await refused(harness.device().call("auth.admin.signin", {"email": email, "password": PASSWORD,
                                                                         "code": code}))
    assert replayed.code == "INVALID_CREDENTIALS"   # seen once, it is spent: a shoulder-surfed code is worth nothing
    bad = await refused(harness.device().call("auth.admin.signin", {"email": email, "password": PASSWORD,
                                                                    "code": "1" * 17}))
    assert bad.code == "BAD_REQUEST"


async def test_resuming_is_no_sign_in_attempt(harness):
    """A reload resumes the session as often as it likes; only sign-ins count against the 5 a minute per address."""
    email, totp = await new_admin(harness.gateway)
    tab = harness.device()
    token = (await tab.call("auth.admin.signin", {"email": email, "password": PASSWORD, "code": totp.now()}))["token"]
    address = tab.peer.address
    for _ in range(8):   # reloads from the same address
        reloaded = harness.device()
        reloaded.peer.address = address
        resumed = await reloaded.call("auth.admin.resume", {"token": token})
        assert resumed["admin"] == {"email": email} and reloaded.peer.principal.name == email
    for attempt in range(4):   # the sign-in above was one of five
        again = harness.device()
        again.peer.address = address
        assert (await refused(again.call("auth.admin.signin", {"email": email, "password": "wrong " * 3}))).code \
            == "INVALID_CREDENTIALS", attempt
    over = harness.device()
    over.peer.address = address
    assert (await refused(over.call("auth.admin.signin", {"email": email, "password": PASSWORD}))).code \
        == "RATE_LIMITED"
    assert (await refused(over.call("auth.admin.resume", {"token": token[:-2] + "xx"}))).code == "TOKEN_INVALID"


async def test_signing_out_ends_the_session_on_every_connection(harness):
    email, totp = await new_admin(harness.gateway)
    tab = harness.device()
    token = (await tab.call("auth.admin.signin", {"email": email, "password": PASSWORD, "code": totp.now()}))["token"]
    other = harness.device()   # the dashboard's impersonating connection signs in with the same session
    await other.call("auth.admin.resume", {"token": token})
    assert await tab.call("auth.logout") == {}
    assert tab.peer.principal.role == "guest"
    revoked = await other.event("auth.revoked")
    assert revoked["data"] == {"reason": "signed out"} and other.closed[0] == 1008
    assert (await refused(harness.device().call("auth.admin.resume", {"token": token}))).code == "TOKEN_INVALID"


async def test_a_session_ends_when_idle_or_too_old(harness):
    email, totp = await new_admin(harness.gateway)
    db = harness.gateway.db
    token = (await harness.device().call("auth.admin.signin", {"email": email, "password": PASSWORD,
                                                                "code": totp.now()}))["token"]
    await harness.device().call("auth.admin.resume", {"token": token})
    # older than the absolute lifetime: no resume makes it live again
    await db.execute("UPDATE hapta.admin_sessions SET created = now() - interval '13 hours' WHERE admin_id = "
                     "(SELECT id FROM hapta.admins WHERE email = $1)", email)
    assert (await refused(harness.device().call("auth.admin.resume", {"token": token}))).code == "TOKEN_INVALID"
    await db.execute("UPDATE hapta.admin_sessions SET created = now(), expires_at = now() - interval '1 second' "
                     "WHERE admin_id = (SELECT id FROM hapta.admins WHERE email = $1)", email)
    assert (await refused(harness.device().call("auth.admin.resume", {"token": token}))).code == "TOKEN_INVALID"


async def test_the_admins_page_ops(harness, caplog):
    caplog.set_level("INFO", logger="hapta.admins")
    email, totp = await new_admin(harness.gateway)
    me = harness.device()
    await me.call("auth.admin.signin", {"email": email, "password": PASSWORD, "code": totp.now()})
    other = f"b{secrets.token_hex(5)}@example.com"
    created = await me.call("admins.create", {"email": other, "password": PASSWORD})
    assert created["email"] == other and created["totp"]["uri"].startswith("otpauth://totp/")
    assert (await refused(me.call("admins.create", {"email": other, "password": PASSWORD}))).code == "ALREADY_EXISTS"
    weak = await refused(me.call("admins.create", {"email": "c" + other, "password": "short"}))
    assert weak.code == "VALIDATION_FAILED" and weak.details == {"field": "password"}
    assert (await refused(me.call("admins.create", {"email": "not an email", "password": PASSWORD}))).details \
        == {"field": "email"}
    # the other admin signs in, then their factor is reset: their session ends, the old factor no longer works
    theirs = harness.device()
    old = pyotp.TOTP(created["totp"]["secret"])
    await theirs.call("auth.admin.signin", {"email": other, "password": PASSWORD, "code": old.now()})
    fresh = await me.call("admins.totp.reset", {"email": other})
    assert fresh["secret"] != created["totp"]["secret"]
    assert (await theirs.event("auth.revoked"))["data"] == {"reason": "second factor reset"}
    assert (await refused(harness.device().call("auth.admin.signin", {
        "email": other, "password": PASSWORD, "code": old.at(time.time() + 30)}))).code == "INVALID_CREDENTIALS"
    await harness.device().call("auth.admin.signin", {"email": other, "password": PASSWORD,
                                                      "code": pyotp.TOTP(fresh["secret"]).now()})
    assert (await refused(me.call("admins.totp.reset", {"email": "nobody@example.com"}))).code == "NOT_FOUND"
    # resetting one's own factor keeps one's own session
    await me.call("admins.totp.reset", {"email": email})
    assert (await me.call("admins.list"))["you"] == email
    # not yourself; another, yes
    assert (await refused(me.call("admins.delete", {"email": email}))).code == "FORBIDDEN"
    await me.call("admins.delete", {"email": other})
    # who did it, by name; never a password, token or code
    assert f"admin account {other} created by {email}" in caplog.text
    assert f"admin account {other} deleted by {email}" in caplog.text
    assert PASSWORD not in caplog.text and fresh["secret"] not in caplog.text
    assert other not in [item["email"] for item in (await me.call("admins.list"))["items"]]
    assert (await refused(me.call("admins.delete", {"email": other}))).code == "NOT_FOUND"
    # the admin key is no account: it may delete any, and is "you": null
    key = await harness.admin()
    assert (await key.call("admins.list"))["you"] is None
    await key.call("admins.delete", {"email": email})
    assert (await me.event("auth.revoked"))["data"] == {"reason": "admin account deleted"}


async def test_nobody_but_an_admin_reaches_them(harness):
    ops = [("admins.list", None), ("admins.create", {"email": "x@example.com", "password": PASSWORD}),
           ("admins.delete", {"email": "x@example.com"}), ("admins.totp.reset", {"email": "x@example.com"})]
    for device in (await harness.anon(), await harness.user()):
        for op, args in ops:
            assert (await refused(device.call(op, args))).code == "FORBIDDEN", (op, device.peer.principal.role)
    guest = harness.device()
    for op, args in ops:
        assert (await refused(guest.call(op, args))).code == "UNAUTHENTICATED", op


async def test_production_refuses_an_admin_without_a_second_factor(harness):
    """An account made without one in development cannot sign in once the gateway runs in production."""
    email, _ = await new_admin(harness.gateway, totp=False)
    development = await harness.device().call("auth.admin.signin", {"email": email, "password": PASSWORD})
    assert development["role"] == ADMIN
    production = AdminAccounts(harness.gateway.db, require_totp=True)
    error = await refused(production.sign_in("127.0.0.1", email, PASSWORD, None))
    assert error.code == "FORBIDDEN" and "totp-reset" in error.message
    assert (await refused(production.create("p" + email, PASSWORD, totp=False))).details == {"field": "totp"}


async def test_resuming_on_the_same_connection_renews_it(harness):
    """What the dashboard does on `auth.expiring`: the session and the connection's admin role live on."""
    email, totp = await new_admin(harness.gateway)
    tab = harness.device()
    signed = await tab.call("auth.admin.signin", {"email": email, "password": PASSWORD, "code": totp.now()})
    await harness.gateway.db.execute("UPDATE hapta.admin_sessions SET expires_at = now() + interval '30 seconds' "
                                     "WHERE admin_id = (SELECT id FROM hapta.admins WHERE email = $1)", email)
    renewed = await tab.call("auth.admin.resume", {"token": signed["token"]})
    assert renewed["expires_at"] >= time.time() + 14 * 60
    assert tab.peer.principal.expires_at == renewed["expires_at"] and tab.peer.principal.name == email
    assert (await tab.call("admins.list"))["you"] == email

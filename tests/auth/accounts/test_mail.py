"""Accounts by mail, end to end: a real SMTP server in this process (aiosmtpd) receives what the gateway sends.
Email verification (rules and filters read @user.verified), password reset (the same answer for unknown emails;
every session of the account ends, on every process), and tokens refused when wrong, spent or expired."""
from __future__ import annotations

import asyncio
import email
import re
import secrets
import time
from email import policy

import asyncpg
import pytest

from hapta.client import Client
from hapta.protocol.errors import HaptaError
from tests.auth.accounts.conftest import code_in, refused, register, token_in
from tests.conftest import PASSWORD, gateway_env
from tests.services import GatewayProcess, create_database, drop_database, next_loopback, write_app


async def test_an_email_is_verified_by_the_link_it_receives(connect, smtp):
    inbox, _ = smtp
    client = await connect()
    address, session = await register(client)
    assert session["user"]["verified"] is False
    await client.call("records.create", {"collection": "posts", "data": {
        "author": session["user"]["id"], "text": "verified author", "public": False}})
    mine = {"collection": "posts", "filter": f'@user.verified = true && author = "{session["user"]["id"]}"'}
    assert (await client.call("records.list", mine))["items"] == []   # not verified yet
    assert await client.call("auth.verify.request") == {"sent": True}
    message = await inbox.to(address)
    assert message["From"] == "Hapta Tests <tests@example.com>" and "Confirm" in message["Subject"]
    token = token_in(message, "verify")
    assert await refused(client.call("auth.verify", {"token": token[:-2] + "xx"})) == "TOKEN_INVALID"
    assert await client.call("auth.verify", {"token": token}) == {"verified": True}
    assert (await client.call("auth.me"))["user"]["verified"] is True
    assert await refused(client.call("auth.verify", {"token": token})) == "TOKEN_INVALID"   # single use
    assert await client.call("auth.verify.request") == {"sent": False}                     # nothing left to do
    # rules and filters read @user.verified on this very connection, and on a new one
    assert len((await client.call("records.list", mine))["items"]) == 1
    again = await connect(1)
    await again.call("auth.resume", {"token": session["token"]})
    assert len((await again.call("records.list", mine))["items"]) == 1


async def test_a_reset_ends_every_session_and_answers_alike_for_unknown_emails(connect, smtp):
    inbox, _ = smtp
    phone = await connect(0)
    address, session = await register(phone)
    laptop = await connect(1)   # the same account on the other process
    await laptop.call("auth.resume", {"token": session["token"]})

    stranger = f"nobody-{secrets.token_hex(4)}@example.com"
    asking = await connect()
    assert await asking.call("auth.reset.request", {"email": stranger}) == {}
    assert await asking.call("auth.reset.request", {"email": address.upper()}) == {}   # the same answer
    message = await inbox.to(address)
    assert not any(stranger in recipients for recipients, _ in inbox.mails)   # nothing went to the unknown one
    token = token_in(message, "reset")

    assert await refused(asking.call("auth.reset", {"token": token, "password": "password"})) == "VALIDATION_FAILED"
    assert await asking.call("auth.reset", {"token": token, "password": "a brand new passphrase"}) == {}
    for socket in (phone, laptop):   # on both processes
        event = await socket.next_event(timeout=5)
        assert event == {"event": "auth.revoked", "data": {"reason": "password reset"}}
    assert await refused(asking.call("auth.reset", {"token": token, "password": "another new passphrase"})) \
        == "TOKEN_INVALID"   # spent
    fresh = await connect()
    assert await refused(fresh.call("auth.login", {"identity": address, "password": PASSWORD})) == \
        "INVALID_CREDENTIALS"
    assert (await fresh.call("auth.login", {"identity": address, "password": "a brand new passphrase"}))["user"][
        "email"] == address


async def test_an_expired_reset_token_is_refused(connect, smtp, mail_database):
    inbox, _ = smtp
    client = await connect()
    address, _ = await register(client)
    await client.call("auth.reset.request", {"email": address})
    token = token_in(await inbox.to(address), "reset")
    conn = await asyncpg.connect(mail_database)
    try:
        await conn.execute("UPDATE hapta.account_tokens SET expires_at = now() - interval '1 second' "
                           "WHERE user_id = (SELECT id FROM users WHERE email = $1)", address)
    finally:
        await conn.close()
    assert await refused(client.call("auth.reset", {"token": token, "password": "a brand new passphrase"})) \
        == "TOKEN_INVALID"


async def test_without_smtp_mails_are_files_and_their_links_are_logged(pg_admin, tmp_path):
    """The embedded default: no SMTP_URL, so each mail is an .eml in HAPTA_DATA_DIR/mail and, outside
    production, its link is in the log. The link copied from the file opened as text works (no quoted-printable
    `#reset=3D...`)."""
    database = await create_database(pg_admin)   # (as above: no other gateway sends this outbox)
    process = GatewayProcess(gateway_env(database, HAPTA_DATA_DIR=str(tmp_path)), drop=("SMTP_URL",)).start()
    try:
        async with await Client.connect(process.url, local_addr=(next_loopback(), 0)) as client:
            address, _ = await register(client)
            await client.call("auth.reset.request", {"email": address})
            deadline = time.monotonic() + 20
            while not list((tmp_path / "mail").glob("*.eml")):
                assert time.monotonic() < deadline, "no mail file was written"
                await asyncio.sleep(0.05)
            [path] = list((tmp_path / "mail").glob("*.eml"))
            message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            assert message["To"] == address
            link = re.search(r"(\S+#reset=\S+)", message.get_body(preferencelist=("plain",)).get_content()).group(1)
            assert link in process.log_text()
            copied = re.search(r"(\S+#reset=\S+)", path.read_text()).group(1)
            assert copied == link
            await client.call("auth.reset", {"token": copied.partition("#reset=")[2],
                                             "password": "a brand new passphrase"})
    finally:
        process.stop()
        await drop_database(pg_admin, database)


async def test_a_one_time_code_signs_in_once_and_guessing_burns_it(connect, smtp):
    inbox, _ = smtp
    client = await connect()
    address, _ = await register(client)
    await client.call("auth.logout")
    stranger = f"nobody-{secrets.token_hex(4)}@example.com"
    assert await client.call("auth.otp.request", {"email": stranger}) == {}
    assert await client.call("auth.otp.request", {"email": address}) == {}
    code = code_in(await inbox.to(address))
    assert not any(stranger in recipients for recipients, _ in inbox.mails)
    wrong = f"{(int(code) + 1) % 10 ** 6:06d}"
    assert await refused(client.call("auth.otp", {"email": address, "code": wrong})) == "INVALID_CREDENTIALS"
    session = await client.call("auth.otp", {"email": address, "code": code})
    assert session["user"]["email"] == address and session["user"]["verified"] is True
    assert await refused(client.call("auth.otp", {"email": address, "code": code})) == "INVALID_CREDENTIALS"

    # a second code, guessed at: five wrong guesses burn it, and then even the right one fails
    inbox.mails.clear()
    await client.call("auth.otp.request", {"email": address})
    code = code_in(await inbox.to(address))
    for n in range(5):
        guess = f"{(int(code) + 1 + n) % 10 ** 6:06d}"
        assert await refused(client.call("auth.otp", {"email": address, "code": guess})) == "INVALID_CREDENTIALS"
    assert await refused(client.call("auth.otp", {"email": address, "code": code})) == "INVALID_CREDENTIALS"


async def test_an_email_change_is_confirmed_from_the_new_address_and_the_old_one_is_told(connect, smtp):
    inbox, _ = smtp
    client = await connect()
    old, session = await register(client)
    new = f"n{secrets.token_hex(5)}@example.com"
    assert await client.call("auth.email.change", {"email": new, "password": PASSWORD}) == {}
    assert (await client.call("auth.me"))["user"]["email"] == old   # nothing changes before the link is followed
    token = token_in(await inbox.to(new), "email")
    other = await connect()
    changed = await other.call("auth.email.confirm", {"token": token})   # from any device, even signed out
    assert changed["user"]["email"] == new and changed["user"]["verified"] is True
    told = await inbox.to(old)
    assert new in told.get_body(preferencelist=("plain",)).get_content()
    assert await refused(other.call("auth.email.confirm", {"token": token})) == "TOKEN_INVALID"
    assert (await client.call("auth.me"))["user"]["email"] == new
    fresh = await connect()
    assert (await fresh.call("auth.login", {"identity": new, "password": PASSWORD}))["user"]["id"] == \
        session["user"]["id"]


async def test_require_verified_holds_back_an_unverified_user(mail_database, smtp, tmp_path):
    """With App.require_verified, registering mails the link and signs nobody in; signed in, an unverified user
    may call only auth.* and ping until the link is followed on that connection."""
    inbox, url = smtp
    folder = tmp_path / "app"
    config = write_app(folder, """
        import dataclasses, runpy
        app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"], require_verified=True)
    """)
    process = GatewayProcess(gateway_env(mail_database, SMTP_URL=url, HAPTA_PUBLIC_URL="https://app.example.com"),
                             config=config).start()
    try:
        async with await Client.connect(process.url, local_addr=(next_loopback(), 0)) as client:
            address = f"m{secrets.token_hex(5)}@example.com"
            assert await client.call("auth.register", {"email": address, "password": PASSWORD}) == \
                {"check_mail": True}
            assert await client.call("auth.me") == {"role": "guest"}   # registering signed nobody in
            await client.call("auth.login", {"identity": address, "password": PASSWORD})
            with pytest.raises(HaptaError) as held:
                await client.call("records.list", {"collection": "posts"})
            assert held.value.code == "FORBIDDEN" and held.value.details == {"reason": "unverified"}
            assert "time" in await client.call("ping")
            assert await client.call("auth.verify", {"token": token_in(await inbox.to(address), "verify")}) == \
                {"verified": True}   # followed where its holder is signed in: nothing is taken over
            assert (await client.call("records.list", {"collection": "posts"}))["page"] == 1
    finally:
        process.stop()

"""OAuth2 through the socket: the socket asks, the browser signs in, the callback may land on another process,
and the socket that asked receives its Session as an event."""
from __future__ import annotations

import secrets
import time
import urllib.parse

import asyncpg
import pyotp
import pytest

from hapta.auth.oauth2 import challenge_of
from hapta.auth.tokens import hash_secret
from hapta.protocol.errors import HaptaError
from tests.conftest import ADMIN_KEY
from tests.auth.sessions.conftest import PUBLIC_URL, browse_async, until


def new_identity(provider, verified: bool = True) -> dict:
    name = "o" + secrets.token_hex(5)
    provider.user = {"sub": name, "email": f"{name}@example.com", "email_verified": verified}
    return provider.user


async def start(client, provider_name: str = "test") -> dict:
    begun = await client.call("auth.oauth2", {"provider": provider_name})
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(begun["url"]).query))
    assert query["state"] == begun["state"] and query["code_challenge_method"] == "S256"
    assert query["redirect_uri"] == PUBLIC_URL + "/oauth2/callback"
    return begun


async def sign_in_at_provider(begun: dict) -> str:
    """The browser at the provider: it redirects back with a code (or an error). Returns the callback URL."""
    status, headers, _ = await browse_async(begun["url"])
    assert status == 302
    return headers["Location"]


async def users_with_email(pair, open_client, email: str) -> int:
    admin = await open_client(pair[0])
    await admin.call("auth.admin", {"key": ADMIN_KEY})
    page = await admin.call("records.list", {"collection": "users", "filter": f'email = "{email}"', "count": True})
    return page["total"]


def test_pkce_challenge_is_rfc_7636_s256():
    assert challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


async def test_sign_in_lands_on_another_process_and_reaches_the_socket(pair, provider, open_client):
    identity = new_identity(provider)
    socket = await open_client(pair[0])
    callback = await sign_in_at_provider(await start(socket))
    status, _, page = await browse_async(callback, pair[1])   # the load balancer picked the other process
    assert status == 200 and "signed in" in page
    event = await socket.next_event(timeout=10)
    assert event["event"] == "auth.oauth2"
    session = event["data"]
    assert session["user"]["email"] == identity["email"] and session["refresh_token"] and session["token"]
    assert (await socket.call("auth.me"))["user"]["id"] == session["user"]["id"]
    # The same provider account signs in to the same user next time.
    again = await open_client(pair[1])
    status, _, _ = await browse_async(await sign_in_at_provider(await start(again)), pair[0])
    assert status == 200
    assert (await again.next_event(timeout=10))["data"]["user"]["id"] == session["user"]["id"]


async def test_replayed_and_foreign_states_are_refused(pair, provider, open_client):
    new_identity(provider)
    socket = await open_client(pair[0])
    callback = await sign_in_at_provider(await start(socket))
    assert (await browse_async(callback, pair[0]))[0] == 200
    first = await socket.next_event(timeout=10)
    replay_status, _, replay_page = await browse_async(callback, pair[1])
    assert replay_status == 400 and "already used" in replay_page
    foreign = callback.replace(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))["state"],
                               secrets.token_urlsafe(32))
    assert (await browse_async(foreign, pair[0]))[0] == 400
    # The replay started nothing: the user still has exactly the one session of the first sign-in.
    sessions = (await socket.call("auth.sessions"))["items"]
    assert [item["id"] for item in sessions] == [item["id"] for item in sessions if item["current"]]
    assert first["data"]["user"]["id"]


async def test_a_failing_provider_gives_an_error_event_and_creates_nothing(pair, provider, open_client):
    identity = new_identity(provider)
    provider.mode = "token_error"
    try:
        socket = await open_client(pair[0])
        status, _, _ = await browse_async(await sign_in_at_provider(await start(socket)), pair[1])
    finally:
        provider.mode = "ok"
    assert status == 400
    event = await socket.next_event(timeout=10)
    assert event["event"] == "auth.oauth2" and event["data"]["error"]["code"] == "UNAVAILABLE"
    assert await users_with_email(pair, open_client, identity["email"]) == 0
    assert await socket.call("auth.me") == {"role": "guest"}


async def test_a_user_who_refuses_at_the_provider(pair, provider, open_client):
    identity = new_identity(provider)
    provider.mode = "deny"
    try:
        socket = await open_client(pair[1])
        callback = await sign_in_at_provider(await start(socket))
    finally:
        provider.mode = "ok"
    assert (await browse_async(callback, pair[0]))[0] == 400
    event = await socket.next_event(timeout=10)
    assert event["data"]["error"]["code"] == "INVALID_CREDENTIALS"
    assert await users_with_email(pair, open_client, identity["email"]) == 0


async def test_an_existing_email_is_not_taken_over_by_an_untrusted_provider(pair, provider, account, open_client):
    _, session, credentials = await account(pair[0])
    provider.user = {"sub": "x" + secrets.token_hex(5), "email": credentials["email"], "email_verified": False}
    socket = await open_client(pair[1])
    callback = await sign_in_at_provider(await start(socket, "untrusting"))
    assert (await browse_async(callback, pair[1]))[0] == 400
    event = await socket.next_event(timeout=10)
    assert event["data"]["error"]["code"] == "ALREADY_EXISTS"
    assert await socket.call("auth.me") == {"role": "guest"}
    assert await users_with_email(pair, open_client, credentials["email"]) == 1


async def test_a_verified_email_from_a_trusted_provider_links_the_account(pair, provider, account, open_client):
    _, session, credentials = await account(pair[0])
    provider.user = {"sub": "v" + secrets.token_hex(5), "email": credentials["email"], "email_verified": True}
    socket = await open_client(pair[1])
    assert (await browse_async(await sign_in_at_provider(await start(socket)), pair[0]))[0] == 200
    event = await socket.next_event(timeout=10)
    assert event["data"]["user"]["id"] == session["user"]["id"]


async def test_unknown_provider(pair, open_client):
    socket = await open_client(pair[0])
    with pytest.raises(HaptaError) as refused:
        await socket.call("auth.oauth2", {"provider": "nosuch"})
    assert refused.value.code == "BAD_REQUEST" and refused.value.details == {"providers": ["test", "untrusting"]}


async def signed_in_through(provider, open_client, gateway, provider_name: str = "test") -> dict:
    """A sign-in at `provider` for its current user, finished in the browser; the Session the socket receives."""
    socket = await open_client(gateway)
    status, _, _ = await browse_async(await sign_in_at_provider(await start(socket, provider_name)), gateway)
    event = await socket.next_event(timeout=10)
    assert event["event"] == "auth.oauth2", event
    return {"status": status, "socket": socket, **event["data"]}


async def test_a_pre_registered_address_is_taken_over_by_its_verified_owner(pair, provider, account, open_client):
    """Account pre-hijacking (issue 11, item 2): someone registers the victim's address with a password of theirs
    and waits. When the victim signs in through a provider that vouches for the address, the account becomes
    theirs alone: the squatter's password no longer opens it and the squatter's sessions end."""
    squatter, session, credentials = await account(pair[0])
    provider.user = {"sub": "victim-" + secrets.token_hex(4), "email": credentials["email"], "email_verified": True}
    victim = await signed_in_through(provider, open_client, pair[1])
    assert victim["status"] == 200 and victim["user"]["id"] == session["user"]["id"]
    assert victim["user"]["verified"] is True
    revoked = await squatter.next_event(timeout=10)
    assert revoked["event"] == "auth.revoked"
    with pytest.raises(HaptaError) as stale:
        await (await open_client(pair[0])).call("auth.refresh", {"refresh_token": session["refresh_token"]})
    assert stale.value.code == "TOKEN_INVALID"
    with pytest.raises(HaptaError) as login:
        await (await open_client(pair[1])).call("auth.login", {"identity": credentials["email"],
                                                               "password": credentials["password"]})
    assert login.value.code == "INVALID_CREDENTIALS"
    assert (await victim["socket"].call("auth.me"))["user"]["id"] == session["user"]["id"]


async def test_an_address_pre_claimed_through_a_provider_that_does_not_vouch_is_taken_over(pair, provider,
                                                                                         open_client):
    email = f"claimed-{secrets.token_hex(4)}@example.com"
    squatter_subject = "squatter-" + secrets.token_hex(4)
    provider.user = {"sub": squatter_subject, "email": email, "email_verified": False}
    squatter = await signed_in_through(provider, open_client, pair[0], "untrusting")
    assert squatter["user"]["email"] == email and squatter["user"]["verified"] is False
    provider.user = {"sub": "owner-" + secrets.token_hex(4), "email": email, "email_verified": True}
    owner = await signed_in_through(provider, open_client, pair[1])
    assert owner["user"]["id"] == squatter["user"]["id"] and owner["user"]["verified"] is True
    assert (await squatter["socket"].next_event(timeout=10))["event"] == "auth.revoked"
    # the squatter's provider account is no longer linked: signing in with it again finds a taken address
    provider.user = {"sub": squatter_subject, "email": email, "email_verified": False}
    again = await signed_in_through(provider, open_client, pair[0], "untrusting")
    assert again["error"]["code"] == "ALREADY_EXISTS"


async def test_a_verified_account_is_linked_without_ending_its_sessions(pair, provider, open_client):
    email = f"owner-{secrets.token_hex(4)}@example.com"
    provider.user = {"sub": "first-" + secrets.token_hex(4), "email": email, "email_verified": True}
    first = await signed_in_through(provider, open_client, pair[0])
    provider.user = {"sub": "second-" + secrets.token_hex(4), "email": email, "email_verified": True}
    second = await signed_in_through(provider, open_client, pair[1])
    assert second["user"]["id"] == first["user"]["id"]
    # the first device's session lives on: it refreshes as before
    refreshed = await first["socket"].call("auth.refresh", {"refresh_token": first["refresh_token"]})
    assert refreshed["user"]["id"] == first["user"]["id"]


async def test_a_sign_in_for_a_socket_that_closed_creates_no_account(pair, provider, open_client, database):
    identity = new_identity(provider)
    socket = await open_client(pair[0])
    begun = await start(socket)
    callback = await sign_in_at_provider(begun)
    await socket.close()
    conn = await asyncpg.connect(database)
    try:
        await until(lambda: conn.fetchval("SELECT count(*) = 0 FROM hapta.oauth_states WHERE state_hash = $1",
                                          hash_secret(begun["state"])))
    finally:
        await conn.close()
    status, _, page = await browse_async(callback, pair[1])
    assert status == 400 and "not valid" in page
    assert await users_with_email(pair, open_client, identity["email"]) == 0


async def test_a_second_factor_holds_for_sign_ins_through_a_provider_too(pair, provider, open_client):
    """The provider stands for the first factor only: a user who enrolled TOTP gets MFA_REQUIRED with a challenge
    in the auth.oauth2 event, stays a guest, and is signed in by auth.mfa.verify."""
    new_identity(provider)
    first = await signed_in_through(provider, open_client, pair[0])
    enrolled = await first["socket"].call("auth.mfa.enroll")
    totp = pyotp.TOTP(enrolled["secret"])
    await first["socket"].call("auth.mfa.confirm", {"code": totp.now()})

    again = await signed_in_through(provider, open_client, pair[1])
    assert again["status"] == 200 and again["error"]["code"] == "MFA_REQUIRED" and "token" not in again
    socket = again["socket"]
    assert await socket.call("auth.me") == {"role": "guest"}
    session = await socket.call("auth.mfa.verify", {"challenge": again["error"]["details"]["challenge"],
                                                    "code": totp.at(time.time() + 30)})
    assert session["user"]["id"] == first["user"]["id"] and session["refresh_token"]

"""Logout, password change and admin revocation reach every socket of a session, on every process."""
from __future__ import annotations

import pytest

from hapta.protocol.errors import HaptaError
from tests.conftest import ADMIN_KEY, PASSWORD
from tests.auth.sessions.conftest import until

REVOKED_CLOSE = 1008


async def code_of(coroutine) -> str:
    with pytest.raises(HaptaError) as refused:
        await coroutine
    return refused.value.code


async def revoked(client, reason: str) -> None:
    """The socket hears auth.revoked with that reason, then is closed with 1008."""
    event = await client.next_event(timeout=5)
    assert event == {"event": "auth.revoked", "data": {"reason": reason}}
    await until(lambda: _closed(client))
    assert client.close_code == REVOKED_CLOSE


async def _closed(client) -> bool:
    return client.close_code is not None


async def test_logout_reaches_a_socket_on_the_other_process(pair, account, open_client):
    first, session, _ = await account(pair[0])
    second = await open_client(pair[1])
    await second.call("auth.resume", {"token": session["token"]})
    assert await first.call("auth.logout") == {}
    await revoked(second, "logout")
    # The socket that logged out stays open, as a guest.
    assert await first.call("auth.me") == {"role": "guest"}
    assert await code_of(first.call("records.list", {"collection": "posts"})) == "UNAUTHENTICATED"
    # Nothing of the session works any more.
    assert await code_of(first.call("auth.resume", {"token": session["token"]})) == "TOKEN_INVALID"
    assert await code_of(first.call("auth.refresh", {"refresh_token": session["refresh_token"]})) == "TOKEN_INVALID"


async def test_logout_leaves_other_sessions_of_the_user_alone(pair, account, open_client):
    phone, _, credentials = await account(pair[0])
    laptop = await open_client(pair[1])
    await laptop.call("auth.login", {"identity": credentials["email"], "password": PASSWORD})
    await phone.call("auth.logout")
    assert (await laptop.call("auth.me"))["user"]["email"] == credentials["email"]


async def test_password_change_ends_the_other_sessions(pair, account, open_client):
    phone, _, credentials = await account(pair[0])
    laptop = await open_client(pair[1])
    await laptop.call("auth.login", {"identity": credentials["username"], "password": PASSWORD})
    assert await code_of(phone.call("auth.password", {"old": "wrong password!", "new": "a new long secret"})) \
        == "INVALID_CREDENTIALS"
    assert await code_of(phone.call("auth.password", {"old": PASSWORD, "new": "password"})) == "VALIDATION_FAILED"
    assert await phone.call("auth.password", {"old": PASSWORD, "new": "a new long secret"}) == {}
    await revoked(laptop, "password changed")
    assert (await phone.call("auth.me"))["user"]["email"] == credentials["email"]   # this session goes on
    fresh = await open_client(pair[1])
    assert await code_of(fresh.call("auth.login", {"identity": credentials["email"], "password": PASSWORD})) \
        == "INVALID_CREDENTIALS"
    await fresh.call("auth.login", {"identity": credentials["email"], "password": "a new long secret"})


async def test_users_list_and_revoke_their_own_sessions_only(pair, account, open_client):
    phone, phone_session, credentials = await account(pair[0])
    laptop = await open_client(pair[1])
    await laptop.call("auth.login", {"identity": credentials["email"], "password": PASSWORD})
    sessions = (await phone.call("auth.sessions"))["items"]
    assert len(sessions) == 2 and sum(item["current"] for item in sessions) == 1
    other = next(item["id"] for item in sessions if not item["current"])
    stranger, _, _ = await account(pair[1])
    assert await code_of(stranger.call("auth.revoke", {"session": other})) == "NOT_FOUND"
    assert await code_of(stranger.call("auth.revoke", {"user": phone_session["user"]["id"]})) == "FORBIDDEN"
    assert await phone.call("auth.revoke", {"session": other}) == {"revoked": 1}
    await revoked(laptop, "revoked by the user")
    assert [item["id"] for item in (await phone.call("auth.sessions"))["items"]] != [other]


async def test_admin_revokes_every_session_of_a_user(pair, account, open_client):
    phone, session, credentials = await account(pair[0])
    laptop = await open_client(pair[1])
    await laptop.call("auth.login", {"identity": credentials["email"], "password": PASSWORD})
    admin = await open_client(pair[1])
    await admin.call("auth.admin", {"key": ADMIN_KEY})
    assert await admin.call("auth.revoke", {"user": session["user"]["id"]}) == {"revoked": 2}
    await revoked(phone, "revoked by an admin")
    await revoked(laptop, "revoked by an admin")


async def test_tokens_of_a_deleted_user_open_nothing(pair, account, open_client):
    client, session, _ = await account(pair[0])
    admin = await open_client(pair[1])
    await admin.call("auth.admin", {"key": ADMIN_KEY})
    await admin.call("records.delete", {"collection": "users", "id": session["user"]["id"]})
    await revoked(client, "user deleted")   # the user's open sockets end at once
    fresh = await open_client(pair[0])
    assert await code_of(fresh.call("auth.resume", {"token": session["token"]})) == "TOKEN_INVALID"
    assert await code_of(fresh.call("auth.refresh", {"refresh_token": session["refresh_token"]})) == "TOKEN_INVALID"

"""auth.refresh: every use rolls the refresh token; racing tabs share one family; a late reuse revokes it all."""
from __future__ import annotations

import asyncio

import pytest

from hapta.protocol.errors import HaptaError
from tests.auth.sessions.conftest import REUSE_INTERVAL


async def refresh(client, token: str) -> dict:
    return await client.call("auth.refresh", {"refresh_token": token})


async def code_of(coroutine) -> str:
    with pytest.raises(HaptaError) as refused:
        await coroutine
    return refused.value.code


async def test_refresh_rolls_the_pair_and_authenticates_the_socket(pair, account, open_client):
    _, session, _ = await account(pair[0])
    fresh = await open_client(pair[1])
    rolled = await refresh(fresh, session["refresh_token"])
    assert rolled["refresh_token"] != session["refresh_token"]
    assert rolled["expires_at"] >= session["expires_at"] and rolled["user"]["id"] == session["user"]["id"]
    assert (await fresh.call("auth.me"))["user"]["id"] == session["user"]["id"]
    again = await refresh(fresh, rolled["refresh_token"])   # the new one rolls on in turn
    assert again["refresh_token"] not in (session["refresh_token"], rolled["refresh_token"])


async def test_unknown_refresh_tokens_are_invalid(pair, open_client):
    client = await open_client(pair[0])
    for token in ("", "x" * 43, "not a token at all"):
        assert await code_of(refresh(client, token)) == "TOKEN_INVALID"
    assert await code_of(client.call("records.list", {"collection": "posts"})) == "UNAUTHENTICATED"


async def test_racing_tabs_get_one_family(pair, account, open_client):
    """Five tabs on two processes refresh the same token at once: one token wins, all get the same new pair."""
    _, session, _ = await account(pair[0])
    tabs = [await open_client(pair[i % 2]) for i in range(5)]
    results = await asyncio.gather(*(refresh(tab, session["refresh_token"]) for tab in tabs))
    current = {result["refresh_token"] for result in results}
    assert len(current) == 1, "racing refreshes minted more than one family"
    (token,) = current
    # The family goes on from that one token, and the session is still alive.
    assert (await refresh(tabs[0], token))["user"]["id"] == session["user"]["id"]


async def test_a_late_tab_walks_to_the_current_token(pair, account, open_client):
    """A tab that slept through two rolls presents the first token within the interval: it gets the newest."""
    _, session, _ = await account(pair[0])
    tab = await open_client(pair[1])
    first = await refresh(tab, session["refresh_token"])
    second = await refresh(tab, first["refresh_token"])
    late = await open_client(pair[0])
    assert (await refresh(late, session["refresh_token"]))["refresh_token"] == second["refresh_token"]


async def test_reuse_after_the_interval_revokes_the_family(pair, account, open_client):
    owner, session, _ = await account(pair[0])
    other_socket = await open_client(pair[1])
    await other_socket.call("auth.resume", {"token": session["token"]})
    rolled = await refresh(owner, session["refresh_token"])
    await asyncio.sleep(REUSE_INTERVAL + 0.5)   # the configured interval must pass: that is what is tested
    thief = await open_client(pair[1])
    assert await code_of(refresh(thief, session["refresh_token"])) == "TOKEN_REUSED"
    # Every socket of the session hears it, on both processes, and loses its access.
    for client in (owner, other_socket):
        event = await client.next_event(timeout=5)
        assert event["event"] == "auth.revoked" and "reused" in event["data"]["reason"]
    # Neither the thief's token nor the legitimate successor opens the session again.
    assert await code_of(refresh(thief, rolled["refresh_token"])) == "TOKEN_INVALID"
    assert await code_of(thief.call("auth.resume", {"token": rolled["token"]})) == "TOKEN_INVALID"


async def test_no_secret_reaches_the_logs(pair, account, open_client):
    client, session, credentials = await account(pair[0])
    rolled = await refresh(await open_client(pair[1]), session["refresh_token"])
    await client.call("auth.resume", {"token": rolled["token"]})
    await code_of(client.call("auth.login", {"identity": credentials["email"], "password": "a wrong password"}))
    await code_of(client.call("auth.refresh", {"refresh_token": "made-up-refresh-token-value"}))
    secrets_seen = (session["token"], session["refresh_token"], rolled["token"], rolled["refresh_token"],
                    credentials["password"], "a wrong password", "made-up-refresh-token-value")
    for process in pair:
        log = process.log_text()
        assert not [secret for secret in secrets_seen if secret in log]

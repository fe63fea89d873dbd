"""A socket follows its access token: a notice before expiry, TOKEN_EXPIRED after, and re-auth on the same socket."""
from __future__ import annotations

from hapta.protocol.errors import HaptaError
from tests.auth.sessions.conftest import SHORT_TTL, until


async def expired(client) -> bool:
    try:
        await client.call("records.list", {"collection": "posts", "per_page": 1})
    except HaptaError as error:
        assert error.code == "TOKEN_EXPIRED", error.code
        return True
    return False


async def test_expiring_notice_then_expired_then_refresh_on_the_same_socket(short_lived, account):
    client, session, _ = await account(short_lived)
    notice = await client.next_event(timeout=SHORT_TTL + 2)
    assert notice == {"event": "auth.expiring", "data": {"expires_at": session["expires_at"]}}
    await until(lambda: expired(client), timeout=SHORT_TTL + 5)
    assert await expired(client)   # it stays expired: not a guest, not anyone else
    assert await client.call("ping")  # guest ops still work
    rolled = await client.call("auth.refresh", {"refresh_token": session["refresh_token"]})
    assert rolled["expires_at"] > session["expires_at"]
    page = await client.call("records.list", {"collection": "posts", "per_page": 1})
    assert "items" in page


async def test_resume_with_a_fresh_token_also_revives_the_socket(short_lived, account, open_client):
    client, session, _ = await account(short_lived)
    await until(lambda: expired(client), timeout=SHORT_TTL + 5)
    helper = await open_client(short_lived)
    rolled = await helper.call("auth.refresh", {"refresh_token": session["refresh_token"]})
    result = await client.call("auth.resume", {"token": rolled["token"]})
    assert result["user"]["id"] == session["user"]["id"]
    assert not await expired(client)


async def test_an_expired_token_cannot_resume(short_lived, account, open_client):
    client, session, _ = await account(short_lived)
    await until(lambda: expired(client), timeout=SHORT_TTL + 5)
    fresh = await open_client(short_lived)
    # Within the JWT leeway (a few seconds of clock skew) it may still pass; past it, never.
    await until(lambda: _refused(fresh, session["token"]), timeout=15, every=0.5)


async def _refused(client, token) -> bool:
    try:
        await client.call("auth.resume", {"token": token})
    except HaptaError as error:
        assert error.code == "TOKEN_EXPIRED", error.code
        return True
    return False

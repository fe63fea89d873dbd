"""Guests that become users: auth.guest signs a connection in as an account with no email or password (rules read
@user.anonymous), it survives reconnects like any session, and auth.register on its connection makes it an account
with the same id, so everything it wrote stays its own. A guest no one can reach any more is swept away."""
from __future__ import annotations

import secrets

import asyncpg
import pytest

from hapta.auth.sessions import Policy, Sessions
from hapta.client import Client
from hapta.protocol.errors import HaptaError
from tests.conftest import PASSWORD
from tests.services import next_loopback


async def refused(coroutine) -> HaptaError:
    with pytest.raises(HaptaError) as error:
        await coroutine
    return error.value


def connect(gateway):
    return Client.connect(gateway.url, local_addr=(next_loopback(), 0))


async def test_a_guest_writes_then_registers_and_keeps_everything(gateway):
    async with await connect(gateway) as phone, await connect(gateway) as tablet, await connect(gateway) as friend:
        guest = await phone.call("auth.guest")
        me = guest["user"]["id"]
        assert guest["user"]["anonymous"] is True and guest["user"]["email"] is None
        assert guest["token"] and guest["refresh_token"]
        post = await phone.call("records.create", {"collection": "posts", "data": {
            "author": me, "text": "written as a guest", "public": False}})
        # rules and filters read @user.anonymous: the demo lets guests post but message no one
        other = (await friend.call("auth.register", {"email": f"f{secrets.token_hex(5)}@example.com",
                                                     "password": PASSWORD}))["user"]["id"]
        assert (await refused(phone.call("records.create", {"collection": "messages", "data": {
            "sender": me, "recipient": other, "text": "hi"}}))).code == "FORBIDDEN"
        mine = await phone.call("records.list", {"collection": "posts",
                                                 "filter": "@user.anonymous = true && author = @user.id"})
        assert [item["id"] for item in mine["items"]] == [post["id"]]
        # a guest has nothing to verify or enrol until it is an account
        for op in ("auth.verify.request", "auth.mfa.enroll"):
            assert (await refused(phone.call(op))).code == "FORBIDDEN"
        # the guest's other tab resumes with the same token, as any session does
        resumed = await tablet.call("auth.resume", {"token": guest["token"]})
        assert resumed["user"]["id"] == me and resumed["user"]["anonymous"] is True

        address = f"g{secrets.token_hex(5)}@example.com"
        account = await phone.call("auth.register", {"email": address, "password": PASSWORD})
        assert account["user"]["id"] == me, "the guest became the account: same id"
        assert account["user"]["email"] == address and account["user"]["anonymous"] is False
        assert account["refresh_token"] != guest["refresh_token"]
        assert (await phone.call("records.get", {"collection": "posts", "id": post["id"]}))["author"] == me
        assert (await phone.call("records.list", {"collection": "posts",
                                                  "filter": "@user.anonymous = true && author = @user.id"}))["items"] == []
        await phone.call("records.create", {"collection": "messages", "data": {
            "sender": me, "recipient": other, "text": "now I may"}})
        # the guest session ended everywhere else: its tab hears it, its tokens no longer speak for anyone
        revoked = await tablet.next_event(timeout=10)
        assert revoked["event"] == "auth.revoked" and revoked["data"]["reason"] == "the guest became an account"
    async with await connect(gateway) as later:
        assert (await refused(later.call("auth.refresh", {"refresh_token": guest["refresh_token"]}))).code \
            == "TOKEN_INVALID"
        assert (await refused(later.call("auth.resume", {"token": guest["token"]}))).code == "TOKEN_INVALID"
        session = await later.call("auth.login", {"identity": address, "password": PASSWORD})
        assert session["user"]["id"] == me
        assert (await later.call("records.get", {"collection": "posts", "id": post["id"]}))["text"] \
            == "written as a guest"


async def test_register_on_a_guest_connection_with_a_taken_email_leaves_the_guest_as_it_was(gateway):
    async with await connect(gateway) as owner, await connect(gateway) as phone:
        address = f"t{secrets.token_hex(5)}@example.com"
        await owner.call("auth.register", {"email": address, "password": PASSWORD})
        guest = await phone.call("auth.guest")
        taken = await refused(phone.call("auth.register", {"email": address, "password": PASSWORD}))
        assert taken.code == "ALREADY_EXISTS"
        me = await phone.call("auth.me")
        assert me["user"]["id"] == guest["user"]["id"] and me["user"]["anonymous"] is True
        assert (await phone.call("auth.refresh", {"refresh_token": guest["refresh_token"]}))["user"]["anonymous"]


async def test_an_unreachable_guest_is_swept_and_a_reachable_one_is_not(gateway, database):
    async with await connect(gateway) as lost, await connect(gateway) as kept, await connect(gateway) as upgraded:
        lost_id = (await lost.call("auth.guest"))["user"]["id"]
        kept_id = (await kept.call("auth.guest"))["user"]["id"]
        upgraded_id = (await upgraded.call("auth.guest"))["user"]["id"]
        await lost.call("records.create", {"collection": "posts", "data": {"author": lost_id, "text": "bye"}})
        await upgraded.call("auth.register", {"email": f"u{secrets.token_hex(5)}@example.com", "password": PASSWORD})
    pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
    try:
        # two days on: the lost guest's session is long dead; the kept one's is alive; the upgraded guest is an
        # account whose guest session is long revoked
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")   # past hapta.touch, which keeps
            await conn.execute("UPDATE users SET created = now() - interval '2 days' "   # `created` as it was
                               "WHERE id = ANY($1::text[])", [lost_id, kept_id, upgraded_id])
        await pool.execute("UPDATE hapta.sessions SET expires_at = now() - interval '2 days' WHERE user_id = $1",
                           lost_id)
        await pool.execute("UPDATE hapta.sessions SET revoked_at = now() - interval '2 days' "
                           "WHERE user_id = $1 AND revoked_at IS NOT NULL", upgraded_id)
        await Sessions(pool, Policy(lifetime=3600, idle_timeout=3600, reuse_interval=10)).sweep()
        left = {row["id"] for row in await pool.fetch("SELECT id FROM users WHERE id = ANY($1::text[])",
                                                       [lost_id, kept_id, upgraded_id])}
        assert left == {kept_id, upgraded_id}, {lost_id: "lost", kept_id: "kept", upgraded_id: "upgraded"}
        assert await pool.fetchval("SELECT count(*) FROM posts WHERE author = $1", lost_id) == 0
    finally:
        await pool.close()

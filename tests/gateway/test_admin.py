"""admin.* (hapta/ops/admin.py), what the dashboard reads, through a real `hapta serve`: admins only; the schema as
the gateway understands it; the connections of the process and every channel's presence; limit standings; the key
figures of /metrics; an admin's changes in the log without their data; and the pages at /_/ with their policy."""
from __future__ import annotations

import asyncio
import secrets

import pytest

from hapta.client import Client
from hapta.gateway.dashboard import serve_dashboard
from hapta.protocol.errors import HaptaError
from tests.conftest import ADMIN_KEY, ANON_KEY, PASSWORD
from tests.services import next_loopback
from tests.auth.sessions.conftest import browse_async, until

ADMIN_OPS = ("admin.schema", "admin.connections", "admin.channels", "admin.limits", "admin.metrics", "admin.backup",
             "admin.logs", "admin.logs.chart", "admin.warnings")


async def connect(gateway, role: str = "user") -> tuple[Client, dict]:
    client = await Client.connect(gateway.url, local_addr=(next_loopback(), 0))
    if role == "admin":
        await client.call("auth.admin", {"key": ADMIN_KEY})
        return client, {}
    if role == "anon":
        await client.call("auth.anon", {"apikey": ANON_KEY})
        return client, {}
    name = "a" + secrets.token_hex(5)
    session = await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD})
    return client, session["user"]


async def code_of(coroutine) -> str:
    with pytest.raises(HaptaError) as refused:
        await coroutine
    return refused.value.code


async def test_only_admins_read_any_of_it(gateway):
    user, me = await connect(gateway)
    anon, _ = await connect(gateway, "anon")
    try:
        for client in (user, anon):
            for op in ADMIN_OPS:
                assert await code_of(client.call(op)) == "FORBIDDEN", op
        assert await code_of(user.call("auth.sessions", {"user": me["id"]})) == "FORBIDDEN"
        assert len((await user.call("auth.sessions"))["items"]) == 1   # one's own, as before
    finally:
        await user.close()
        await anon.close()


async def test_the_schema_says_what_the_rules_and_fields_are(gateway):
    admin, _ = await connect(gateway, "admin")
    try:
        collections = {c["name"]: c for c in (await admin.call("admin.schema"))["collections"]}
        users = {f["name"]: f for f in collections["users"]["fields"]}
        assert users["password_hash"]["hidden"] is True
        assert users["email"]["guarded"] == "id = @user.id" and users["email"]["readonly"] is True
        posts = collections["posts"]
        assert posts["rules"] == {"list": "public = true || author = @user.id",
                                  "view": "public = true || author = @user.id",
                                  "create": "@user.id != null && author = @user.id",
                                  "update": "author = @user.id", "delete": "author = @user.id"}
        fields = {f["name"]: f for f in posts["fields"]}
        assert fields["author"]["relation"] == "users" and fields["author"]["required"] is True
        assert fields["media"]["file"]["max_count"] == 4 and fields["likes"]["readonly"] is True
        assert fields["text"]["search"] == "english"
        # what a form needs: may it be empty, what the database fills in, the file field's thumbnail sizes
        assert fields["public"]["nullable"] is False and fields["public"]["default"] == "false"
        assert fields["created"]["default"] == "now()" and fields["text"]["default"] is None
        assert fields["text"]["choices"] is None   # its CHECK is a length, not a list
        assert fields["media"]["file"]["thumbs"] == ["100x100", "480x0"]
        assert collections["messages"]["rules"]["update"] is None   # admins only
    finally:
        await admin.close()


async def test_connections_channels_and_sessions_as_they_are(gateway):
    admin, _ = await connect(gateway, "admin")
    user, me = await connect(gateway)
    try:
        await user.call("realtime.subscribe", {"collection": "posts"})
        await user.call("channels.join", {"channel": f"room:{me['id']}"})
        listed = (await admin.call("admin.connections"))["connections"]
        mine = [c for c in listed if c["user"] == me["id"]]
        assert len(mine) == 1 and mine[0]["subscriptions"] == 1 and mine[0]["channels"] == [f"room:{me['id']}"]
        assert mine[0]["role"] == "user" and mine[0]["session"] and mine[0]["name"] is None
        assert [c["name"] for c in listed if c["role"] == "admin"] == [None]   # the key names no one
        rooms = {c["name"]: c["members"] for c in (await admin.call("admin.channels"))["channels"]}
        assert [m["user"] for m in rooms[f"room:{me['id']}"]] == [me["id"]]
        sessions = (await admin.call("auth.sessions", {"user": me["id"]}))["items"]
        assert [s["id"] for s in sessions] == [mine[0]["session"]]
        newcomer, _ = await connect(gateway, "anon")   # a new connection shows up ...
        ids = {c["id"] for c in (await admin.call("admin.connections"))["connections"]}
        await newcomer.close()                         # ... and leaves
        await until(lambda: _fewer(admin, ids))
    finally:
        await admin.close()
        await user.close()


async def _fewer(admin: Client, ids: set[int]) -> bool:
    return {c["id"] for c in (await admin.call("admin.connections"))["connections"]} < ids


async def test_limits_standing_and_metrics(gateway):
    admin, _ = await connect(gateway, "admin")
    user, me = await connect(gateway)
    try:
        for n in range(3):
            await user.call("records.create", {"collection": "posts", "data": {"author": me["id"], "text": f"{n}"}})
        limits = {entry["name"]: entry for entry in (await admin.call("admin.limits", {"user": me["id"]}))["limits"]}
        create = limits["records.create"]
        assert create["rate"] > 0 and create["remaining"] <= create["burst"] - 3   # three spent
        assert limits["auth.login:identity"]["remaining"] is None   # per account, hashed: no standing here
        assert (await admin.call("admin.limits"))["limits"][0]["remaining"] is None
        assert await code_of(admin.call("admin.limits", {"user": "x", "address": "1.2.3.4"})) == "BAD_REQUEST"
        before = await admin.call("admin.metrics")
        await user.call("ping")
        after = await admin.call("admin.metrics")
        assert after["requests"] >= before["requests"] + 2 and after["connections"] >= 2
        assert after["p99_ms"] is not None and after["latency_buckets"][-1][1] >= after["requests"] - 1
        assert after["feed_lag_ms"] >= 0 and after["at"] > before["at"]
    finally:
        await admin.close()
        await user.close()


async def test_a_backup_goes_only_where_it_may(gateway):
    admin, _ = await connect(gateway, "admin")
    try:
        for target in ("../escape.tar", "/etc/cron.d/x", "a/b.tar", ".hidden"):
            assert await code_of(admin.call("admin.backup", {"target": target})) == "BAD_REQUEST", target
    finally:
        await admin.close()


async def test_an_admins_changes_are_logged_without_their_data(gateway):
    admin, _ = await connect(gateway, "admin")
    user, me = await connect(gateway)
    try:
        post = await user.call("records.create", {"collection": "posts", "data": {"author": me["id"], "text": "t"}})
        await admin.call("records.update", {"collection": "posts", "id": post["id"],
                                            "data": {"text": "a confidential correction"}})
        await until(lambda: _logged(gateway, f"admin records.update posts {post['id']}"))
        assert "a confidential correction" not in gateway.log_text()
    finally:
        await admin.close()
        await user.close()


async def _logged(gateway, line: str) -> bool:
    await asyncio.sleep(0)
    return line in gateway.log_text()


async def test_the_pages_at_slash_underscore_carry_their_policy(gateway):
    status, headers, _ = await browse_async(gateway.http + "/_")
    assert status == 308 and headers["Location"] == "/_/"
    status, headers, page = await browse_async(gateway.http + "/_/")
    if status == 404:
        assert "not built" in page
    else:
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY" and headers["Cache-Control"] == "no-store"
    status, _, _ = await browse_async(gateway.http + "/_/assets/../../pyproject.toml")
    assert status == 404


def test_the_dashboard_folder_is_served_as_an_app(tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><script type=module src=/_/assets/app-1.js></script>")
    (tmp_path / "assets" / "app-1.js").write_text("export {}")
    page = serve_dashboard("/_/users/42", tmp_path)   # a view of its own: the page, which routes it
    assert page.status_code == 200 and b"app-1.js" in page.body
    asset = serve_dashboard("/_/assets/app-1.js", tmp_path)
    assert asset.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert "immutable" in asset.headers["Cache-Control"]
    assert serve_dashboard("/_/assets/missing.js", tmp_path).status_code == 404
    assert serve_dashboard("/_/.hidden", tmp_path).body != b"secret"
    assert b"not built" in serve_dashboard("/_/", tmp_path / "nothing").body

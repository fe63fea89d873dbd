"""auth.impersonate: an admin acts as a user for support, under the user's rules, for a short unrefreshable session
whose token says so; a user cannot."""
from __future__ import annotations

import secrets

import jwt
import pytest

from hapta.client import Client
from hapta.protocol.errors import HaptaError
from tests.conftest import ADMIN_KEY, PASSWORD
from tests.services import next_loopback
from tests.auth.sessions.conftest import until


async def _logged(gateway, line: str) -> bool:
    return line in gateway.log_text()


async def test_an_admin_acts_as_a_user_and_it_shows(gateway):
    async with await Client.connect(gateway.url, local_addr=(next_loopback(), 0)) as alice, \
            await Client.connect(gateway.url, local_addr=(next_loopback(), 0)) as admin:
        name = "i" + secrets.token_hex(5)
        session = await alice.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD})
        me = session["user"]["id"]
        secret = await alice.call("records.create", {"collection": "posts", "data": {
            "author": me, "text": "alice only", "public": False}})
        with pytest.raises(HaptaError) as refused:
            await alice.call("auth.impersonate", {"user": me})
        assert refused.value.code == "FORBIDDEN"

        await admin.call("auth.admin", {"key": ADMIN_KEY})
        acting = await admin.call("auth.impersonate", {"user": me})
        assert acting["impersonated"] is True and "refresh_token" not in acting
        claims = jwt.decode(acting["token"], options={"verify_signature": False})
        assert claims["imp"] is True and claims["sub"] == me and claims["exp"] - claims["iat"] <= 900
        assert (await admin.call("auth.me"))["user"]["id"] == me
        assert (await admin.call("records.get", {"collection": "posts", "id": secret["id"]}))["text"] == "alice only"
        with pytest.raises(HaptaError) as as_user:   # the connection is the user now, no longer an admin
            await admin.call("auth.impersonate", {"user": me})
        assert as_user.value.code == "FORBIDDEN"
    await until(lambda: _logged(gateway, f"impersonates user {me}"))   # the log is read by a thread: wait for it

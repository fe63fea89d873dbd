"""Guessing passwords: limited per client address and per account; X-Forwarded-For believed only from a trusted
proxy. Runs the demo app's own limits (auth.login: 5 a minute per address, 10 per 10 minutes per account)."""
from __future__ import annotations

import secrets

import pytest

from hapta.client import Client
from hapta.protocol.errors import HaptaError
from tests.conftest import PASSWORD, gateway_env
from tests.services import APP, GatewayProcess, next_loopback

PROXY = "127.0.0.1"   # the one trusted reverse proxy of this gateway


@pytest.fixture(scope="module")
def guarded(database):
    process = GatewayProcess(gateway_env(database, HAPTA_TRUSTED_PROXIES=PROXY), config=APP / "config.py").start()
    yield process
    process.stop()
    assert "Traceback" not in process.log_text()


@pytest.fixture
async def clients(guarded, open_client):
    async def make(*, via_proxy_for: str | None = None, address: str | None = None,
                   claims: str | None = None) -> Client:
        """A client behind the trusted proxy (via_proxy_for), or at `address` claiming to forward for `claims`."""
        if via_proxy_for is not None:
            address, claims = PROXY, via_proxy_for
        options = {"local_addr": (address or next_loopback(), 0)}
        if claims is not None:
            options["additional_headers"] = {"X-Forwarded-For": claims}
        return await open_client(guarded, **options)
    return make


async def attempt(client: Client, identity: str, password: str = "wrong password 1") -> str:
    try:
        await client.call("auth.login", {"identity": identity, "password": password})
    except HaptaError as error:
        assert error.code != "RATE_LIMITED" or error.retry_after > 0
        return error.code
    return "OK"


async def new_account(clients) -> str:
    client = await clients()
    name = "b" + secrets.token_hex(5)
    await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD, "username": name})
    return name


async def test_one_address_gets_five_guesses_a_minute(clients):
    name = await new_account(clients)
    client = await clients(via_proxy_for="198.51.100.10")
    codes = [await attempt(client, name) for _ in range(6)]
    assert codes == ["INVALID_CREDENTIALS"] * 5 + ["RATE_LIMITED"]
    # even the right password waits: the limit is on attempts, not failures
    assert await attempt(client, name, PASSWORD) == "RATE_LIMITED"
    # another client address behind the same proxy has its own budget
    assert await attempt(await clients(via_proxy_for="198.51.100.11"), name, PASSWORD) == "OK"


async def test_one_account_gets_ten_guesses_from_anywhere(clients):
    name = await new_account(clients)
    codes = [await attempt(await clients(via_proxy_for=f"203.0.113.{i}"), name) for i in range(11)]
    assert codes == ["INVALID_CREDENTIALS"] * 10 + ["RATE_LIMITED"]
    other = await new_account(clients)   # other accounts are not affected
    assert await attempt(await clients(via_proxy_for="203.0.113.200"), other, PASSWORD) == "OK"


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(clients):
    name = await new_account(clients)
    spoofer = next_loopback()   # not the proxy: whatever address it claims, it is counted as itself
    codes = [await attempt(await clients(address=spoofer, claims=f"192.0.2.{i}"), name) for i in range(6)]
    assert codes == ["INVALID_CREDENTIALS"] * 5 + ["RATE_LIMITED"]


async def test_an_accounts_email_and_username_share_one_budget(clients):
    """Counted per account, not per identity string (issue 11, item 9): the email and the username of one account
    do not give twice the guesses."""
    name = await new_account(clients)
    identities = [name, f"{name}@example.com"] * 5 + [name]
    codes = [await attempt(await clients(via_proxy_for=f"203.0.114.{i}"), identity)
             for i, identity in enumerate(identities)]
    assert codes == ["INVALID_CREDENTIALS"] * 10 + ["RATE_LIMITED"]
    # an unknown identity still has a budget of its own (it reveals nothing by being limited the same way)
    ghost = [await attempt(await clients(via_proxy_for=f"203.0.115.{i}"), f"ghost{name}") for i in range(11)]
    assert ghost == ["INVALID_CREDENTIALS"] * 10 + ["RATE_LIMITED"]

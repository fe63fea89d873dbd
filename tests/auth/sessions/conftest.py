"""Two gateway processes on one database (as two workers or two nodes would be), a loopback OAuth2 provider,
and a browser that follows the provider's redirect to whichever process a load balancer would pick."""
from __future__ import annotations

import asyncio
import http.client
import secrets
import urllib.parse

import pytest
import pytest_asyncio

from hapta.config import SessionPolicy
from tests.conftest import PASSWORD, gateway_env
from tests.services import GatewayProcess, write_app
from tests.auth.sessions.provider import CLIENT_ID, CLIENT_SECRET, Provider

PUBLIC_URL = "http://hapta.test"   # what browsers see; both processes sit behind it
REUSE_INTERVAL = 2.0
SHORT_TTL = 4


@pytest.fixture(scope="package")
def provider():
    provider = Provider().start()
    yield provider
    provider.stop()


def _config(provider: Provider, **overrides: object) -> str:
    settings = ", ".join(f"{key}={value!r}" for key, value in overrides.items())
    return f"""
        import dataclasses, runpy
        from hapta.config import Limit, OAuth2Provider, SessionPolicy
        demo = runpy.run_path(APP + "/config.py")["app"]
        # These tests sign in and register often from one address.
        limits = {{**demo.limits, "auth.login": Limit(1000, per=60), "auth.register": Limit(1000, per=60)}}
        test = OAuth2Provider("{provider.base}/authorize", "{provider.base}/token", "{provider.base}/userinfo",
                              "{CLIENT_ID}", "{CLIENT_SECRET}", scope="openid email", trust_email=True)
        untrusting = dataclasses.replace(test, trust_email=False)
        app = dataclasses.replace(demo, oauth2={{"test": test, "untrusting": untrusting}}, limits=limits,
                                  {settings})
    """


def _stop_all(processes: list[GatewayProcess]) -> None:
    for process in processes:
        process.stop()
    for process in processes:
        assert "Traceback" not in process.log_text(), process.log_text()


@pytest.fixture(scope="package")
def pair(tmp_path_factory, database, provider):
    """Two processes serving the same app and database: a session is one, wherever its sockets are."""
    config = write_app(tmp_path_factory.mktemp("sessions"), _config(provider, sessions=SessionPolicy(refresh_reuse_interval=REUSE_INTERVAL)))
    env = gateway_env(database, HAPTA_PUBLIC_URL=PUBLIC_URL)
    processes = [GatewayProcess(env, config=config).start() for _ in range(2)]
    yield processes
    _stop_all(processes)


@pytest.fixture(scope="package")
def short_lived(tmp_path_factory, database, provider):
    """A process whose access tokens live a few seconds, to watch a socket's token expire."""
    config = write_app(tmp_path_factory.mktemp("short"), _config(provider, sessions=SessionPolicy(access_token_ttl=SHORT_TTL)))
    process = GatewayProcess(gateway_env(database), config=config).start()
    yield process
    _stop_all([process])


@pytest_asyncio.fixture
async def account(open_client):
    """account(process) -> (client, session, credentials) for a new user registered on that process."""
    async def make(process: GatewayProcess):
        client = await open_client(process)
        name = "s" + secrets.token_hex(5)
        credentials = {"email": f"{name}@example.com", "password": PASSWORD, "username": name}
        session = await client.call("auth.register", credentials)
        return client, session, credentials
    return make


def browse(url: str, gateway: GatewayProcess | None = None) -> tuple[int, dict[str, str], str]:
    """One GET, no redirects followed. URLs under PUBLIC_URL go to `gateway`, as a load balancer would send them."""
    if url.startswith(PUBLIC_URL):
        assert gateway is not None
        url = gateway.http + url[len(PUBLIC_URL):]
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
    try:
        conn.request("GET", parts.path + ("?" + parts.query if parts.query else ""))
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


async def browse_async(url: str, gateway: GatewayProcess | None = None):
    return await asyncio.to_thread(browse, url, gateway)


async def until(condition, timeout: float = 10.0, every: float = 0.05):
    """Poll an async condition until it returns something truthy; fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await condition()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(every)

"""@http: a function answers a webhook on the gateway's own port, beside the WebSocket: it reads the raw body and
headers, checks a signature with a secret it declared, and every request gets one answer: the function's, or a
precise refusal (404, 405, 413, 403 for a bad signature, 500 without details when it fails)."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import textwrap
import urllib.error
import urllib.request

import pytest

from hapta.client import Client
from tests.conftest import ANON_KEY, gateway_env
from tests.http1 import Raw, chunked
from tests.services import GatewayProcess, next_loopback, write_app

SECRET = "whsec-test-" + "k" * 20

HOOKS = '''
from hapta.functions import Deny, hmac_valid, http

@http("POST", "/hooks/pay", secrets=("PAY_WEBHOOK_SECRET",))
def paid(ctx, request):
    if not hmac_valid(ctx.secrets["PAY_WEBHOOK_SECRET"], request["body"],
                      request["headers"].get("x-signature", ""), prefix="sha256="):
        raise Deny("bad signature")
    import json
    event = json.loads(request["body"])
    return {"status": 202, "headers": {"X-Handled": "yes"}, "body": {"received": event["id"],
                                                                     "query": request["query"]}}

@http("GET", "/hooks/status")
def status(ctx, request):
    return {"up": True, "role": ctx.role}

@http("POST", "/hooks/broken")
def broken(ctx, request):
    raise RuntimeError("the secret detail of the bug")
'''


@pytest.fixture(scope="module")
def hooks_gateway(database, tmp_path_factory):
    folder = tmp_path_factory.mktemp("http-app") / "app"
    config = write_app(folder, """
        import dataclasses, runpy
        app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"], function_workers=1,
                                  function_http_max_body=10_000)
    """)
    (folder / "functions").mkdir()
    (folder / "functions" / "hooks.py").write_text(textwrap.dedent(HOOKS))
    process = GatewayProcess(gateway_env(database, PAY_WEBHOOK_SECRET=SECRET), config=config).start()
    yield process
    process.stop()


def request(process, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(process.http + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
            "Content-Type": "application/json"}


async def test_a_signed_webhook_reaches_its_function_and_gets_its_answer(hooks_gateway):
    body = json.dumps({"id": "evt_1", "amount": 500}).encode()
    status, headers, answer = await asyncio.to_thread(request, hooks_gateway, "POST", "/hooks/pay?attempt=2",
                                                      body, signed(body))
    assert status == 202 and headers["X-Handled"] == "yes"
    assert json.loads(answer) == {"received": "evt_1", "query": {"attempt": "2"}}
    # and the same port still speaks WebSocket
    async with await Client.connect(hooks_gateway.url, local_addr=(next_loopback(), 0)) as client:
        assert await client.call("auth.anon", {"apikey": ANON_KEY}) == {"role": "anon"}


async def test_a_bad_signature_is_refused(hooks_gateway):
    body = json.dumps({"id": "evt_2"}).encode()
    for headers in (signed(body, secret="not-the-secret"), {}, signed(b"another body")):
        status, _, answer = await asyncio.to_thread(request, hooks_gateway, "POST", "/hooks/pay", body, headers)
        assert (status, answer) == (403, b"bad signature\n")


async def test_get_routes_unknown_paths_and_wrong_methods(hooks_gateway):
    status, headers, answer = await asyncio.to_thread(request, hooks_gateway, "GET", "/hooks/status")
    assert status == 200 and json.loads(answer) == {"up": True, "role": "anon"}
    assert (await asyncio.to_thread(request, hooks_gateway, "POST", "/hooks/nowhere", b"{}"))[0] == 404
    status, headers, _ = await asyncio.to_thread(request, hooks_gateway, "PUT", "/hooks/pay", b"{}")
    assert status == 405 and headers["Allow"] == "POST"


async def test_a_failing_function_answers_500_without_details(hooks_gateway):
    status, _, answer = await asyncio.to_thread(request, hooks_gateway, "POST", "/hooks/broken", b"x")
    assert (status, answer) == (500, b"internal error\n")


async def test_bodies_are_bounded_chunked_ones_too_and_malformed_heads_refused(hooks_gateway):
    """A declared Content-Length over the route's bound is refused at once (nothing read); a chunked body is read
    (it used to be refused with 411) and answered like any other; a request line h11 cannot read is 400."""
    async with await Raw.open(hooks_gateway.port) as raw:
        await raw.send(b"POST /hooks/pay HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n")
        assert (await raw.answer()).status == 413
        assert await raw.closed()
    body = json.dumps({"id": "evt_chunked"}).encode()
    async with await Raw.open(hooks_gateway.port) as raw:
        await raw.send(chunked("/hooks/pay", [body[:5], body[5:]], signed(body)))
        answer = await raw.answer()
        assert answer.status == 202 and answer.json()["received"] == "evt_chunked"
    async with await Raw.open(hooks_gateway.port) as raw:
        await raw.send(chunked("/hooks/pay", [b"x" * 6000, b"y" * 6000], signed(b"")))
        assert (await raw.answer()).status == 413   # over the route's bound as the chunks came
    async with await Raw.open(hooks_gateway.port) as raw:
        await raw.send(b"POST /hooks/pay\r\n\r\n")
        assert (await raw.answer()).status == 400
    log = hooks_gateway.log_text()   # the one traceback logged is the failing function's own, for the operator
    assert log.count("Traceback") == log.count("(http POST /hooks/broken) failed:\nTraceback")

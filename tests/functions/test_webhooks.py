"""Webhooks (@http) as a provider meets them (issue 26 items 7, 9, 10; issue 27 item 8), through real sockets to a
real gateway: the route is judged from the head before any body is read, keep-alive and chunked bodies work, a
slow function is answered 202 with its run's id within App.function_http_answer_within and runs on, a retried
delivery runs once, a refused signature costs no write, and neither a strange signature nor a function's own
CR/LF ever turns into a 500 with a traceback or a split response."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import textwrap
import time

import asyncpg
import pytest

from tests.conftest import ADMIN_KEY, gateway_env
from tests.gateway.guards.conftest import eventually
from tests.http1 import Raw, chunked, post
from tests.services import GatewayProcess, write_app

SECRET = "whsec-hooks-" + "s" * 24
ANSWER_WITHIN = 1.0   # App.function_http_answer_within of this gateway

HOOKS = '''
import json, time
from hapta.functions import Deny, hmac_valid, http

@http("POST", "/hooks/echo")
def echo(ctx, request):
    return {"length": len(request["body"]), "head": request["body"][:16].decode("latin-1"),
            "query": request["query"]}

@http("POST", "/hooks/slow", timeout=8)
def slow(ctx, request):
    time.sleep(float(request["query"].get("seconds", "3")))
    return {"slept": True}

@http("POST", "/hooks/delivered", timeout=8, delivery_id_header="X-Delivery")
def delivered(ctx, request):
    event = json.loads(request["body"])
    if event.get("fail"):
        raise RuntimeError("this delivery fails")
    time.sleep(event.get("sleep", 0))
    return {"status": 200, "headers": {"X-Event": event["id"]}, "body": {"handled": event["id"]}}

@http("POST", "/hooks/signed", secret="HOOK_SECRET", signature_header="X-Hub-Signature-256",
      signature_prefix="sha256=")
def signed(ctx, request):
    return {"ok": json.loads(request["body"])["id"]}

@http("POST", "/hooks/self-checked", secrets=("HOOK_SECRET",))
def self_checked(ctx, request):
    if not hmac_valid(ctx.secrets["HOOK_SECRET"], request["body"], request["headers"].get("x-signature", ""),
                      prefix="sha256="):
        raise Deny("bad signature")
    return {"ok": True}

@http("GET", "/hooks/redirect")
def redirect(ctx, request):
    return {"status": 302, "headers": {"Location": request["query"].get("next", "/")}}

@http("POST", "/hooks/redirect")
def redirect_post(ctx, request):
    return {"status": 302, "headers": {"Location": request["body"].decode()}}
'''


@pytest.fixture(scope="module")
def hooks(database, tmp_path_factory):
    folder = tmp_path_factory.mktemp("webhooks-app") / "app"
    config = write_app(folder, f"""
        import dataclasses, runpy
        app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"], function_workers=2,
                                  function_http_answer_within={ANSWER_WITHIN})
    """)
    (folder / "functions").mkdir()
    (folder / "functions" / "hooks.py").write_text(textwrap.dedent(HOOKS))
    process = GatewayProcess(gateway_env(database, HOOK_SECRET=SECRET), config=config).start()
    yield process
    process.stop()


def signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def unexpected_tracebacks(process: GatewayProcess) -> int:
    """Tracebacks in the gateway's log other than the one a failing function's run logs for the operator."""
    log = process.log_text()
    return log.count("Traceback") - log.count("(http POST /hooks/delivered) failed:\nTraceback")


async def one(process: GatewayProcess, data: bytes, timeout: float = 10):
    async with await Raw.open(process.port) as raw:
        await raw.send(data)
        return await raw.answer(timeout)


async def runs(database: str, name: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database)
    try:
        return await conn.fetch("SELECT id, outcome, finished FROM hapta.function_runs WHERE name = $1 ORDER BY id",
                                name)
    finally:
        await conn.close()


async def test_the_route_is_judged_before_any_body_is_read(hooks):
    """A head that declares a 1 MiB body for a path nobody declared is answered 404 at once, with no byte of the
    body sent (the old reader waited for the whole body first); a method the path does not take is 405 with
    Allow; the gateway's own GET routes answer other methods 405 too."""
    for head, status, allow in ((b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n", 404, None),
                                (b"PUT /hooks/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n", 405,
                                 "POST"),
                                (b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n", 405, "GET")):
        started = time.monotonic()
        async with await Raw.open(hooks.port) as raw:
            await raw.send(head)
            answer = await raw.answer(timeout=2)
            assert answer.status == status and answer.headers.get("allow") == allow
            assert answer.headers["connection"] == "close" and await raw.closed(3)
        assert time.monotonic() - started < 2


async def test_a_body_framed_two_ways_is_refused(hooks):
    """Content-Length and Transfer-Encoding together: which one frames the body is where a proxy and a server may
    disagree (request smuggling), so neither is believed: 400, and the connection closes."""
    async with await Raw.open(hooks.port) as raw:
        await raw.send(b"POST /hooks/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n")
        assert (await raw.answer()).status == 400 and await raw.closed(3)


async def test_keep_alive_serves_requests_in_turn_on_one_connection(hooks):
    """Two requests written at once (pipelined), then a chunked one, then a GET route: four answers, in order, on
    one connection (the old reader answered one request and closed)."""
    async with await Raw.open(hooks.port) as raw:
        await raw.send(post("/hooks/echo?n=1", b"first") + post("/hooks/echo?n=2", b"second!"))
        first, second = await raw.answer(), await raw.answer()
        assert first.json() == {"length": 5, "head": "first", "query": {"n": "1"}}
        assert second.json() == {"length": 7, "head": "second!", "query": {"n": "2"}}
        await raw.send(chunked("/hooks/echo", [b"chunk one ", b"and two"]))
        assert (await raw.answer()).json()["length"] == 17
        await raw.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        health = await raw.answer()
        assert health.status == 200 and health.json()["status"] == "ok"
        await raw.send(post("/hooks/echo", b"last", {"Connection": "close"}))
        assert (await raw.answer()).status == 200 and await raw.closed(3)


async def test_a_slow_function_is_answered_202_with_its_run_which_goes_on(hooks, database):
    """A function slower than App.function_http_answer_within (1 s here; it sleeps 3 s): the provider gets 202
    with the run's id within the bound and is not left waiting (issue 26 item 9: no answer at all after 10 s,
    and the provider retries), and the run goes on to its end, recorded in functions.runs as ok."""
    started = time.monotonic()
    answer = await one(hooks, post("/hooks/slow?seconds=3", b"{}"))
    waited = time.monotonic() - started
    assert answer.status == 202 and waited < ANSWER_WITHIN + 1.0, (answer, waited)
    run = answer.json()["run"]

    async def finished():
        rows = {r["id"]: r for r in await runs(database, "slow")}
        return rows.get(run) is not None and rows[run]["outcome"] == "ok"
    await eventually(finished, timeout=15, what="the run to end ok")
    quick = await one(hooks, post("/hooks/slow?seconds=0", b"{}"))   # within the bound: the function's answer
    assert quick.status == 200 and quick.json() == {"slept": True}


async def test_a_retried_delivery_runs_once_and_gets_the_first_answer(hooks, database):
    """A delivery id seen before (X-Delivery, the header the route names): a retry while the first run goes on gets
    202 with the same run id; a retry after it gets the first answer again (status, headers, body); neither runs
    the function again. A delivery whose run failed (500) runs again when retried."""
    before = len(await runs(database, "delivered"))
    slow = json.dumps({"id": "evt_slow", "sleep": 2.5}).encode()
    first = await one(hooks, post("/hooks/delivered", slow, {"X-Delivery": "d-1"}))
    assert first.status == 202
    retry = await one(hooks, post("/hooks/delivered", slow, {"X-Delivery": "d-1"}))
    assert retry.status == 202 and retry.json()["run"] == first.json()["run"]

    async def answered():
        answer = await one(hooks, post("/hooks/delivered", slow, {"X-Delivery": "d-1"}))
        return answer if answer.status == 200 else None
    late = await eventually(answered, timeout=15, what="the first run's answer to be kept")
    assert late.json() == {"handled": "evt_slow"} and late.headers["x-event"] == "evt_slow"

    quick = json.dumps({"id": "evt_quick"}).encode()
    answers = [await one(hooks, post("/hooks/delivered", quick, {"X-Delivery": "d-2"})) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    assert {a.body for a in answers} == {b'{"handled":"evt_quick"}'}
    assert len(await runs(database, "delivered")) == before + 2   # d-1 once, d-2 once

    failing = json.dumps({"id": "evt_fail", "fail": True}).encode()
    for _ in range(2):
        assert (await one(hooks, post("/hooks/delivered", failing, {"X-Delivery": "d-3"}))).status == 500
    assert len(await runs(database, "delivered")) == before + 4   # a failure lets the retry run again


async def test_a_refused_signature_costs_no_write_and_no_history(hooks, database):
    """A route that declares its signing (secret=, signature_header=) is refused by the gateway before anything
    runs: 120 unsigned or wrongly signed POSTs get 403 and leave hapta.function_runs as it was, not one id drawn
    from its sequence (before: three writes each, and the real runs pushed out of functions.runs)."""
    body = json.dumps({"id": "evt_real"}).encode()
    real = await one(hooks, post("/hooks/signed", body, {"X-Hub-Signature-256": signature(body)}))
    assert real.status == 200 and real.json() == {"ok": "evt_real"}
    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM hapta.function_runs")
        drawn = await conn.fetchval("SELECT last_value FROM hapta.function_runs_id_seq")
        deliveries = await conn.fetchval("SELECT count(*) FROM hapta.webhook_deliveries")
        forged = [{}, {"X-Hub-Signature-256": signature(body, "not-the-secret")},
                  {"X-Hub-Signature-256": "sha256=" + "0" * 64}, {"X-Hub-Signature-256": "sha256=zz"}]
        async with await Raw.open(hooks.port) as raw:   # one kept-alive connection, as a flood would use
            for n in range(120):
                await raw.send(post("/hooks/signed", body, forged[n % len(forged)]))
                answer = await raw.answer()
                assert (answer.status, answer.body) == (403, b"bad signature\n")
        assert await conn.fetchval("SELECT count(*) FROM hapta.function_runs") == rows
        assert await conn.fetchval("SELECT last_value FROM hapta.function_runs_id_seq") == drawn
        assert await conn.fetchval("SELECT count(*) FROM hapta.webhook_deliveries") == deliveries
    finally:
        await conn.close()
    from hapta.client import Client
    async with await Client.connect(hooks.url) as admin:   # the real run is still in its history
        await admin.call("auth.admin", {"key": ADMIN_KEY})
        history = (await admin.call("functions.runs", {"name": "signed"}))["runs"]
        assert [r["outcome"] for r in history] == ["ok"]


async def test_a_non_ascii_signature_is_refused_not_a_traceback(hooks):
    """hmac_valid with a signature of non-ASCII characters (issue 26 item 10: TypeError in compare_digest, 500 and a
    traceback): False, so the function's Deny answers 403; the gateway's own check alike."""
    body = b'{"id": "evt_x"}'
    for path, header in (("/hooks/self-checked", "X-Signature"), ("/hooks/signed", "X-Hub-Signature-256")):
        head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n").encode() + \
            header.encode() + b": sha256=\xc3\xa9\xe2\x82\xac" + b"a" * 58 + b"\r\n\r\n"
        answer = await one(hooks, head + body)
        assert (answer.status, answer.body) == (403, b"bad signature\n")
    assert unexpected_tracebacks(hooks) == 0


async def test_a_function_cannot_split_its_answer_with_cr_lf(hooks):
    """A function that reflects a CR/LF into a header (a redirect to a query's `next`) is answered 500 without
    details and without the injected header, over websockets' GET path and h11's alike, and logs no traceback
    (issue 26 item 10: 500 with a traceback)."""
    async with await Raw.open(hooks.port) as raw:
        await raw.send(b"GET /hooks/redirect?next=/home%0d%0aSet-Cookie:%20session=stolen HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await raw.answer()
    assert (answer.status, answer.body) == (500, b"internal error\n") and "set-cookie" not in answer.headers
    answer = await one(hooks, post("/hooks/redirect", b"/home\r\nSet-Cookie: session=stolen"))
    assert (answer.status, answer.body) == (500, b"internal error\n") and "set-cookie" not in answer.headers
    answer = await one(hooks, post("/hooks/redirect", "/caf\u00e9/\u20ac".encode()))   # "€" has no Latin-1 octet
    assert (answer.status, answer.body) == (500, b"internal error\n")
    fine = await one(hooks, b"GET /hooks/redirect?next=/home HTTP/1.1\r\nHost: x\r\n\r\n")
    assert fine.status == 302 and fine.headers["location"] == "/home"
    assert unexpected_tracebacks(hooks) == 0

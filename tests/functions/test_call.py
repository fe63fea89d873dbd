"""Server functions over the socket (`functions.call`), end to end: a real gateway with a functions/ folder, its
own worker processes, real clients. Who may call (the allow rule), what a function can read of the environment
(only the secrets it declared, never the gateway's own), its deadline (the worker is killed, the next call
works), its memory bound, and what the client learns when it fails (a code, never a traceback)."""
from __future__ import annotations

import asyncio
import json
import secrets
import tarfile
import textwrap
from pathlib import Path

import pytest
import pytest_asyncio

from hapta.client import Client
from hapta.protocol.errors import HaptaError
from tests.conftest import ADMIN_KEY, ANON_KEY, PASSWORD, gateway_env
from tests.limits.wire import sample, scrape
from tests.services import GatewayProcess, next_loopback, write_app

FUNCTIONS = '''
import os, time
from hapta.functions import Deny, call

@call(allow="@user.id != null")
def whoami(ctx, args):
    return {"user": ctx.user_id, "role": ctx.role, "args": args}

@call(allow="")
async def count_posts(ctx, args):
    rows = await ctx.sql("SELECT count(*) AS n FROM posts WHERE author = $1", ctx.user_id)
    return rows[0]["n"]

@call(allow="", secrets=("PAYMENT_API_KEY",))
def environment(ctx, args):
    # what the process holds, and what the function was given
    return {"secrets": ctx.secrets, "environ": sorted(k for k in os.environ if "KEY" in k or "SECRET" in k
                                                          or k.startswith(("HAPTA_", "DATABASE", "PG")))}

@call(allow='@user.role = "admin"')
def admins_only(ctx, args):
    return "ok"

@call(allow="", timeout=0.5)
def hangs(ctx, args):
    time.sleep(60)

@call(allow="")
def refuses(ctx, args):
    raise Deny("not today")

@call(allow="")
def breaks(ctx, args):
    raise ValueError("a secret detail of the bug")

@call(allow="")
async def read_post(ctx, args):
    """ctx.records under the caller's rules: a private post of someone else is NOT_FOUND to it."""
    from hapta.functions import OpError
    try:
        return (await ctx.records("posts").get(args["id"]))["text"]
    except OpError as error:
        return error.code

@call(allow="", admin=True)
async def read_post_as_admin(ctx, args):
    return (await ctx.records("posts").get(args["id"]))["text"]

@call(allow="")
async def post_for(ctx, args):
    created = await ctx.records("posts").create({"author": ctx.user_id, "text": args["text"], "public": True})
    return created["author"]

@call(allow="")
async def post_with_comment(ctx, args):
    """ctx.batch: a post and a comment on it in one transaction, under the caller's rules; a refusal keeps none."""
    from hapta.functions import OpError
    ops = [{"op": "create", "collection": "posts", "data": {"author": ctx.user_id, "text": args["text"]}},
           {"op": "create", "collection": "comments", "data": {"post": {"$ref": 0}, "author": args["author"],
                                                               "text": "first"}}]
    try:
        done = await ctx.batch(ops)
    except OpError as error:
        return error.code
    return [result["id"] for result in done["results"]]

@call(allow="")
async def count_mine(ctx, args):
    """ctx.records(...).aggregate under the caller's list rule."""
    found = await ctx.records("posts").aggregate(filter="author = @user.id")
    return found["groups"][0]["count"]

@call(allow="", admin=True)
async def back_up(ctx, args):
    """ctx.backup: what a nightly @every function would do (this one is called, to be tested without a clock)."""
    return await ctx.backup(args.get("name"))

@call(allow="")
async def back_up_as_caller(ctx, args):
    from hapta.functions import OpError
    try:
        return await ctx.backup("mine.tar")
    except OpError as error:
        return error.code

@call(allow="")
async def notify(ctx, args):
    await ctx.publish(f"user:{args['to']}", {"from": ctx.user_id, "text": args["text"]})
    return "sent"

@call(allow="")
async def both_or_neither(ctx, args):
    from hapta.functions import SqlError
    await ctx.sql("CREATE TABLE IF NOT EXISTS pairs (k text PRIMARY KEY)")
    outcome = {}
    try:
        rows = await ctx.transaction(("INSERT INTO pairs VALUES ($1) RETURNING k", [args["a"]]),
                                     ("INSERT INTO pairs VALUES ($1) RETURNING k", (args["b"],)))
        outcome["rows"] = rows
    except SqlError as error:
        outcome["failed"] = error.sqlstate
    kept = await ctx.sql("SELECT k FROM pairs WHERE k = ANY($1) ORDER BY k", [args["a"], args["b"]])
    return {**outcome, "kept": [row["k"] for row in kept]}

@call(allow="")
def chatty(ctx, args):
    ctx.log.info("charging %s cents", args["amount"])
    ctx.log.warning("the card expires soon")
    return "charged"

@call(allow="")
def hungry(ctx, args):
    return len(bytearray(2 * 1024 ** 3))   # 2 GiB: past the worker's address-space limit
'''


@pytest.fixture(scope="module")
def functions_gateway(database, tmp_path_factory):
    folder = tmp_path_factory.mktemp("functions-app") / "app"
    config = write_app(folder, """
        import dataclasses, runpy
        app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"], function_workers=2, rule_workers=1)
    """)
    (folder / "functions").mkdir()
    (folder / "functions" / "demo.py").write_text(textwrap.dedent(FUNCTIONS))
    env = gateway_env(database, PAYMENT_API_KEY="pk-test-123", OTHER_API_KEY="not-declared")
    process = GatewayProcess(env, config=config).start()
    yield process
    process.stop()
    log = process.log_text()   # the functions' own failures are logged with their tracebacks, nothing else is
    assert log.count("Traceback") == log.count(" failed:\nTraceback (most recent call last):\n  File \"/"), log


@pytest_asyncio.fixture
async def connect(functions_gateway):
    clients: list[Client] = []

    async def make() -> Client:
        client = await Client.connect(functions_gateway.url, local_addr=(next_loopback(), 0))
        clients.append(client)
        return client
    yield make
    for client in clients:
        await client.close()


async def signed_in(connect) -> tuple[Client, dict]:
    client = await connect()
    name = "f" + secrets.token_hex(5)
    session = await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD})
    return client, session


async def code_of(coroutine) -> str:
    with pytest.raises(HaptaError) as refused:
        await coroutine
    assert "Traceback" not in refused.value.message
    return refused.value.code


async def test_a_function_answers_with_its_return_value_for_its_caller(connect):
    client, session = await signed_in(connect)
    assert await client.call("functions.call", {"name": "whoami", "args": {"n": [1, 2]}}) == \
        {"user": session["user"]["id"], "role": "user", "args": {"n": [1, 2]}}
    await client.call("records.create", {"collection": "posts", "data": {
        "author": session["user"]["id"], "text": "one", "public": False}})
    assert await client.call("functions.call", {"name": "count_posts"}) == 1   # ctx.sql, as the gateway


async def test_ctx_transaction_keeps_all_statements_or_none(connect):
    client, _ = await signed_in(connect)
    a, b = f"a-{secrets.token_hex(4)}", f"b-{secrets.token_hex(4)}"
    assert await client.call("functions.call", {"name": "both_or_neither", "args": {"a": a, "b": b}}) == \
        {"rows": [[{"k": a}], [{"k": b}]], "kept": [a, b]}
    c = f"c-{secrets.token_hex(4)}"   # the second statement fails (a duplicate key): the first is undone
    assert await client.call("functions.call", {"name": "both_or_neither", "args": {"a": c, "b": a}}) == \
        {"failed": "23505", "kept": [a]}


async def test_the_allow_rule_decides_who_may_call(connect):
    anon = await connect()
    await anon.call("auth.anon", {"apikey": ANON_KEY})
    assert await code_of(anon.call("functions.call", {"name": "whoami"})) == "FORBIDDEN"
    user, _ = await signed_in(connect)
    assert await code_of(user.call("functions.call", {"name": "admins_only"})) == "FORBIDDEN"
    admin = await connect()
    await admin.call("auth.admin", {"key": ADMIN_KEY})
    assert await admin.call("functions.call", {"name": "admins_only"}) == "ok"
    guest = await connect()
    assert await code_of(guest.call("functions.call", {"name": "count_posts"})) == "UNAUTHENTICATED"
    assert await code_of(user.call("functions.call", {"name": "no_such_function"})) == "NOT_FOUND"


async def test_a_function_reads_the_secrets_it_declared_and_nothing_else(connect):
    client, _ = await signed_in(connect)
    seen = await client.call("functions.call", {"name": "environment"})
    assert seen["secrets"] == {"PAYMENT_API_KEY": "pk-test-123"}
    # the worker's own environment holds neither the gateway's settings nor the app's other secrets
    assert seen["environ"] == ["HAPTA_ENV"]


async def test_a_hanging_function_is_killed_at_its_deadline_and_the_next_call_works(connect):
    client, session = await signed_in(connect)
    assert await code_of(client.call("functions.call", {"name": "hangs"})) == "TIMEOUT"
    for _ in range(3):   # two workers: whichever takes these, they answer
        assert (await client.call("functions.call", {"name": "whoami"}))["user"] == session["user"]["id"]


async def test_failures_reach_the_client_as_codes_without_details(connect):
    client, _ = await signed_in(connect)
    with pytest.raises(HaptaError) as denied:
        await client.call("functions.call", {"name": "refuses"})
    assert (denied.value.code, denied.value.message) == ("RULE_DENIED", "not today")
    with pytest.raises(HaptaError) as broken:
        await client.call("functions.call", {"name": "breaks"})
    assert broken.value.code == "INTERNAL" and "secret detail" not in broken.value.message
    assert await code_of(client.call("functions.call", {"name": "hungry"})) == "INTERNAL"   # MemoryError
    assert (await client.call("functions.call", {"name": "whoami"}))["role"] == "user"
    assert await code_of(client.call("functions.call", {"name": 7})) == "BAD_REQUEST"


async def test_ctx_records_runs_under_the_callers_rules_unless_the_function_is_admin(connect):
    alice, alice_session = await signed_in(connect)
    bob, bob_session = await signed_in(connect)
    secret = await alice.call("records.create", {"collection": "posts", "data": {
        "author": alice_session["user"]["id"], "text": "alice's secret", "public": False}})
    assert await alice.call("functions.call", {"name": "read_post", "args": {"id": secret["id"]}}) == "alice's secret"
    assert await bob.call("functions.call", {"name": "read_post", "args": {"id": secret["id"]}}) == "NOT_FOUND"
    assert await bob.call("functions.call", {"name": "read_post_as_admin", "args": {"id": secret["id"]}}) == \
        "alice's secret"
    # a write through ctx.records is the caller's, judged by the create rule (author = @user.id)
    assert await bob.call("functions.call", {"name": "post_for", "args": {"text": "via a function"}}) == \
        bob_session["user"]["id"]


async def test_ctx_batch_writes_all_or_nothing_under_the_callers_rules(connect):
    alice, alice_session = await signed_in(connect)
    _, bob_session = await signed_in(connect)
    me = alice_session["user"]["id"]
    post_id, comment_id = await alice.call("functions.call", {"name": "post_with_comment", "args": {
        "text": "batched by a function", "author": me}})
    assert (await alice.call("records.get", {"collection": "comments", "id": comment_id}))["post"] == post_id
    # a comment in bob's name is refused by the create rule, and the post before it is not kept
    assert await alice.call("functions.call", {"name": "post_with_comment", "args": {
        "text": "never kept", "author": bob_session["user"]["id"]}}) == "FORBIDDEN"
    page = await alice.call("records.list", {"collection": "posts", "filter": 'text = "never kept"', "count": True})
    assert page["total"] == 0
    assert await alice.call("functions.call", {"name": "count_mine"}) == 1


async def test_ctx_backup_writes_an_archive_as_hapta_backup_does(connect, functions_gateway):
    alice, _ = await signed_in(connect)
    assert await alice.call("functions.call", {"name": "back_up_as_caller"}) == "FORBIDDEN"   # not as a user
    started = await alice.call("functions.call", {"name": "back_up", "args": {"name": "nightly-test.tar"}})
    archive = Path(started["target"])
    assert started["started"] is True and archive.name == "nightly-test.tar" and archive.parent.name == "backups"
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while "backup: " not in functions_gateway.log_text():   # it runs in the background; the log says when done
            assert asyncio.get_running_loop().time() < deadline, functions_gateway.log_text()
            await asyncio.sleep(0.1)
        with tarfile.open(archive) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))
            assert manifest["database"]["rows"]["users"] >= 1 and "database.dump" in tar.getnames()
    finally:
        archive.unlink(missing_ok=True)


async def test_ctx_publish_reaches_a_channels_members(connect):
    alice, alice_session = await signed_in(connect)
    bob, _ = await signed_in(connect)
    inbox = f"user:{alice_session['user']['id']}"
    await alice.call("channels.join", {"channel": inbox})
    assert await bob.call("functions.call", {"name": "notify", "args": {
        "to": alice_session["user"]["id"], "text": "hi"}}) == "sent"
    event = await alice.next_event(timeout=5)
    assert event["event"] == "channels.message"
    assert event["data"]["channel"] == inbox
    assert event["data"]["from"] == {"id": "server", "user": None, "role": "server"}
    assert event["data"]["data"]["text"] == "hi"


async def test_a_calls_log_lines_and_failures_are_kept_for_functions_runs(connect):
    client, _ = await signed_in(connect)
    assert await client.call("functions.call", {"name": "chatty", "args": {"amount": 500}}) == "charged"
    await code_of(client.call("functions.call", {"name": "breaks"}))
    admin = await connect()
    await admin.call("auth.admin", {"key": ADMIN_KEY})

    async def newest(name: str) -> dict | None:
        runs = (await admin.call("functions.runs", {"name": name}))["runs"]
        return runs[0] if runs else None
    deadline = asyncio.get_running_loop().time() + 10
    while not (await newest("chatty") and await newest("breaks")):   # recorded after the reply, off its path
        assert asyncio.get_running_loop().time() < deadline, "the runs were never recorded"
        await asyncio.sleep(0.05)
    chatty = await newest("chatty")
    assert (chatty["trigger"], chatty["outcome"]) == ("call", "ok")
    assert chatty["logs"] == ["INFO charging 500 cents", "WARNING the card expires soon"]
    broken = await newest("breaks")
    assert (broken["outcome"], broken["message"]) == ("failed", "ValueError: a secret detail of the bug")
    # a call that succeeds without logging costs no record
    await client.call("functions.call", {"name": "whoami"})
    assert await newest("whoami") is None


async def test_admins_list_the_functions(connect):
    admin = await connect()
    await admin.call("auth.admin", {"key": ADMIN_KEY})
    listed = {f["name"]: f for f in (await admin.call("functions.list"))["functions"]}
    assert listed["whoami"] == {"name": "whoami", "triggers": ["call"], "allow": "@user.id != null",
                                "timeout": 10.0, "secrets": [], "admin": False, "file": "demo.py",
                                "last_run": None, "dead": 0}
    assert listed["environment"]["secrets"] == ["PAYMENT_API_KEY"]
    user, _ = await signed_in(connect)
    assert await code_of(user.call("functions.list")) == "FORBIDDEN"


async def test_admins_see_the_function_workers_as_the_hook_workers(connect):
    """functions.status: the function pool in hooks.status's shape, each function with its triggers."""
    admin = await connect()
    await admin.call("auth.admin", {"key": ADMIN_KEY})
    pool = await admin.call("functions.status")
    hooks = await admin.call("hooks.status")
    assert set(pool) - {"limited", "functions"} == set(hooks) - {"hooks"}
    assert (pool["size"], pool["functions"]["whoami"]) == (2, ["call"])
    old = await admin.call("rules.status")   # its first name, answering the same
    assert hooks["size"] == old["size"] == 1 and set(old) == set(hooks) and old["hooks"] == hooks["hooks"]
    user, _ = await signed_in(connect)
    for op in ("functions.status", "hooks.status", "rules.status"):
        assert await code_of(user.call(op)) == "FORBIDDEN", op


async def test_metrics_count_each_pools_workers_apart(connect, functions_gateway):
    """hapta_workers and hapta_worker_restarts_total carry the pool: the one hook worker and the two function
    workers of this gateway are two series, and a function worker killed at its deadline is a functions restart
    (one gauge for both pools showed whichever pool changed last)."""
    def figures() -> dict[str, float]:
        text = scrape(functions_gateway)[2]
        return {f"{name}:{pool}": sample(text, name, pool=pool)
                for name in ("hapta_workers", "hapta_worker_restarts_total") for pool in ("hooks", "functions")}
    before = await asyncio.to_thread(figures)
    assert (before["hapta_workers:hooks"], before["hapta_workers:functions"]) == (1, 2)
    client, _ = await signed_in(connect)
    assert await code_of(client.call("functions.call", {"name": "hangs"})) == "TIMEOUT"   # its worker is killed
    deadline = asyncio.get_running_loop().time() + 30
    while True:   # the replacement takes a moment to start
        after = await asyncio.to_thread(figures)
        if after["hapta_workers:functions"] == 2 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert after == {**before, "hapta_worker_restarts_total:functions": before["hapta_worker_restarts_total:functions"] + 1}
    assert "hapta_rule_workers" not in scrape(functions_gateway)[2]


def test_a_function_may_not_declare_the_gateways_own_secrets(database, tmp_path):
    folder = tmp_path / "app"
    config = write_app(folder, """
        import runpy
        app = runpy.run_path(APP + "/config.py")["app"]
    """)
    (folder / "functions").mkdir()
    (folder / "functions" / "greedy.py").write_text(textwrap.dedent('''
        from hapta.functions import call

        @call(allow="", secrets=("HAPTA_JWT_SECRET",))
        def greedy(ctx, args):
            return ctx.secrets
    '''))
    process = GatewayProcess(gateway_env(database), config=config)
    with pytest.raises(RuntimeError) as refused:
        process.start()
    assert "greedy may not read HAPTA_JWT_SECRET" in str(refused.value)

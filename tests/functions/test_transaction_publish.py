"""ctx.transaction(..., publish=[...]): a function's channel messages go out only if its transaction commits, after
the record changes its statements made, from the server as ctx.publish sends them. A real gateway with a functions/
folder and its worker processes, real clients."""
from __future__ import annotations

import secrets
import textwrap
from typing import Any

import pytest
import pytest_asyncio

from hapta.client import Client
from tests.conftest import PASSWORD, gateway_env
from tests.live.realtime.helpers import change_of, events_until
from tests.services import GatewayProcess, next_loopback, write_app

FUNCTIONS = '''
from hapta.functions import OpError, SqlError, call

@call(allow="")
async def post_and_tell(ctx, args):
    """A post written in SQL and a message to the room, in one transaction; `fail` makes its last statement fail."""
    statements = [("INSERT INTO posts (author, text, public) VALUES ($1, $2, true) RETURNING id",
                   [ctx.user_id, args["text"]])]
    if args.get("fail"):
        statements.append(("SELECT 1 / 0", []))
    try:
        rows = await ctx.transaction(*statements, publish=args["publish"])
    except SqlError as error:
        return {"failed": error.sqlstate}
    except OpError as error:
        return {"refused": error.code, "message": error.message}
    return {"id": rows[0][0]["id"]}
'''


@pytest.fixture(scope="module")
def functions_gateway(database, tmp_path_factory):
    folder = tmp_path_factory.mktemp("publish-app") / "app"
    config = write_app(folder, """
        import dataclasses, runpy
        app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"], function_workers=1, rule_workers=1)
    """)
    (folder / "functions").mkdir()
    (folder / "functions" / "publish.py").write_text(textwrap.dedent(FUNCTIONS))
    process = GatewayProcess(gateway_env(database), config=config).start()
    yield process
    process.stop()
    assert "Traceback" not in process.log_text(), process.log_text()


@pytest_asyncio.fixture
async def signed_in(functions_gateway):
    clients: list[Client] = []

    async def make() -> tuple[Client, str]:
        client = await Client.connect(functions_gateway.url, local_addr=(next_loopback(), 0))
        clients.append(client)
        name = "p" + secrets.token_hex(5)
        session = await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD})
        return client, session["user"]["id"]
    yield make
    for client in clients:
        await client.close()


def _message(event: dict[str, Any]) -> bool:
    return event.get("event") == "channels.message"


SERVER = {"id": "server", "user": None, "role": "server"}


async def test_a_committed_transaction_publishes_after_its_changes_and_a_failed_one_nothing(signed_in):
    room = f"room:{secrets.token_hex(4)}"
    listener, _ = await signed_in()
    await listener.call("channels.join", {"channel": room})
    await listener.call("realtime.subscribe", {"collection": "posts"})
    caller, _ = await signed_in()

    # the last statement fails: the post is undone and nothing is published
    failed = await caller.call("functions.call", {"name": "post_and_tell", "args": {
        "text": "undone", "fail": True, "publish": [{"channel": room, "data": "never"}]}})
    assert failed == {"failed": "22012"}

    done = await caller.call("functions.call", {"name": "post_and_tell", "args": {
        "text": "kept", "publish": [{"channel": room, "data": {"n": 1}}, [room, {"n": 2}]]}})
    events = await events_until(listener, lambda e: _message(e) and e["data"]["data"] == {"n": 2})
    # the first message heard is this transaction's: the failed one sent none
    assert [e["data"] for e in events if _message(e)] == [
        {"channel": room, "data": {"n": 1}, "from": SERVER}, {"channel": room, "data": {"n": 2}, "from": SERVER}]
    created = [i for i, e in enumerate(events) if change_of(done["id"], "create")(e)]
    first_message = next(i for i, e in enumerate(events) if _message(e))
    assert created and created[0] < first_message, events
    assert not any(e["event"] == "records.change" and e["data"]["record"]["text"] == "undone" for e in events)


async def test_a_refused_message_refuses_the_transaction_before_it_runs(signed_in):
    caller, me = await signed_in()
    text = f"never {secrets.token_hex(4)}"
    for publish, code, index in [
            ([{"channel": "room:fine", "data": 1}, {"channel": "not a name", "data": 1}], "BAD_REQUEST", 1),
            ([{"channel": "room:fine", "data": "x" * 8000}], "TOO_LARGE", 0),
            ([{"channel": "room:fine", "data": 1}] * 17, "BAD_REQUEST", None)]:
        answer = await caller.call("functions.call", {"name": "post_and_tell", "args": {"text": text,
                                                                                        "publish": publish}})
        assert answer["refused"] == code, answer
        if index is not None:
            assert answer["message"].startswith(f"publish {index} (to "), answer
    page = await caller.call("records.list", {"collection": "posts", "filter": f'text = "{text}"', "count": True})
    assert page["total"] == 0

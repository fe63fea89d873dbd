"""The demo app's own functions (the repository's functions/): a message's recipient hears of it on their private
channel, on whatever connection of theirs joined it; the hourly clean-up is declared once, as a schedule."""
from __future__ import annotations

import asyncio
import secrets

from hapta.client import Client
from tests.conftest import ADMIN_KEY, PASSWORD, gateway_env
from tests.demo import demo_only
from tests.services import ROOT, GatewayProcess, next_loopback, write_app


@demo_only
async def test_a_new_message_is_announced_on_the_recipients_channel(database, tmp_path):
    folder = tmp_path / "app"
    config = write_app(folder, """
        import dataclasses, runpy
        app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"], function_workers=1)
    """)
    (folder / "functions").symlink_to(ROOT / "functions")
    process = await asyncio.to_thread(GatewayProcess(gateway_env(database), config=config).start)
    clients: list[Client] = []
    try:
        async def user() -> tuple[Client, dict]:
            client = await Client.connect(process.url, local_addr=(next_loopback(), 0))
            clients.append(client)
            name = "d" + secrets.token_hex(5)
            session = await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD})
            return client, session["user"]
        (alice, alice_user), (bob, bob_user) = await user(), await user()
        admin = await Client.connect(process.url, local_addr=(next_loopback(), 0))
        clients.append(admin)
        await admin.call("auth.admin", {"key": ADMIN_KEY})
        listed = {f["name"]: f["triggers"] for f in (await admin.call("functions.list"))["functions"]}
        assert listed == {"notify_recipient": ["on messages create"], "forget_old_messages": ["every 0 * * * *"]}
        await alice.call("channels.join", {"channel": f"user:{alice_user['id']}"})
        deadline = asyncio.get_running_loop().time() + 30
        while not (await admin.call("functions.runs", {"name": "notify_recipient"}))["runs"] and \
                asyncio.get_running_loop().time() < deadline:
            # the trigger reads the log from where it first started: write until it has run once
            await bob.call("records.create", {"collection": "messages", "data": {
                "sender": bob_user["id"], "recipient": alice_user["id"], "text": "warming up"}})
            await asyncio.sleep(0.3)
        sent = await bob.call("records.create", {"collection": "messages", "data": {
            "sender": bob_user["id"], "recipient": alice_user["id"], "text": "hi alice"}})
        while True:
            event = await alice.next_event(timeout=10)
            if event["event"] == "channels.message" and event["data"]["data"]["id"] == sent["id"]:
                break
        assert event["data"]["data"] == {"kind": "message", "id": sent["id"], "from": bob_user["id"]}
        assert event["data"]["from"]["role"] == "server"
    finally:
        for client in clients:
            await client.close()
        process.stop()

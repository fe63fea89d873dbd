"""S3 goes away in the middle of an upload: the uploader hears UNAVAILABLE at once, and once S3 is back nothing of
the upload is left in the bucket (the sweeper aborts the unfinished multipart upload)."""
from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import pytest

from hapta.client import Client, HaptaError
from tests.conftest import PASSWORD
from tests.files.conftest import MIB, start_files_gateway, stop_files_gateway
from tests.files.test_refusals import acked, open_upload, send
from tests.services import CuttableProxy


async def test_s3_down_mid_upload(pg_admin, files_app, seaweed, tmp_path):
    proxy = await CuttableProxy("127.0.0.1", urlsplit(seaweed.endpoint).port).start()
    gateway = await start_files_gateway("s3", pg_admin, files_app, tmp_path, seaweed,
                                        s3_endpoint=f"http://127.0.0.1:{proxy.port}")
    try:
        async with await Client.connect(gateway.url) as client:
            session = await client.call("auth.register", {"email": "outage@example.com", "password": PASSWORD})
            post = (await client.call("records.create", {"collection": "posts", "data": {
                "author": session["user"]["id"], "text": "outage"}}))["id"]
            opened = await open_upload(client, post, 24 * MIB)
            stream = opened["stream"]
            await send(client, stream, bytes(10 * MIB))   # one part is in S3 already
            await acked(client, stream, 10 * MIB)
            assert await gateway.stored(post) != []
            await proxy.cut()
            await send(client, stream, bytes(14 * MIB))    # the next part cannot be stored
            with pytest.raises(HaptaError) as failed:
                await client.call("files.finish", {"stream": stream})
            assert failed.value.code == "UNAVAILABLE" and failed.value.retry_after
            assert "storage" in failed.value.message
            with pytest.raises(HaptaError) as failed:   # new uploads too, without waiting on S3 for long
                await client.upload("posts", post, "attachments", "b.bin", b"b")
            assert failed.value.code == "UNAVAILABLE"
            assert await client.call("ping")               # the gateway itself is fine
            await proxy.start()
            await gateway.settled(post, 0)                  # the sweeper cleaned up once S3 answered
            deadline = time.monotonic() + 20
            while True:   # a client retries as retry_after says; the store is back, so soon it works
                try:
                    done = await client.upload("posts", post, "attachments", "c.bin", b"c" * 1000)
                    break
                except HaptaError as error:
                    assert error.code == "UNAVAILABLE" and time.monotonic() < deadline, gateway.process.log_text()
                    await asyncio.sleep(error.retry_after or 1)
            assert done["file"]["size"] == 1000
    finally:
        await stop_files_gateway(gateway, pg_admin)
        await proxy.cut()

"""A file lives as long as its record holds it: replaced, deleted, or with the record, its object goes too; a
crash mid-upload is swept. Downloads give any range, to whoever may view the record."""
from __future__ import annotations

import asyncio
import signal

import pytest

from hapta.client import HaptaError
from tests.files.conftest import CHUNK, MIB, png, sha256, start_files_gateway, stop_files_gateway
from tests.files.test_refusals import acked, open_upload, send
from tests.conftest import ANON_KEY
from tests.live.realtime.helpers import events_until


async def test_deleting_the_record_removes_its_files(files_gateway, author):
    client, _, post = await author()
    await client.upload("posts", post, "media", "a.png", png(1000), type="image/png")
    await client.upload("posts", post, "attachments", "b.bin", b"b" * 5000)
    assert len(await files_gateway.settled(post, 2)) == 2
    await client.call("records.delete", {"collection": "posts", "id": post})
    await files_gateway.settled(post, 0)


async def test_files_delete(files_gateway, author):
    client, _, post = await author()
    await client.upload("posts", post, "media", "a.png", png(1000), type="image/png")
    await client.upload("posts", post, "media", "b.png", png(2000), type="image/png")
    before = await client.call("records.get", {"collection": "posts", "id": post})
    done = await client.call("files.delete", {"collection": "posts", "id": post, "field": "media", "name": "a.png"})
    assert [f["name"] for f in done["record"]["media"]] == ["b.png"]
    assert done["record"]["version"] == before["version"] + 1
    await files_gateway.settled(post, 1)
    with pytest.raises(HaptaError) as missing:
        await client.download_bytes("posts", post, "media", "a.png")
    assert missing.value.code == "NOT_FOUND"


async def test_media_is_not_writable_through_records(files_gateway, author):
    client, _, post = await author()
    with pytest.raises(HaptaError) as refused:
        await client.call("records.update", {"collection": "posts", "id": post, "data": {
            "media": [{"name": "x", "key": "posts/media/other/0123456789abcdef0123456789abcdef"}]}})
    assert refused.value.code == "VALIDATION_FAILED" and refused.value.details == {"field": "media"}


async def test_download_ranges_and_who_may_download(files_gateway, author, connect_files):
    client, _, post = await author(public=True)
    data = png(3 * CHUNK + 5)
    await client.upload("posts", post, "media", "p.png", data, type="image/png")
    assert await client.download_bytes("posts", post, "media", "p.png", offset=CHUNK - 3, length=CHUNK + 7) \
        == data[CHUNK - 3:2 * CHUNK + 4]
    assert await client.download_bytes("posts", post, "media", "p.png", offset=len(data) - 2) == data[-2:]
    assert await client.download_bytes("posts", post, "media", "p.png", offset=len(data)) == b""
    assert await client.download_bytes("posts", post, "media", "p.png", offset=10, length=10 ** 9) == data[10:]
    with pytest.raises(HaptaError) as refused:
        await client.download_bytes("posts", post, "media", "p.png", offset=len(data) + 1)
    assert refused.value.code == "BAD_REQUEST"
    anon = await connect_files()
    await anon.call("auth.anon", {"apikey": "test-anon-key"})
    assert sha256(await anon.download_bytes("posts", post, "media", "p.png")) == sha256(data)   # public post
    await client.call("records.update", {"collection": "posts", "id": post, "data": {"public": False}})
    with pytest.raises(HaptaError) as refused:
        await anon.download_bytes("posts", post, "media", "p.png")
    assert refused.value.code == "NOT_FOUND"


async def test_a_download_the_reader_stops(files_gateway, author):
    """Taking a few chunks and leaving aborts the stream; the connection goes on serving."""
    client, _, post = await author()
    await client.upload("posts", post, "attachments", "big.bin", bytes(8 * MIB))
    taken = 0
    stream = client.download("posts", post, "attachments", "big.bin")
    async for chunk in stream:
        taken += len(chunk)
        if taken >= 2 * CHUNK:
            break
    await stream.aclose()
    assert taken == 2 * CHUNK
    assert len(await client.download_bytes("posts", post, "attachments", "big.bin", length=100)) == 100


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_a_crash_mid_upload_is_swept_after_restart(backend, pg_admin, files_app, seaweed, tmp_path):
    gateway = await start_files_gateway(backend, pg_admin, files_app, tmp_path, seaweed)
    try:
        from hapta.client import Client
        from tests.conftest import PASSWORD
        async with await Client.connect(gateway.url) as client:
            session = await client.call("auth.register", {"email": "crash@example.com", "password": PASSWORD})
            post = (await client.call("records.create", {"collection": "posts", "data": {
                "author": session["user"]["id"], "text": "crash"}}))["id"]
            opened = await open_upload(client, post, 20 * MIB)
            await send(client, opened["stream"], bytes(10 * MIB))
            await acked(client, opened["stream"], 10 * MIB)
            assert await gateway.stored(post) != []
            gateway.process.proc.send_signal(signal.SIGKILL)   # no cleanup of any kind
            await asyncio.to_thread(gateway.process.proc.wait)
        await asyncio.to_thread(gateway.process.start)        # the same database and storage
        await gateway.settled(post, 0)   # once the lease of the dead process runs out
    finally:
        await stop_files_gateway(gateway, pg_admin)


async def test_readers_never_see_storage_keys(files_gateway, author, connect_files):
    """Issue 11, item 15: a record's files show their name, size, type and hash, never the key the gateway keeps
    them under, in replies, lists and realtime events alike."""
    client, _, post = await author()
    reader = await connect_files()
    await reader.call("auth.anon", {"apikey": ANON_KEY})
    await reader.call("realtime.subscribe", {"collection": "posts", "id": post})
    finished = await client.upload("posts", post, "media", "k.png", png(500), type="image/png")
    event = (await events_until(reader, lambda e: e.get("event") == "records.change"))[-1]
    shown = [finished["record"]["media"],
             (await reader.call("records.get", {"collection": "posts", "id": post}))["media"],
             (await reader.call("records.list", {"collection": "posts", "filter": f'id = "{post}"'}))["items"][0]["media"],
             event["data"]["record"]["media"]]
    for media in shown:
        assert [sorted(entry) for entry in media] == [["name", "sha256", "size", "type"]], media

"""Uploads that must not be stored: each is refused with a precise code, and leaves nothing behind."""
from __future__ import annotations

import asyncio
import json
import time

import asyncpg
import pytest
from websockets.asyncio.client import connect

from hapta.client import HaptaError
from tests.files.conftest import CHUNK, MIB, png
from tests.services import next_loopback

ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(56)   # the start of a Linux executable


async def acked(client, stream: int, at_least: int) -> None:
    """Wait for the gateway to acknowledge `at_least` bytes of a stream sent by hand."""
    while True:
        event = await client.next_event(timeout=20)
        if event["event"] == "files.ack" and event["data"]["stream"] == stream \
                and event["data"]["received"] >= at_least:
            return


async def open_upload(client, post: str, size: int, field: str = "attachments", name: str = "big.bin") -> dict:
    return await client.call("files.upload", {"collection": "posts", "id": post, "field": field, "name": name,
                                              "size": size, "type": "application/octet-stream"})


async def send(client, stream: int, data: bytes) -> None:
    for start in range(0, len(data), CHUNK):
        await client.ws.send(client._chunk(stream, data[start:start + CHUNK]), text=False)


async def test_fewer_bytes_than_declared(files_gateway, author):
    client, _, post = await author()
    with pytest.raises(HaptaError) as refused:
        await client.upload("posts", post, "attachments", "short.bin", b"x" * 500, size=1000)
    assert refused.value.code == "BAD_REQUEST" and refused.value.details == {"received": 500, "size": 1000}
    await files_gateway.settled(post, 0)


async def test_more_bytes_than_declared(files_gateway, author):
    client, _, post = await author()
    with pytest.raises(HaptaError) as refused:
        await client.upload("posts", post, "attachments", "long.bin", b"x" * 3 * CHUNK, size=CHUNK)
    assert refused.value.code == "BAD_REQUEST" and "declared size" in refused.value.message
    await files_gateway.settled(post, 0)
    record = await client.call("records.get", {"collection": "posts", "id": post})
    assert record["attachments"] == []


async def test_an_executable_named_png_is_refused_by_its_content(files_gateway, author):
    client, _, post = await author()
    with pytest.raises(HaptaError) as refused:
        await client.upload("posts", post, "media", "cat.png", ELF + bytes(2 * MIB), type="image/png")
    assert refused.value.code == "VALIDATION_FAILED"
    assert refused.value.details == {"field": "media", "type": "application/x-executable"}
    await files_gateway.settled(post, 0)


async def test_a_declared_type_the_field_refuses(files_gateway, author):
    client, _, post = await author()
    with pytest.raises(HaptaError) as refused:
        await client.upload("posts", post, "media", "notes.txt", b"hello", type="text/plain")
    assert refused.value.code == "VALIDATION_FAILED" and refused.value.details["field"] == "media"


async def test_over_the_max_size_is_refused_before_any_byte(files_gateway, author):
    client, _, post = await author()
    with pytest.raises(HaptaError) as refused:
        await open_upload(client, post, 48 * MIB + 1)
    assert refused.value.code == "TOO_LARGE" and refused.value.details == {"field": "attachments",
                                                                           "max_size": 48 * MIB}
    assert await files_gateway.stored(post) == [] and await files_gateway.unclaimed() == []


async def test_max_count_and_replacing_by_name(files_gateway, author):
    client, _, post = await author()
    for name in ("a", "b", "c"):
        await client.upload("posts", post, "attachments", name, name.encode())
    with pytest.raises(HaptaError) as refused:
        await client.upload("posts", post, "attachments", "d", b"d")
    assert refused.value.code == "VALIDATION_FAILED" and refused.value.details["max_count"] == 3
    done = await client.upload("posts", post, "attachments", "b", b"second b")   # same name: replaces
    assert sorted((f["name"], f["size"]) for f in done["record"]["attachments"]) == [("a", 1), ("b", 8), ("c", 1)]
    assert await client.download_bytes("posts", post, "attachments", "b") == b"second b"
    await files_gateway.settled(post, 3)   # the first "b" is gone from storage


async def test_a_rules_hook_may_refuse(files_gateway, author):
    client, _, post = await author()
    with pytest.raises(HaptaError) as refused:
        await client.upload("posts", post, "attachments", "refused.bin", b"data")
    assert refused.value.code == "RULE_DENIED" and "not welcome" in refused.value.message
    assert await files_gateway.stored(post) == []


async def test_uploading_to_another_users_post(files_gateway, author):
    _, _, public_post = await author(public=True)
    _, _, private_post = await author(public=False)
    intruder, _, _ = await author()
    with pytest.raises(HaptaError) as refused:
        await intruder.upload("posts", public_post, "media", "x.png", png(100), type="image/png")
    assert refused.value.code == "FORBIDDEN"
    with pytest.raises(HaptaError) as refused:
        await intruder.upload("posts", private_post, "media", "x.png", png(100), type="image/png")
    assert refused.value.code == "NOT_FOUND"   # what the view rule hides does not exist
    assert await files_gateway.stored(public_post) == [] and await files_gateway.stored(private_post) == []


async def test_bad_names_fields_and_streams(files_gateway, author):
    client, _, post = await author()
    for name in ("../etc/passwd", "a/b", "x\x00y", " padded", ".."):
        with pytest.raises(HaptaError) as refused:
            await client.upload("posts", post, "attachments", name, b"x")
        assert refused.value.code == "BAD_REQUEST", name
    with pytest.raises(HaptaError) as refused:
        await client.upload("posts", post, "text", "a.bin", b"x")
    assert refused.value.code == "NOT_FOUND"
    with pytest.raises(HaptaError) as refused:
        await client.call("files.finish", {"stream": 4242})
    assert refused.value.code == "NOT_FOUND"
    async with connect(files_gateway.url, local_addr=(next_loopback(), 0)) as raw:   # a chunk for no stream
        await raw.send((4242).to_bytes(4, "big") + b"stray")
        assert json.loads(await raw.recv()) == {"id": None, "ok": False, "error": {
            "code": "BAD_REQUEST", "message": "no upload stream 4242"}}


async def test_abort_leaves_nothing(files_gateway, author):
    client, _, post = await author()
    opened = await open_upload(client, post, 20 * MIB)
    await send(client, opened["stream"], bytes(10 * MIB))   # past one S3 part: a multipart upload exists
    await acked(client, opened["stream"], 10 * MIB)
    assert await files_gateway.stored(post) != []                 # something partial is there...
    assert await client.call("files.abort", {"stream": opened["stream"]}) == {}
    assert await files_gateway.stored(post) == []                 # ...and the abort's reply means it is gone
    assert await files_gateway.unclaimed() == []
    record = await client.call("records.get", {"collection": "posts", "id": post})
    assert record["attachments"] == []


async def test_socket_closed_mid_upload_is_kept_for_a_resume_then_leaves_nothing(files_gateway, author):
    """A signed-in principal's upload waits files.resume_timeout for a resume (tests/files/test_resume.py), never
    in the record; then the sweeper removes it (the test runs its time out in the database)."""
    client, _, post = await author()
    opened = await open_upload(client, post, 20 * MIB)
    await send(client, opened["stream"], bytes(10 * MIB))
    await acked(client, opened["stream"], 10 * MIB)
    assert await files_gateway.stored(post) != []
    client.ws.transport.abort()   # the phone went into a tunnel
    conn = await asyncpg.connect(files_gateway.dsn)
    try:
        deadline = time.monotonic() + 20
        while await conn.fetchval("SELECT resume ->> 'held' FROM hapta.unclaimed_files WHERE resume ->> 'id' = $1",
                                  opened["upload_id"]) != "false":
            assert time.monotonic() < deadline, "the upload was not kept for a resume"
            await asyncio.sleep(0.05)
        await conn.execute("UPDATE hapta.unclaimed_files SET lease_until = now() WHERE resume ->> 'id' = $1",
                           opened["upload_id"])
    finally:
        await conn.close()
    await files_gateway.settled(post, 0)
    observer, _, _ = await author()
    record = await observer.call("records.get", {"collection": "posts", "id": post})
    assert record["attachments"] == []


async def test_the_window_is_kept(files_gateway, author):
    """A client that ignores its window is paused (not read), not allowed to grow the gateway's memory; the
    upload still completes once acks catch up."""
    client, _, post = await author()
    opened = await open_upload(client, post, 12 * MIB)
    stream = opened["stream"]
    await asyncio.wait_for(send(client, stream, png(12 * MIB)), 60)   # 3 windows at once, ignoring acks
    done = await client.call("files.finish", {"stream": stream})
    assert done["file"]["size"] == 12 * MIB

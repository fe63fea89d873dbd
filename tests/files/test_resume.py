"""Issue 31: uploads that resume. A socket that drops mid-upload leaves the upload kept (a signed-in principal's,
for files.resume_timeout, bounded in bytes per principal); `files.upload {resume}` on a new socket of the same
principal answers how much storage kept and the client goes on from there. Each test runs on the local backend and
on S3 (SeaweedFS: a multipart upload left open, its sent parts kept), through a proxy the test cuts."""
from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time

import asyncpg
import pytest

from hapta.client import Client, HaptaError
from tests.conftest import PASSWORD
from tests.files.conftest import MIB
from tests.services import CuttableProxy


async def account(connect_files) -> tuple[Client, dict, str]:
    """(client, user, post id): a new user, signed in, with a post of their own to attach files to."""
    client = await connect_files()
    name = "r" + secrets.token_hex(5)
    session = await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD,
                                                  "username": name})
    post = await client.call("records.create", {"collection": "posts", "data": {
        "author": session["user"]["id"], "text": "a big file", "public": True}})
    return client, session["user"], post["id"]


async def signed_in_through(proxy: CuttableProxy, email: str) -> Client:
    client = await Client.connect(f"ws://127.0.0.1:{proxy.port}/ws")
    await client.call("auth.login", {"identity": email, "password": PASSWORD})
    return client


async def cut_upload(gateway, email: str, post_id: str, data: bytes, at: float) -> str:
    """Upload `data` into the post's attachments through a proxy that cuts the socket once `at` of it was sent;
    the upload_id the gateway gave."""
    proxy = await CuttableProxy("127.0.0.1", gateway.process.port).start()
    try:
        proxy.cut_after(int(len(data) * at))   # the next link: this client's
        client = await signed_in_through(proxy, email)
        opened: dict = {}
        try:
            with pytest.raises(Exception) as cut:
                await client.upload("posts", post_id, "attachments", "big.bin", data, opened=opened.update)
            assert not isinstance(cut.value, HaptaError) or cut.value.code == "UNAVAILABLE", cut.value
            assert proxy.sprung.is_set()
        finally:
            await client.close()
    finally:
        await proxy.cut()
    return opened["upload_id"]


async def kept(gateway, upload_id: str) -> dict | None:
    """The kept upload's row: {stored, held, seconds left}, or None once it is gone."""
    conn = await asyncpg.connect(gateway.dsn)
    try:
        row = await conn.fetchrow(
            "SELECT (resume ->> 'stored')::bigint AS stored, resume ->> 'held' AS held, "
            "extract(epoch FROM lease_until - now()) AS left FROM hapta.unclaimed_files WHERE resume ->> 'id' = $1",
            upload_id)
        return None if row is None else {"stored": row["stored"], "held": row["held"], "left": float(row["left"])}
    finally:
        await conn.close()


async def until_kept(gateway, upload_id: str, timeout: float = 20) -> dict:
    """Wait (bounded) until the gateway has noticed the cut and kept the upload."""
    deadline = time.monotonic() + timeout
    while (row := await kept(gateway, upload_id)) is None or row["held"] != "false":
        assert time.monotonic() < deadline, f"the upload was not kept: {row}"
        await asyncio.sleep(0.05)
    return row


async def test_an_upload_cut_at_60_percent_resumes_on_a_new_socket_and_is_stored_once(files_gateway, connect_files):
    client, user, post_id = await account(connect_files)
    data = os.urandom(40 * 1000 * 1000)
    upload_id = await cut_upload(files_gateway, user["email"], post_id, data, 0.6)

    again = await connect_files()
    await again.call("auth.login", {"identity": user["email"], "password": PASSWORD})
    answer: dict = {}
    done = await again.upload("posts", post_id, "attachments", "big.bin", data, resume=upload_id,
                              opened=answer.update)
    # Storage kept part of what was sent before the cut (local: all it wrote; S3: the parts it sent) and the
    # client sent only the rest.
    assert 0 < answer["received"] <= 0.6 * len(data) and answer["upload_id"] == upload_id
    if files_gateway.backend == "s3":
        assert answer["received"] >= 8 * MIB   # whole parts (S3 wants 5 MiB at least; Hapta sends 8 MiB or more)
    assert done["file"] == {"name": "big.bin", "size": len(data), "type": "application/octet-stream",
                            "sha256": hashlib.sha256(data).hexdigest()}
    record = await client.call("records.get", {"collection": "posts", "id": post_id})
    assert [f["sha256"] for f in record["attachments"]] == [hashlib.sha256(data).hexdigest()]
    digest = hashlib.sha256()
    async for piece in client.download("posts", post_id, "attachments", "big.bin"):
        digest.update(piece)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    # Exactly once: one object for the record, nothing unclaimed or half-written left.
    assert len(await files_gateway.settled(post_id, 1)) == 1
    assert await kept(files_gateway, upload_id) is None
    with pytest.raises(HaptaError) as finished:
        await again.upload("posts", post_id, "attachments", "big.bin", data, resume=upload_id)
    assert finished.value.code == "NOT_FOUND"


async def test_another_principal_cannot_resume_an_upload(files_gateway, connect_files):
    _, user, post_id = await account(connect_files)
    other, _, _ = await account(connect_files)
    data = os.urandom(20 * MIB)
    upload_id = await cut_upload(files_gateway, user["email"], post_id, data, 0.9)
    before = await until_kept(files_gateway, upload_id)

    with pytest.raises(HaptaError) as refused:
        await other.upload("posts", post_id, "attachments", "big.bin", data, resume=upload_id)
    assert refused.value.code == "FORBIDDEN"
    anonymous = await connect_files()
    with pytest.raises(HaptaError) as refused:
        await anonymous.call("files.upload", {"resume": upload_id})
    assert refused.value.code in ("FORBIDDEN", "UNAUTHENTICATED")
    # The refusals took nothing: the upload is still kept, as it was, for its uploader.
    assert await kept(files_gateway, upload_id) == {**before, "left": pytest.approx(before["left"], abs=30)}
    owner = await connect_files()
    await owner.call("auth.login", {"identity": user["email"], "password": PASSWORD})
    done = await owner.upload("posts", post_id, "attachments", "big.bin", data, resume=upload_id)
    assert done["file"]["sha256"] == hashlib.sha256(data).hexdigest()
    await files_gateway.settled(post_id, 1)


async def test_an_upload_not_resumed_is_gone_after_the_resume_timeout(files_gateway, connect_files):
    _, user, post_id = await account(connect_files)
    data = os.urandom(20 * MIB)
    upload_id = await cut_upload(files_gateway, user["email"], post_id, data, 0.9)
    row = await until_kept(files_gateway, upload_id)
    assert row["stored"] > 0
    assert 600 - 30 < row["left"] <= 600   # files.resume_timeout, 10 minutes by default
    assert len(await files_gateway.stored(post_id)) == 1   # the partial object (S3: the open multipart upload)

    # As if the ten minutes had passed: the sweeper (every 0.5 s here) removes what was kept.
    conn = await asyncpg.connect(files_gateway.dsn)
    try:
        await conn.execute("UPDATE hapta.unclaimed_files SET lease_until = now() WHERE resume ->> 'id' = $1",
                           upload_id)
    finally:
        await conn.close()
    assert await files_gateway.settled(post_id, 0) == []
    owner = await connect_files()
    await owner.call("auth.login", {"identity": user["email"], "password": PASSWORD})
    with pytest.raises(HaptaError) as gone:
        await owner.upload("posts", post_id, "attachments", "big.bin", data, resume=upload_id)
    assert gone.value.code == "NOT_FOUND" and "resume_timeout" in gone.value.message


async def test_what_a_principal_may_keep_for_resumes_is_bounded_in_bytes(files_gateway, connect_files):
    """The test app keeps at most 30 MiB per principal: a second cut upload that would pass it is dropped at once,
    the first stays resumable."""
    _, user, post_id = await account(connect_files)
    first, second = os.urandom(30 * 1000 * 1000), os.urandom(30 * 1000 * 1000)
    first_id = await cut_upload(files_gateway, user["email"], post_id, first, 0.95)
    assert (await until_kept(files_gateway, first_id))["stored"] >= 16 * MIB
    second_id = await cut_upload(files_gateway, user["email"], post_id, second, 0.95)
    deadline = time.monotonic() + 20
    while await kept(files_gateway, second_id) is not None:   # dropped, not kept
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)

    owner = await connect_files()
    await owner.call("auth.login", {"identity": user["email"], "password": PASSWORD})
    with pytest.raises(HaptaError) as dropped:
        await owner.upload("posts", post_id, "attachments", "big.bin", second, resume=second_id)
    assert dropped.value.code == "NOT_FOUND"
    done = await owner.upload("posts", post_id, "attachments", "big.bin", first, resume=first_id)
    assert done["file"]["sha256"] == hashlib.sha256(first).hexdigest()
    await files_gateway.settled(post_id, 1)

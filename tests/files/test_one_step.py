"""Issue 31: a record and its files in one atomic step. files.upload without an id answers a token at files.finish;
records.create (or a create of records.batch) names it in the file field, and the record and its files are stored
together or not at all. An upload no record took is swept after file_idle_timeout (60 s here: the tests run its
lease out in the database, as a crash's lease runs out, and the sweeper, every 0.5 s, does the rest)."""
from __future__ import annotations

import asyncio
import secrets
import time

import asyncpg
import pytest

from hapta.client import HaptaError
from tests.conftest import PASSWORD
from tests.files.conftest import png


async def signed_in(connect_files):
    client = await connect_files()
    name = "o" + secrets.token_hex(5)
    session = await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD,
                                                  "username": name})
    return client, session["user"]


async def parked(gateway, token: str) -> tuple[str, float] | None:
    """(key, seconds left) of the upload a token names, while no record has it."""
    conn = await asyncpg.connect(gateway.dsn)
    try:
        row = await conn.fetchrow("SELECT key, extract(epoch FROM lease_until - now()) AS left "
                                  "FROM hapta.unclaimed_files WHERE upload ->> 'token' = $1", token)
        return None if row is None else (row["key"], float(row["left"]))
    finally:
        await conn.close()


async def run_out(gateway, token: str) -> None:
    """As if file_idle_timeout had passed for this upload."""
    conn = await asyncpg.connect(gateway.dsn)
    try:
        await conn.execute("UPDATE hapta.unclaimed_files SET lease_until = now() WHERE upload ->> 'token' = $1",
                           token)
    finally:
        await conn.close()


async def gone(gateway, key: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while key in await gateway.stored_all() or key in await gateway.unclaimed(parked=True):
        assert time.monotonic() < deadline, f"{key} is still stored"
        await asyncio.sleep(0.1)


async def test_a_post_and_its_two_pictures_in_one_create(files_gateway, connect_files):
    client, user = await signed_in(connect_files)
    a, b = png(1000), png(300_000)
    first = await client.upload("posts", None, "media", "a.png", a, type="image/png")
    second = await client.upload("posts", None, "media", "b.png", b, type="image/png")
    assert first["file"]["name"] == "a.png" and isinstance(first["upload"], str) and first["expires_at"] > time.time()
    keys = [(await parked(files_gateway, r["upload"]))[0] for r in (first, second)]
    stored = await files_gateway.stored_all()
    assert all(k in stored for k in keys)
    post = await client.call("records.create", {"collection": "posts", "data": {
        "author": user["id"], "text": "two pictures", "media": [{"upload": first["upload"]},
                                                                 {"upload": second["upload"]}]}})
    assert [f["name"] for f in post["media"]] == ["a.png", "b.png"]
    assert all("key" not in f for f in post["media"])
    got = await client.call("records.get", {"collection": "posts", "id": post["id"]})
    assert [(f["name"], f["size"]) for f in got["media"]] == [("a.png", 1000), ("b.png", 300_000)]
    assert await client.download_bytes("posts", post["id"], "media", "b.png") == b
    unclaimed = await files_gateway.unclaimed(parked=True)
    assert not any(k in unclaimed for k in keys)
    # used once: the record has them now
    with pytest.raises(HaptaError) as used:
        await client.call("records.create", {"collection": "posts", "data": {
            "author": user["id"], "text": "again", "media": [{"upload": first["upload"]}]}})
    assert used.value.code == "TOKEN_INVALID" and used.value.details == {"field": "media"}
    # deleting the record removes them, as any file of a record
    await client.call("records.delete", {"collection": "posts", "id": post["id"]})
    for key in keys:
        await gone(files_gateway, key)


async def test_a_refused_upload_stops_the_create(files_gateway, connect_files):
    client, user = await signed_in(connect_files)
    with pytest.raises(HaptaError) as declared:   # before the first byte
        await client.upload("posts", None, "media", "t.txt", b"text", type="text/plain")
    assert declared.value.code == "VALIDATION_FAILED"
    first = await client.upload("posts", None, "media", "a.png", png(1000), type="image/png")
    with pytest.raises(HaptaError) as content:   # the bytes are not a picture
        await client.upload("posts", None, "media", "b.png", b"not a picture" * 100, type="image/png")
    assert content.value.code == "VALIDATION_FAILED"
    marker = "refused-" + secrets.token_hex(4)
    with pytest.raises(HaptaError) as refused:
        await client.call("records.create", {"collection": "posts", "data": {
            "author": user["id"], "text": marker, "media": [{"upload": first["upload"]}, {"upload": "nothing"}]}})
    assert refused.value.code == "TOKEN_INVALID"
    listed = await client.call("records.list", {"collection": "posts", "filter": f'text = "{marker}"'})
    assert listed["items"] == []
    key, _ = await parked(files_gateway, first["upload"])   # the first upload is still its uploader's to use
    await run_out(files_gateway, first["upload"])
    await gone(files_gateway, key)


async def test_a_create_refused_by_its_rule_leaves_no_object(files_gateway, connect_files):
    client, _ = await signed_in(connect_files)
    _, other = await signed_in(connect_files)
    up = await client.upload("posts", None, "media", "a.png", png(2000), type="image/png")
    key, _ = await parked(files_gateway, up["upload"])
    with pytest.raises(HaptaError) as refused:   # a post in someone else's name: the create rule says no
        await client.call("records.create", {"collection": "posts", "data": {
            "author": other["id"], "text": "not mine", "media": [{"upload": up["upload"]}]}})
    assert refused.value.code in ("RULE_DENIED", "FORBIDDEN")
    assert await parked(files_gateway, up["upload"]) is not None   # rolled back with the record: parked again
    await run_out(files_gateway, up["upload"])
    await gone(files_gateway, key)


async def test_another_users_token_and_too_many_files(files_gateway, connect_files):
    client, user = await signed_in(connect_files)
    thief, thief_user = await signed_in(connect_files)
    up = await client.upload("posts", None, "media", "a.png", png(1000), type="image/png")
    with pytest.raises(HaptaError) as stolen:
        await thief.call("records.create", {"collection": "posts", "data": {
            "author": thief_user["id"], "text": "stolen", "media": [{"upload": up["upload"]}]}})
    assert stolen.value.code == "FORBIDDEN" and stolen.value.details == {"field": "media"}
    with pytest.raises(HaptaError) as wrong_field:
        await client.call("records.create", {"collection": "posts", "data": {
            "author": user["id"], "text": "x", "attachments": [{"upload": up["upload"]}]}})
    assert wrong_field.value.code == "VALIDATION_FAILED"
    ups = [up] + [await client.upload("posts", None, "media", f"{i}.png", png(100), type="image/png")
                  for i in range(4)]
    with pytest.raises(HaptaError) as many:   # posts.media holds at most 4
        await client.call("records.create", {"collection": "posts", "data": {
            "author": user["id"], "text": "five", "media": [{"upload": u["upload"]} for u in ups]}})
    assert many.value.code == "VALIDATION_FAILED" and many.value.details["max_count"] == 4
    # the owner can still use it, inside a batch, and a raw entry is never taken for an upload
    done = await client.call("records.batch", {"ops": [
        {"op": "create", "collection": "posts", "data": {"author": user["id"], "text": "batched",
                                                          "media": [{"upload": up["upload"]}]}}]})
    assert [f["name"] for f in done["results"][0]["media"]] == ["a.png"]
    with pytest.raises(HaptaError) as raw:
        await client.call("records.create", {"collection": "posts", "data": {
            "author": user["id"], "text": "raw", "media": [{"upload": ups[1]["upload"]},
                                                           {"name": "x", "key": "posts/media/new/" + "0" * 32}]}})
    assert raw.value.code == "VALIDATION_FAILED"


async def test_an_unused_upload_is_swept_after_the_idle_time(files_gateway, connect_files):
    client, user = await signed_in(connect_files)
    up = await client.upload("posts", None, "attachments", "a.bin", b"x" * 5000)
    key, left = await parked(files_gateway, up["upload"])
    assert 50 < left <= 60   # file_idle_timeout, not renewed
    await asyncio.sleep(1.5)   # a few sweeps: still there within its time
    assert key in await files_gateway.stored_all()
    await run_out(files_gateway, up["upload"])
    await gone(files_gateway, key)
    with pytest.raises(HaptaError) as late:
        await client.call("records.create", {"collection": "posts", "data": {
            "author": user["id"], "text": "late", "attachments": [{"upload": up["upload"]}]}})
    assert late.value.code == "TOKEN_INVALID"


async def test_each_finished_upload_renews_the_uploaders_waiting_ones(files_gateway, connect_files):
    """A post with several large pictures names the first token only after the last upload: each finish gives the
    uploader's parked uploads the idle time again (another principal's keep theirs)."""
    client, user = await signed_in(connect_files)
    other, _ = await signed_in(connect_files)
    first = await client.upload("posts", None, "attachments", "a.bin", b"a" * 5000)
    theirs = await other.upload("posts", None, "attachments", "t.bin", b"t" * 5000)
    conn = await asyncpg.connect(files_gateway.dsn)
    try:   # as if 57 of the 60 seconds had passed for both
        await conn.execute("UPDATE hapta.unclaimed_files SET lease_until = now() + interval '3 seconds' "
                           "WHERE upload ->> 'token' = ANY($1::text[])", [first["upload"], theirs["upload"]])
    finally:
        await conn.close()
    await client.upload("posts", None, "attachments", "b.bin", b"b" * 5000)
    assert 50 < (await parked(files_gateway, first["upload"]))[1] <= 60
    assert (await parked(files_gateway, theirs["upload"]))[1] <= 3
    await run_out(files_gateway, theirs["upload"])


async def test_an_update_keeps_replaces_and_adds_files_in_one_step(files_gateway, connect_files):
    client, user = await signed_in(connect_files)
    a = await client.upload("posts", None, "media", "a.png", png(1000), type="image/png")
    b = await client.upload("posts", None, "media", "b.png", png(1000), type="image/png")
    post = await client.call("records.create", {"collection": "posts", "data": {
        "author": user["id"], "text": "to update", "media": [{"upload": a["upload"]}, {"upload": b["upload"]}]}})
    c = await client.upload("posts", None, "media", "c.png", png(3000), type="image/png")
    updated = await client.call("records.update", {"collection": "posts", "id": post["id"], "version": post["version"],
                                                   "data": {"text": "updated", "media": [{"name": "b.png"},
                                                                                         {"upload": c["upload"]}]}})
    assert updated["text"] == "updated" and [f["name"] for f in updated["media"]] == ["b.png", "c.png"]
    assert updated["version"] == post["version"] + 1
    with pytest.raises(HaptaError) as dropped:   # a.png went with the update
        await client.download_bytes("posts", post["id"], "media", "a.png")
    assert dropped.value.code == "NOT_FOUND"
    with pytest.raises(HaptaError) as missing:
        await client.call("records.update", {"collection": "posts", "id": post["id"], "data": {
            "media": [{"name": "a.png"}, {"upload": c["upload"]}]}})
    assert missing.value.code in ("NOT_FOUND", "TOKEN_INVALID")
    other, _ = await signed_in(connect_files)
    d = await other.upload("posts", None, "media", "d.png", png(100), type="image/png")
    with pytest.raises(HaptaError) as not_theirs:   # the update rule: only the author; the upload stays parked
        await other.call("records.update", {"collection": "posts", "id": post["id"], "data": {
            "media": [{"upload": d["upload"]}]}})
    assert not_theirs.value.code in ("FORBIDDEN", "NOT_FOUND", "RULE_DENIED")
    assert await parked(files_gateway, d["upload"]) is not None

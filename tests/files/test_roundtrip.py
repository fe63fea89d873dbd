"""Files go in and come out whole, on both backends: every size around the chunk boundary, hashed on the way."""
from __future__ import annotations

import pytest

from hapta.client import MSGPACK
from tests.files.conftest import CHUNK, MIB, png, sha256


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK + 1, 20 * MIB])
async def test_round_trip(files_gateway, author, size):
    client, _, post = await author()
    data = png(size) if size >= 16 else bytes(range(size))
    done = await client.upload("posts", post, "attachments", f"file-{size}.bin", data)
    assert done["file"] == {"name": f"file-{size}.bin", "size": size, "sha256": sha256(data),
                            "type": "image/png" if size >= 16 else "application/octet-stream"}
    assert [f["name"] for f in done["record"]["attachments"]] == [f"file-{size}.bin"]
    back = await client.download_bytes("posts", post, "attachments", f"file-{size}.bin")
    assert len(back) == size and sha256(back) == sha256(data)
    assert len(await files_gateway.settled(post, 1)) == 1   # one object in the backend, nothing unclaimed


async def test_round_trip_in_msgpack_mode(files_gateway, author):
    client, _, post = await author(subprotocol=MSGPACK)
    data = png(3 * CHUNK + 17)
    done = await client.upload("posts", post, "media", "photo.png", data, type="image/png")
    assert done["file"]["sha256"] == sha256(data)
    assert await client.download_bytes("posts", post, "media", "photo.png") == data

"""Thumbnails: posts.media serves the sizes tests/files/app/config.py declares (THUMBS), made on first request from
PNG, JPEG, GIF and WebP, stored beside the original (once) and removed with it; any other size is refused, and so is
a non-image and a decompression bomb, without the gateway's memory growing."""
from __future__ import annotations

import asyncio
import io
import struct
import zlib

import psutil
import pytest
from PIL import Image

from hapta.client import HaptaError
from tests.files.conftest import png
from tests.files.test_urls import fetch

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def picture(fmt: str, width: int = 640, height: int = 480) -> bytes:
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, width, height // 6))                 # a red band at the top
    image.paste(GREEN, (0, height - height // 6, width, height))  # a green one at the bottom
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def bomb(side: int = 20_000) -> bytes:
    """A valid grey PNG of side x side pixels (400 megapixels for 20,000: 400 MB decoded), of about 400 kB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    packer, row, parts = zlib.compressobj(9), b"\0" * (side + 1), []
    for _ in range(side):
        parts.append(packer.compress(row))
    parts.append(packer.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def url_of(client, post: str, name: str, thumb: str | None = None, field: str = "media") -> str:
    args = {"collection": "posts", "id": post, "field": field, "name": name}
    if thumb is not None:
        args["thumb"] = thumb
    return (await client.call("files.url", args))["url"]


async def test_every_declared_size_has_its_dimensions(files_gateway, author):
    client, _, post = await author()
    await client.upload("posts", post, "media", "p.png", picture("PNG"), type="image/png")
    expected = {"100x100": (100, 100), "480x0": (480, 360), "0x300": (400, 300), "120x80t": (120, 80),
                "120x80b": (120, 80)}
    for size, dimensions in expected.items():
        data = await client.download_bytes("posts", post, "media", "p.png", thumb=size)
        image = opened(data)
        assert image.size == dimensions and image.format == "PNG", size
        status, headers, body = await fetch(await url_of(client, post, "p.png", size))
        assert status == 200 and body == data and headers["Content-Type"] == "image/png"
    fit = opened(await client.download_bytes("posts", post, "media", "p.png", thumb="200x50f")).size
    assert fit[1] == 50 and fit[0] in (66, 67)   # inside 200x50, the ratio kept, nothing cropped


async def test_crops_follow_the_suffix(files_gateway, author):
    client, _, post = await author()
    await client.upload("posts", post, "media", "tall.png", picture("PNG", 200, 600), type="image/png")

    async def corners(size: str) -> tuple:
        image = opened(await client.download_bytes("posts", post, "media", "tall.png", thumb=size)).convert("RGB")
        return image.getpixel((image.width // 2, 0)), image.getpixel((image.width // 2, image.height - 1))
    assert await corners("120x80t") == (RED, BLUE)      # the top of the picture
    assert await corners("120x80b") == (BLUE, GREEN)    # its bottom
    assert await corners("100x100") == (BLUE, BLUE)     # its centre


@pytest.mark.parametrize("fmt, kind, answer", [("JPEG", "image/jpeg", "JPEG"), ("GIF", "image/gif", "PNG"),
                                                ("WEBP", "image/webp", "WEBP")])
async def test_jpeg_gif_and_webp(files_gateway, author, fmt, kind, answer):
    client, _, post = await author()
    await client.upload("posts", post, "media", "p", picture(fmt), type=kind)
    image = opened(await client.download_bytes("posts", post, "media", "p", thumb="480x0"))
    assert image.size == (480, 360) and image.format == answer


async def test_a_thumbnail_is_made_once_and_goes_with_its_file(files_gateway, author):
    client, _, post = await author()
    await client.upload("posts", post, "media", "p.png", picture("PNG"), type="image/png")
    first = await asyncio.gather(*(url_of(client, post, "p.png", "100x100") for _ in range(4)))
    assert len(await files_gateway.settled(post, 2)) == 2   # the original and one thumbnail
    again = await client.download_bytes("posts", post, "media", "p.png", thumb="100x100")
    assert (await fetch(first[0]))[2] == again
    made = [line for line in files_gateway.process.log_text().splitlines()
            if "made thumbnail" in line and f"/{post}/" in line]
    assert len(made) == 1, made                              # four asked at once, then once more: made once
    await client.download_bytes("posts", post, "media", "p.png", thumb="0x300")
    await files_gateway.settled(post, 3)
    await client.call("files.delete", {"collection": "posts", "id": post, "field": "media", "name": "p.png"})
    await files_gateway.settled(post, 0)                     # the file and both its thumbnails


async def test_an_undeclared_size_is_refused(files_gateway, author):
    client, _, post = await author()
    await client.upload("posts", post, "media", "p.png", picture("PNG"), type="image/png")
    await client.upload("posts", post, "attachments", "a.png", picture("PNG"), type="image/png")
    for field, name, size in (("media", "p.png", "101x101"), ("media", "p.png", "100x100f"),
                              ("attachments", "a.png", "100x100")):
        with pytest.raises(HaptaError) as refused:
            await url_of(client, post, name, size, field=field)
        assert refused.value.code == "BAD_REQUEST" and field in refused.value.message
        assert refused.value.details["field"] == field
        with pytest.raises(HaptaError) as refused:
            await client.download_bytes("posts", post, field, name, thumb=size)
        assert refused.value.code == "BAD_REQUEST"
    assert "100x100, 480x0, 0x300" in refused.value.message or "none" in refused.value.message
    await files_gateway.settled(post, 2)   # nothing was made


async def test_a_non_image_is_refused(files_gateway, author):
    client, _, post = await author()
    await client.upload("posts", post, "media", "fake.png", png(5000), type="image/png")   # a PNG signature only
    with pytest.raises(HaptaError) as refused:
        await url_of(client, post, "fake.png", "100x100")
    assert refused.value.code == "BAD_REQUEST" and "not an image" in refused.value.message
    await files_gateway.settled(post, 1)


async def test_a_decompression_bomb_is_refused_within_bounded_memory(files_gateway, author):
    """20,000 x 20,000 pixels would take 400 MB decoded; the gateway refuses it from its header, and its memory
    stays within BOUND of what it held before."""
    bound = 64 * 1024 * 1024
    client, _, post = await author()
    data = await asyncio.to_thread(bomb)
    await client.upload("posts", post, "media", "bomb.png", data, type="image/png")
    gateway = psutil.Process(files_gateway.process.proc.pid)

    def rss() -> int:
        return sum(p.memory_info().rss for p in [gateway, *gateway.children(recursive=True)])
    before = rss()
    for size in ("100x100", "480x0"):
        with pytest.raises(HaptaError) as refused:
            await client.download_bytes("posts", post, "media", "bomb.png", thumb=size)
        assert refused.value.code == "BAD_REQUEST" and "pixels" in refused.value.message
    assert rss() - before < bound
    await files_gateway.settled(post, 1)

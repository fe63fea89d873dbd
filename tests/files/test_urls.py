"""files.url: a link a browser can use (an <img src>) — presigned by S3, or signed by the gateway and served on its
own port for the local backend. Whoever changes it or comes too late is refused."""
from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import pytest

from hapta.client import HaptaError
from tests.files.conftest import png


async def fetch(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=headers) as response:
            return response.status, dict(response.headers), await response.read()


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name, value in changes.items():
        for key in query:
            if key.lower() == name.lower():
                query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


async def test_a_url_serves_the_file_with_ranges(files_gateway, author):
    client, _, post = await author()
    data = png(100_000)
    await client.upload("posts", post, "media", "photo one.png", data, type="image/png")
    link = await client.call("files.url", {"collection": "posts", "id": post, "field": "media",
                                           "name": "photo one.png", "expires": 600})
    assert time.time() + 590 < link["expires_at"] <= time.time() + 601
    status, headers, body = await fetch(link["url"])
    assert status == 200 and body == data and headers["Content-Type"] == "image/png"
    status, headers, body = await fetch(link["url"], Range="bytes=10-19")
    assert status == 206 and body == data[10:20] and headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    status, _, body = await fetch(link["url"], Range="bytes=-5")
    assert status == 206 and body == data[-5:]


async def test_a_tampered_url_is_refused(files_gateway, author):
    client, _, post = await author()
    await client.upload("posts", post, "media", "a.png", png(1000), type="image/png")
    await client.upload("posts", post, "media", "b.png", png(1000), type="image/png")
    url = (await client.call("files.url", {"collection": "posts", "id": post, "field": "media",
                                           "name": "a.png"}))["url"]
    assert (await fetch(url))[0] == 200
    signature = next(k for k, _ in parse_qsl(urlsplit(url).query) if k.lower() in ("sig", "x-amz-signature"))
    value = dict(parse_qsl(urlsplit(url).query))[signature]
    forged = with_query(url, **{signature: ("0" if value[0] != "0" else "1") + value[1:]})
    assert (await fetch(forged))[0] == 403
    later = with_query(url, expires=str(int(time.time()) + 10 ** 6), **{"X-Amz-Expires": "604799"})
    assert (await fetch(later))[0] == 403
    other = url.replace("/a.png", "/b.png") if files_gateway.backend == "local" else url
    if other != url:
        assert (await fetch(other))[0] == 403


async def test_an_expired_url_is_refused(files_gateway, author):
    client, _, post = await author()
    await client.upload("posts", post, "media", "a.png", png(1000), type="image/png")
    link = await client.call("files.url", {"collection": "posts", "id": post, "field": "media", "name": "a.png",
                                           "expires": 1})
    deadline = time.monotonic() + 15
    while (status := (await fetch(link["url"]))[0]) != 403:   # it works until it expires, then never again
        assert status == 200 and time.monotonic() < deadline
        await asyncio.sleep(0.2)
    assert time.time() >= link["expires_at"] - 1


async def test_urls_follow_the_view_rule(files_gateway, author):
    client, _, post = await author(public=False)
    await client.upload("posts", post, "media", "a.png", png(1000), type="image/png")
    stranger, _, _ = await author()
    with pytest.raises(HaptaError) as refused:
        await stranger.call("files.url", {"collection": "posts", "id": post, "field": "media", "name": "a.png"})
    assert refused.value.code == "NOT_FOUND"


async def test_a_url_of_a_deleted_file_stops_working(files_gateway, author):
    client, _, post = await author()
    await client.upload("posts", post, "media", "a.png", png(1000), type="image/png")
    url = (await client.call("files.url", {"collection": "posts", "id": post, "field": "media",
                                           "name": "a.png"}))["url"]
    await client.call("files.delete", {"collection": "posts", "id": post, "field": "media", "name": "a.png"})
    await files_gateway.settled(post, 0)
    assert (await fetch(url))[0] in (403, 404)


async def test_a_range_with_a_huge_number_is_answered_not_a_server_error(files_gateway, author):
    """Issue 11, item 14: a 5,000-digit position was an HTTP 500 with a traceback (int() refuses such numbers)."""
    if files_gateway.backend != "local":
        pytest.skip("with S3, files.url hands out presigned S3 URLs: the gateway serves no bytes")
    client, _, post = await author()
    data = png(1000)
    await client.upload("posts", post, "media", "r.png", data, type="image/png")
    url = (await client.call("files.url", {"collection": "posts", "id": post, "field": "media", "name": "r.png"}))["url"]
    huge = "9" * 5000
    assert (await fetch(url, Range=f"bytes={huge}-"))[0] == 416   # past the end
    status, _, body = await fetch(url, Range=f"bytes=0-{huge}")  # to the end
    assert status == 206 and body == data
    status, _, body = await fetch(url, Range=f"bytes=-{huge}")   # the last "huge" bytes: all of them
    assert status == 206 and body == data

"""Cacheable links: a file's link answers with its sha256 as ETag, `Cache-Control: ... immutable` for no longer
than the link is valid, 304 to If-None-Match, and HEAD (the gateway's own links; S3 signs a presigned URL for GET
only). A --static page answers HEAD too. Through real HTTP on the files gateway, local disk and S3."""
from __future__ import annotations

import asyncio
import re
import sys

import aiohttp
import pytest
from multidict import CIMultiDict

from tests.conftest import gateway_env
from tests.files.conftest import png, sha256
from tests.files.test_thumbs import picture
from tests.services import GatewayProcess, create_database, drop_database


async def request(method: str, url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, headers=headers) as response:
            return response.status, CIMultiDict(response.headers), await response.read()   # any case


def max_age(headers: dict[str, str]) -> int:
    return int(re.search(r"max-age=(\d+)", headers["Cache-Control"])[1])


async def test_etag_cache_control_and_304(files_gateway, author):
    client, _, post = await author()
    data = png(10_000)
    await client.upload("posts", post, "media", "a.png", data, type="image/png")
    url = (await client.call("files.url", {"collection": "posts", "id": post, "field": "media", "name": "a.png",
                                           "expires": 600}))["url"]
    status, headers, body = await request("GET", url)
    assert status == 200 and body == data
    assert "immutable" in headers["Cache-Control"] and 590 <= max_age(headers) <= 600   # no longer than the link
    etag = headers["ETag"]
    if files_gateway.backend == "local":
        assert etag == f'"{sha256(data)}"'
    status, headers, body = await request("GET", url, **{"If-None-Match": etag})
    assert status == 304 and body == b"" and headers["ETag"] == etag
    status, _, body = await request("GET", url, **{"If-None-Match": '"something else"'})
    assert status == 200 and body == data


async def test_head_answers_the_headers_of_the_get(files_gateway, author):
    if files_gateway.backend != "local":
        pytest.skip("with S3, files.url hands out presigned S3 URLs, signed for GET only")
    client, _, post = await author()
    data = png(70_000)
    await client.upload("posts", post, "media", "a.png", data, type="image/png")
    args = {"collection": "posts", "id": post, "field": "media", "name": "a.png"}
    url = (await client.call("files.url", args))["url"]
    status, headers, body = await request("HEAD", url)
    assert status == 200 and body == b"" and headers["Content-Length"] == str(len(data))
    assert headers["ETag"] == f'"{sha256(data)}"' and "immutable" in headers["Cache-Control"]
    status, headers, _ = await request("HEAD", url, Range="bytes=10-19")
    assert status == 206 and headers["Content-Length"] == "10"
    assert headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert (await request("HEAD", url, **{"If-None-Match": f'W/"{sha256(data)}"'}))[0] == 304
    assert (await request("HEAD", url.replace("sig=", "sig=x")))[0] == 403


async def test_a_thumbnail_link_has_its_own_etag(files_gateway, author):
    client, _, post = await author()
    data = picture("PNG")
    await client.upload("posts", post, "media", "p.png", data, type="image/png")
    args = {"collection": "posts", "id": post, "field": "media", "name": "p.png"}
    original = await request("GET", (await client.call("files.url", args))["url"])
    small = (await client.call("files.url", {**args, "thumb": "100x100"}))["url"]
    thumb = await request("GET", small)
    assert thumb[0] == 200 and thumb[1]["ETag"] != original[1]["ETag"]
    if files_gateway.backend == "local":
        assert thumb[1]["ETag"] == f'"{sha256(data)}-100x100"'
        forged = small.replace("100x100", "480x0")   # the size is signed: another one is refused
        assert (await request("GET", forged))[0] == 403
    assert (await request("GET", small, **{"If-None-Match": thumb[1]["ETag"]}))[0] == 304


async def test_a_static_page_answers_head(pg_admin, files_app, tmp_path):
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "index.html").write_text("<p>hello</p>")
    dsn = await create_database(pg_admin)
    wrapper = ("import runpy, sys; pages = sys.argv.pop(1); sys.argv = ['hapta', *sys.argv[1:], '--static', pages]; "
               "runpy.run_module('hapta', run_name='__main__')")
    process = GatewayProcess(gateway_env(dsn, HAPTA_DATA_DIR=str(tmp_path / "data")), config=files_app,
                             command=[sys.executable, "-c", wrapper, str(pages)],
                             drop=("S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_BUCKET"))
    await asyncio.to_thread(process.start)
    try:
        status, headers, body = await request("HEAD", process.http + "/index.html")
        assert status == 200 and body == b"" and headers["Content-Length"] == str(len("<p>hello</p>"))
        assert headers["Content-Type"].startswith("text/html")
        assert (await request("GET", process.http + "/index.html"))[2] == b"<p>hello</p>"
    finally:
        process.stop()
        await drop_database(pg_admin, dsn)

"""`GET /files/<key>/<name>?type&expires&sig`: the local backend's files for browsers (an <img>, a <video>).

The URL comes from `files.url`; its signature and expiry are the whole authorization (the op checked the view
rule when it signed). Tampered, malformed or expired: 403. Single byte ranges are honoured (206, or 416 when
unsatisfiable); several ranges get the whole file. A response carries at most MAX_BODY bytes, because the HTTP side
of the WebSocket server writes a response in one piece: a larger file is served to Range requests (media players
use them) in pieces of MAX_BODY, and a plain GET of it is refused (413) in favour of Range or `files.download`.
With S3, `files.url` hands out presigned S3 URLs instead and this route answers 404.

Caching: a key is never written twice (a replaced file gets a new key, a thumbnail's key names its size), so an
answer is `immutable`, for as long as its link is valid: `Cache-Control: private, max-age=<seconds until the
link expires>, immutable`. Its `ETag` is the file's sha256 (a thumbnail's: the original's and its size), signed into
the link; `If-None-Match` naming it (or `*`) answers 304 without reading the file. `HEAD` answers the headers of
the GET, the file unread.
"""
from __future__ import annotations

import asyncio
import http
import re
import time
from urllib.parse import quote

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ..store.files import check_key
from ..store.files.local import LocalStorage
from ..store.files.types import inline
from .service import FileService
from .signing import UrlRefused

MAX_BODY = 16 * 1024 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class Unsatisfiable(Exception):
    pass


def _position(digits: str) -> int | None:
    """A byte position as written, or None when absent. One longer than any file can be (and than int() reads:
    Python refuses numbers of over 4,300 digits) stands for "past the end"."""
    if not digits:
        return None
    return int(digits) if len(digits) <= 18 else 1 << 62


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single-range header, inclusive; None for the whole file. Pure."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None   # several ranges, or another unit: serve the whole representation (RFC 9110 allows it)
    first, last = (_position(part) for part in match.groups())
    if first is None and last is None:
        return None
    if first is None:   # the last N bytes
        if last == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - last), size - 1
    start = first
    if start >= size:
        raise Unsatisfiable
    end = min(last, size - 1) if last is not None else size - 1
    if end < start:
        return None   # syntactically invalid: ignore the header
    return start, end


def _response(status: http.HTTPStatus, headers: list[tuple[str, str]], body: bytes = b"") -> Response:
    headers = [*headers, ("Content-Length", str(len(body)))]
    return Response(status.value, status.phrase, Headers(headers), body)


def _refusal(status: http.HTTPStatus, text: str) -> Response:
    return _response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")],
                     text.encode())


def matches(header: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (weak comparison, RFC 9110 13.1.2) or is `*`. Pure."""
    if not header:
        return False
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


async def serve_file(service: FileService, request: Request, head: bool = False) -> Response:
    storage = service.storage
    if not isinstance(storage, LocalStorage):
        return _refusal(http.HTTPStatus.NOT_FOUND, "not found\n")
    try:
        signed = service.signer.verify(request.path)
        check_key(signed.key)
    except (UrlRefused, ValueError):
        return _refusal(http.HTTPStatus.FORBIDDEN, "this link is not valid (tampered with or expired)\n")

    etag = f'"{signed.etag}"' if signed.etag else None
    caching = [("Cache-Control", f"private, max-age={max(0, signed.expires - int(time.time()))}, immutable")]
    if etag is not None:
        caching.append(("ETag", etag))

    def read() -> Response:
        try:
            size = storage.size_now(signed.key)
        except FileNotFoundError:
            return _refusal(http.HTTPStatus.NOT_FOUND, "this file no longer exists\n")
        if etag is not None and matches(request.headers.get("If-None-Match"), etag):
            return Response(http.HTTPStatus.NOT_MODIFIED.value, http.HTTPStatus.NOT_MODIFIED.phrase,
                            Headers(caching), b"")
        try:
            wanted = parse_range(request.headers.get("Range"), size)
        except Unsatisfiable:
            return _response(http.HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, [("Content-Range", f"bytes */{size}")])
        if wanted is None and size > MAX_BODY and not head:
            return _refusal(http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"files over {MAX_BODY} bytes are served to Range requests only\n")
        first, last = wanted if wanted is not None else (0, size - 1)
        last = min(last, first + MAX_BODY - 1) if wanted is not None or not head else last
        disposition = "inline" if inline(signed.type) else "attachment"
        headers = [
            ("Content-Type", signed.type),
            ("Content-Disposition", f"{disposition}; filename*=UTF-8''{quote(signed.name, safe='')}"),
            ("Accept-Ranges", "bytes"),
            *caching,
            ("X-Content-Type-Options", "nosniff"),
            ("Content-Security-Policy", "default-src 'none'; sandbox"),
        ]
        length = max(0, last - first + 1)
        if head:   # the GET's headers, its Content-Length included, and nothing read
            headers.append(("Content-Length", str(length)))
            if wanted is not None:
                headers.append(("Content-Range", f"bytes {first}-{last}/{size}"))
            status = http.HTTPStatus.OK if wanted is None else http.HTTPStatus.PARTIAL_CONTENT
            return Response(status.value, status.phrase, Headers(headers), b"")
        try:
            _, body = storage.read_range(signed.key, first, length)
        except FileNotFoundError:
            return _refusal(http.HTTPStatus.NOT_FOUND, "this file no longer exists\n")
        if wanted is None:
            return _response(http.HTTPStatus.OK, headers, body)
        headers.append(("Content-Range", f"bytes {first}-{first + len(body) - 1}/{size}"))
        return _response(http.HTTPStatus.PARTIAL_CONTENT, headers, body)

    return await asyncio.to_thread(read)

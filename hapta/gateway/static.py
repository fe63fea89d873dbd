"""`hapta serve --static DIR`: a folder of web pages on the gateway's own port, for development (a newcomer opens one
URL: the example app, examples/web-feed). GET, and HEAD (answered by http1.py: the GET's headers); `/` is
`index.html`; a path is looked up segment by segment under DIR, so nothing outside it is reachable (no `..`, no
hidden files). Symlinks inside DIR are followed: the example links the client's committed dist/hapta.js.
"""
from __future__ import annotations

import http
import mimetypes
from pathlib import Path
from urllib.parse import unquote

from websockets.datastructures import Headers
from websockets.http11 import Response

MAX_FILE = 16 * 1024 * 1024
# The pages are the app's own: scripts and styles from this origin only, the socket to this origin, pictures also
# from blob: (previews before an upload) and data:. So no inline <script>, <style> or style="": a browser drops
# them (saying so only in its console). HAPTA_STATIC_CSP replaces it for an app whose pages need more; `hapta
# serve` prints the one in force.
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
          "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def _response(status: http.HTTPStatus, body: bytes, content_type: str, policy: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff"),
                       ("Content-Security-Policy", policy)])
    return Response(status.value, status.phrase, headers, body)


def find(root: Path, path: str) -> Path | None:
    """The file `path` names under `root`, or None. Lexical: every segment must be a plain name."""
    segments = [unquote(part) for part in path.split("?", 1)[0].split("/") if part]
    if any(part in ("", ".", "..") or part.startswith(".") or "/" in part or "\\" in part or "\0" in part
           for part in segments):
        return None
    found = root.joinpath(*segments) if segments else root
    if found.is_dir():
        found = found / "index.html"
    return found if found.is_file() else None


def serve_static(root: Path, path: str, policy: str = POLICY) -> Response:
    found = find(root, path)
    if found is None:
        return _response(http.HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8", policy)
    body = found.read_bytes()[:MAX_FILE + 1]
    if len(body) > MAX_FILE:
        return _response(http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"too large for --static\n",
                         "text/plain; charset=utf-8", policy)
    content_type = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type in ("application/javascript", "text/javascript"):
        content_type += "; charset=utf-8"
    return _response(http.HTTPStatus.OK, body, content_type, policy)

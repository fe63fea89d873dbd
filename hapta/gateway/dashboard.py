"""The dashboard's pages at /_/ (docs/dashboard.md): the built assets of dashboard/ that ship inside the package
(hapta/dashboard), so that `hapta serve` and the single binary need no Node. The page holds no secret and talks to
the gateway over the same WebSocket protocol, as an admin; what it shows, admin-only ops decide (ops/admin.py).

Its headers shut out what a dashboard must never do: run a script or style it did not ship (no inline ones, so an
injected record cannot run), be framed by another site (clickjacking), send a referrer, or be cached (its
index; the hashed assets may be, forever).
"""
from __future__ import annotations

import http
import mimetypes
from pathlib import Path

from websockets.datastructures import Headers
from websockets.http11 import Response

from .static import find

ROOT = Path(__file__).resolve().parents[1] / "dashboard"
PREFIX = "/_/"
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
          "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _response(status: http.HTTPStatus, body: bytes, content_type: str, cache: str = "no-store",
              location: str | None = None) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", cache),
                       ("Content-Security-Policy", POLICY), ("X-Frame-Options", "DENY"),
                       ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")])
    if location is not None:
        headers["Location"] = location
    return Response(status.value, status.phrase, headers, body)


def is_dashboard(path: str) -> bool:
    return path == PREFIX[:-1] or path.startswith(PREFIX)


def serve_dashboard(path: str, root: Path = ROOT) -> Response:
    """GET /_/...: an asset by its name, else the page (the dashboard routes its own views after the #)."""
    if path == PREFIX[:-1]:
        return _response(http.HTTPStatus.PERMANENT_REDIRECT, b"", "text/plain; charset=utf-8", location=PREFIX)
    rest = path[len(PREFIX) - 1:]
    found = find(root, rest)
    if found is None and not rest.startswith("/assets/"):
        found = find(root, "/index.html")
    if found is None:
        if not (root / "index.html").is_file():
            return _response(http.HTTPStatus.NOT_FOUND, b"the dashboard is not built: cd dashboard && npm ci && "
                             b"npm run build\n", "text/plain; charset=utf-8")
        return _response(http.HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
    content_type = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type in ("application/javascript", "image/svg+xml"):
        content_type += "; charset=utf-8"
    hashed = found.parent.name == "assets"   # Vite names them by their content
    return _response(http.HTTPStatus.OK, found.read_bytes(), content_type,
                     "public, max-age=31536000, immutable" if hashed else "no-store")

"""Signed, expiring URLs for files served by the gateway itself (the local backend's `GET /files/...`).

    /files/<key>/<name>?type=<type>&expires=<unix seconds>&sig=<base64url HMAC-SHA256>

The signature covers the object key, the name and type the response will carry, and the expiry, so none of them
can be changed. Its key is derived from the JWT secret with a purpose label: a URL signature is never a valid
token signature and the reverse. Pure: no I/O.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlencode

PREFIX = "/files/"
_PURPOSE = b"hapta file urls v1"


class UrlRefused(Exception):
    """The URL was tampered with, is malformed or has expired (HTTP 403)."""


@dataclass(frozen=True)
class SignedFile:
    key: str
    name: str
    type: str
    expires: int


class UrlSigner:
    def __init__(self, secret: str):
        self._key = hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()

    def _sign(self, key: str, name: str, kind: str, expires: int) -> str:
        message = "\n".join((key, name, kind, str(expires))).encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def path(self, key: str, name: str, kind: str, expires: int) -> str:
        """The path and query of a URL that serves `key` until `expires` (unix seconds)."""
        query = urlencode({"type": kind, "expires": expires, "sig": self._sign(key, name, kind, expires)})
        return f"{PREFIX}{quote(key)}/{quote(name, safe='')}?{query}"

    def verify(self, target: str, now: float | None = None) -> SignedFile:
        """Check a request target made by `path`; raise UrlRefused unless it is intact and unexpired."""
        path, _, query = target.partition("?")
        if not path.startswith(PREFIX) or "/" not in path[len(PREFIX):]:
            raise UrlRefused("not a file URL")
        quoted_key, _, quoted_name = path[len(PREFIX):].rpartition("/")
        params = parse_qs(query, keep_blank_values=True)
        try:
            (kind,), (expires_text,), (sig,) = params["type"], params["expires"], params["sig"]
            expires = int(expires_text)
        except (KeyError, ValueError):
            raise UrlRefused("incomplete signature") from None
        key, name = unquote(quoted_key), unquote(quoted_name)
        if not hmac.compare_digest(sig.encode(), self._sign(key, name, kind, expires).encode()):
            raise UrlRefused("bad signature")
        if (now if now is not None else time.time()) >= expires:
            raise UrlRefused("expired")
        return SignedFile(key, name, kind, expires)

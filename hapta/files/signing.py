"""Signed, expiring URLs for files served by the gateway itself (the local backend's `GET /files/...`).

    /files/<key>/<name>?type=<type>&expires=<unix seconds>[&etag=<sha256>]&sig=<base64url HMAC-SHA-256>

The signature covers the object key (a thumbnail's names its size), the name and type the response will carry,
the expiry and the ETag (the content's sha256, for caches), so none of them can be changed. Its key is derived
from the JWT secret with a purpose label: a URL signature is never a valid token signature and the reverse.
Pure: no I/O.
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
    etag: str | None = None


class UrlSigner:
    def __init__(self, secret: str):
        self._key = hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()

    def _sign(self, key: str, name: str, kind: str, expires: int, etag: str | None = None) -> str:
        parts = (key, name, kind, str(expires)) + ((etag,) if etag is not None else ())
        message = "\n".join(parts).encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def path(self, key: str, name: str, kind: str, expires: int, etag: str | None = None) -> str:
        """The path and query of a URL that serves `key` until `expires` (unix seconds)."""
        fields: dict[str, object] = {"type": kind, "expires": expires}
        if etag is not None:
            fields["etag"] = etag
        fields["sig"] = self._sign(key, name, kind, expires, etag)
        query = urlencode(fields)
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
        etags = params.get("etag", [])
        if len(etags) > 1:
            raise UrlRefused("two etags")
        etag = etags[0] if etags else None
        key, name = unquote(quoted_key), unquote(quoted_name)
        if not hmac.compare_digest(sig.encode(), self._sign(key, name, kind, expires, etag).encode()):
            raise UrlRefused("bad signature")
        if (now if now is not None else time.time()) >= expires:
            raise UrlRefused("expired")
        return SignedFile(key, name, kind, expires, etag)

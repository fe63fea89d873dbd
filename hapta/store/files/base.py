"""The storage interface both backends keep (local.py, s3.py); open_storage in __init__.py picks one.

Both backends stream: a Writer takes chunks as they come and holds at most a bounded buffer (S3: two parts), a
Reader hands out chunks no larger than asked for. Both hash what they write (sha256, on the way, in a thread).
An object becomes visible under its key only by `commit()`; `discard()` and `remove()` leave nothing behind and
may be called again (the sweeper retries them). A backend that cannot be reached raises StorageUnavailable.

An upload whose socket dropped can be resumed (hapta/files/transfers.py): `pause()` makes what a writer has
taken durable, as far as the backend can, and says how much that is; `Storage.resume()` opens a writer that goes
on from there, in this process or another. After `commit()`, `sha256` is the whole object's either way.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from abc import ABC, abstractmethod
from typing import AsyncIterator

# Keys are made by the gateway (collection/field/record/random hex, see new_key); anything else is refused before it
# reaches a path or a request, even if it was written into a record straight in SQL.
# A thumbnail lives beside its original, under the original's key and its size (hapta/files/thumbs.py).
KEY_PATTERN = re.compile(r"[A-Za-z0-9_]{1,63}/[A-Za-z0-9_]{1,63}/[A-Za-z0-9_-]{1,64}/[0-9a-f]{32}"
                         r"(_[0-9]{1,5}x[0-9]{1,5}[tbf]?)?")
_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class StorageUnavailable(Exception):
    """The storage backend did not answer or failed; the client gets UNAVAILABLE and may retry."""


class ObjectMissing(Exception):
    """No object under that key."""


def new_key(collection: str, field: str, record_id: str) -> str:
    """A fresh key for one upload: never reused, so replacing a file never overwrites an object in place. The
    record's id groups a record's objects for an operator; an id with other characters is hashed."""
    folder = record_id if _PLAIN_ID.fullmatch(record_id) else "h" + hashlib.sha256(record_id.encode()).hexdigest()[:40]
    return f"{collection}/{field}/{folder}/{secrets.token_hex(16)}"


def check_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key):
        raise ValueError("not a file key made by the gateway")
    return key


class Writer(ABC):
    """One object being written. `sha256` and `size` describe what write() has taken so far; `content_type`
    may be set (to what the content turned out to be) until the object is committed."""

    def __init__(self, content_type: str = "application/octet-stream") -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.content_type = content_type

    @abstractmethod
    async def write(self, parts: list[bytes | memoryview]) -> None:
        """Take the next bytes (several chunks at once); waits while the backend is behind (that is the upload's
        backpressure)."""

    @abstractmethod
    async def commit(self) -> None:
        """Make the object durable and visible under its key."""

    @abstractmethod
    async def discard(self) -> None:
        """Drop everything written; idempotent."""

    async def pause(self) -> dict | None:
        """Keep what was written so far for `Storage.resume` and let go of the writer: the state to resume from
        (JSON; `size` is the bytes kept), or None when this backend can keep none of it yet. `discard()` still
        drops it all."""
        return None


class Reader(ABC):
    """One object (or a range of it) being read, in chunks of at most the size asked for."""

    @abstractmethod
    def chunks(self, size: int) -> AsyncIterator[bytes]: ...

    @abstractmethod
    async def close(self) -> None: ...


class Storage(ABC):
    name: str

    @abstractmethod
    async def start(self) -> None:
        """Check the backend is usable (S3: the bucket exists, creating it if we may)."""

    @abstractmethod
    async def writer(self, key: str, content_type: str) -> Writer: ...

    @abstractmethod
    async def reader(self, key: str, offset: int, length: int) -> Reader:
        """Raise ObjectMissing when there is no such object."""

    async def resume(self, key: str, content_type: str, state: dict) -> Writer:
        """A writer that goes on after the bytes a paused writer kept (`state`, from `Writer.pause`); ObjectMissing
        when they are gone."""
        raise ObjectMissing(key)

    @abstractmethod
    async def remove(self, key: str) -> None:
        """Remove the object and any unfinished upload of it; no error when there is none."""

    @abstractmethod
    async def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is no such object."""

    async def presigned_url(self, key: str, name: str, content_type: str, expires: int) -> str | None:
        """A URL the backend itself serves (S3), or None when the gateway must serve and sign it (local)."""
        return None

    async def close(self) -> None:
        pass

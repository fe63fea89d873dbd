"""Files in S3 (miniopy-async): small files in one PUT, larger ones as a multipart upload streamed part by part.

At most two parts are in memory per upload: the one being filled and the one being sent. A part is sent while
the next fills; when both are busy, write() waits, and that wait is what slows the uploader (no acks). The
sha256 of the whole object is computed part by part in a thread.

Unfinished multipart uploads are not objects: `remove()` aborts them too, so a cut-off upload leaves nothing.

A paused upload keeps its sent parts (the multipart upload stays open; the part being filled is dropped, the client
sends it again): resuming goes on with the next part number. Parts in flight cannot be read back, so a resumed
upload's sha256 is computed by reading the object once it is complete.
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from contextlib import contextmanager
from datetime import timedelta
from typing import AsyncIterator, Iterator
from urllib.parse import quote, urlsplit

import aiohttp
from aiohttp_retry import ExponentialRetry, RetryClient
from miniopy_async import Minio
from miniopy_async.datatypes import Part
from miniopy_async.error import MinioException, S3Error

from .base import ObjectMissing, Reader, Storage, StorageUnavailable, Writer, check_key

log = logging.getLogger("hapta.files.s3")

PART_SIZE = 8 * 1024 * 1024        # S3 wants at least 5 MiB for every part but the last
MISSING = ("NoSuchKey", "NoSuchUpload", "NoSuchObject")


@contextmanager
def _unavailable(what: str) -> Iterator[None]:
    """Anything the S3 client raises means the store cannot serve us now; say so without its details."""
    try:
        yield
    except S3Error as exc:
        if exc.code in MISSING:
            raise ObjectMissing(what) from None
        log.warning("S3 refused %s: %s", what, exc.code)
        raise StorageUnavailable(f"file storage refused to {what}") from None
    except (MinioException, aiohttp.ClientError, OSError, EOFError, asyncio.TimeoutError) as exc:
        log.warning("S3 unavailable during %s: %s", what, type(exc).__name__)
        raise StorageUnavailable("file storage is unavailable") from None


class S3Storage(Storage):
    name = "s3"

    def __init__(self, endpoint: str, access_key: str | None, secret_key: str | None, bucket: str):
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        self.secure = parts.scheme == "https"
        self.host = parts.netloc
        self.access_key, self.secret_key, self.bucket = access_key, secret_key, bucket
        self.client: Minio | None = None

    @classmethod
    def from_settings(cls, settings) -> "S3Storage":
        return cls(settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key, settings.s3_bucket or "hapta")

    @property
    def s3(self) -> Minio:
        if self.client is None:
            # Our own session: short connect timeouts, reads slow but not silent forever, and one quick retry of
            # a request whose connection broke (a pooled keep-alive connection the store closed); no more, so a
            # dead store shows as UNAVAILABLE within moments. Every request we send is idempotent.
            session = RetryClient(
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64),
                                      timeout=aiohttp.ClientTimeout(total=None, connect=5, sock_connect=5,
                                                                    sock_read=60)),
                retry_options=ExponentialRetry(attempts=2, start_timeout=0.05, retry_all_server_errors=False,
                                               exceptions={aiohttp.ServerDisconnectedError, aiohttp.ClientOSError}))
            self.client = Minio(self.host, access_key=self.access_key, secret_key=self.secret_key,
                                secure=self.secure, session=session)
        return self.client

    async def start(self) -> None:
        with _unavailable("reach the bucket"):
            if not await self.s3.bucket_exists(self.bucket):
                await self.s3.make_bucket(self.bucket)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close_session()
            self.client = None

    async def writer(self, key: str, content_type: str) -> Writer:
        return S3Writer(self, check_key(key), content_type)

    async def resume(self, key: str, content_type: str, state: dict) -> Writer:
        writer = S3Writer(self, check_key(key), content_type)
        writer.upload_id = str(state["upload_id"])
        writer.parts = [Part(int(number), str(etag)) for number, etag in state["parts"]]
        writer.size = writer.sent = int(state["size"])
        writer.rehash = True
        with _unavailable("resume an upload"):   # NoSuchUpload (aborted meanwhile): ObjectMissing
            await self.s3._list_parts(self.bucket, key, writer.upload_id, max_parts=1)
        return writer

    async def reader(self, key: str, offset: int, length: int) -> Reader:
        if length == 0:   # a Range of nothing is not expressible; there is nothing to fetch either
            return S3Reader(None, 0)
        with _unavailable("read a file"):
            response = await self.s3.get_object(self.bucket, check_key(key), offset=offset, length=length)
        return S3Reader(response, length)

    async def remove(self, key: str) -> None:
        check_key(key)
        with _unavailable("remove a file"):
            result = await self.s3._list_multipart_uploads(self.bucket, prefix=key)
            for upload in result._uploads:
                if upload.object_name == key and upload.upload_id:
                    try:
                        await self.s3._abort_multipart_upload(self.bucket, key, upload.upload_id)
                    except S3Error as exc:
                        if exc.code not in MISSING:
                            raise
            try:
                await self.s3.remove_object(self.bucket, key)
            except S3Error as exc:
                if exc.code not in MISSING:
                    raise

    async def size(self, key: str) -> int | None:
        try:
            with _unavailable("look at a file"):
                stat = await self.s3.stat_object(self.bucket, check_key(key))
        except ObjectMissing:
            return None
        return int(stat.size or 0)

    async def presigned_url(self, key: str, name: str, content_type: str, expires: int) -> str | None:
        from .types import inline
        disposition = "inline" if inline(content_type) else "attachment"
        with _unavailable("sign a URL"):
            return await self.s3.presigned_get_object(
                self.bucket, check_key(key), expires=timedelta(seconds=expires),
                response_headers={"response-content-type": content_type,
                                  # keys are never rewritten: cacheable for as long as the link is valid
                                  "response-cache-control": f"private, max-age={expires}, immutable",
                                  "response-content-disposition": f"{disposition}; filename*=UTF-8''{quote(name)}"})

    async def list_keys(self) -> list[str]:
        """Every object and unfinished multipart upload in the bucket (for tests and the operator)."""
        with _unavailable("list files"):
            keys = [o.object_name async for o in self.s3.list_objects(self.bucket, recursive=True)]
            uploads = await self.s3._list_multipart_uploads(self.bucket)
        return keys + [f"{u.object_name} (unfinished upload)" for u in uploads._uploads]


class S3Writer(Writer):
    def __init__(self, storage: S3Storage, key: str, content_type: str):
        super().__init__(content_type)
        self.storage = storage
        self.key = key
        self.buffer: list[bytes | memoryview] = []
        self.buffered = 0
        self.upload_id: str | None = None
        self.parts: list[Part] = []
        self.sending: asyncio.Task | None = None
        self.sent = 0            # bytes in parts taken for sending
        self.rehash = False      # resumed: sha256 is computed from the object at commit

    async def write(self, parts: list[bytes | memoryview]) -> None:
        for data in parts:
            self.buffer.append(data)
            self.buffered += len(data)
            self.size += len(data)
        if self.buffered >= PART_SIZE:
            await self._send_part()

    async def _take(self) -> bytes:
        data = b"".join(self.buffer)
        self.buffer, self.buffered = [], 0
        self.sent += len(data)
        if not self.rehash:
            await asyncio.to_thread(self.sha256.update, data)
        return data

    async def _send_part(self) -> None:
        data = await self._take()
        if self.sending is not None:   # the previous part must be through before a third one is in memory
            sending, self.sending = self.sending, None
            await sending
        s3 = self.storage.s3
        if self.upload_id is None:
            with _unavailable("start an upload"):
                self.upload_id = await s3._create_multipart_upload(
                    self.storage.bucket, self.key, {"Content-Type": self.content_type})
        number = len(self.parts) + 1
        self.parts.append(Part(number, ""))

        async def send() -> None:
            with _unavailable("store a part"):
                etag = await s3._upload_part(self.storage.bucket, self.key, data, None, self.upload_id, number)
            self.parts[number - 1] = Part(number, etag)
        self.sending = asyncio.ensure_future(send())

    async def commit(self) -> None:
        s3 = self.storage.s3
        if self.upload_id is None:   # it all fit in one part: one PUT
            data = await self._take()
            with _unavailable("store a file"):
                await s3.put_object(self.storage.bucket, self.key, io.BytesIO(data), len(data),
                                    content_type=self.content_type)
            return
        if self.buffered:
            await self._send_part()
        if self.sending is not None:
            sending, self.sending = self.sending, None
            await sending
        with _unavailable("finish an upload"):
            await s3._complete_multipart_upload(self.storage.bucket, self.key, self.upload_id, self.parts)
        if self.rehash:
            self.sha256 = hashlib.sha256()
            reader = await self.storage.reader(self.key, 0, self.size)
            try:
                async for data in reader.chunks(PART_SIZE):
                    await asyncio.to_thread(self.sha256.update, data)
            finally:
                await reader.close()

    async def pause(self) -> dict | None:
        self.buffer, self.buffered = [], 0
        if self.sending is not None:
            sending, self.sending = self.sending, None
            await sending
        if self.upload_id is None:
            return None   # nothing sent yet: a single PUT at commit would have carried it all
        return {"size": self.sent, "upload_id": self.upload_id,
                "parts": [[part.part_number, part.etag] for part in self.parts]}

    async def discard(self) -> None:
        self.buffer, self.buffered = [], 0
        if self.sending is not None:
            self.sending.cancel()
            await asyncio.gather(self.sending, return_exceptions=True)
            self.sending = None
        if self.upload_id is not None:
            with _unavailable("abort an upload"):
                try:
                    await self.storage.s3._abort_multipart_upload(self.storage.bucket, self.key, self.upload_id)
                except S3Error as exc:
                    if exc.code not in MISSING:
                        raise
            self.upload_id = None


class S3Reader(Reader):
    def __init__(self, response: aiohttp.ClientResponse | None, length: int):
        self.response = response
        self.left = length

    async def chunks(self, size: int) -> AsyncIterator[bytes]:
        while self.left > 0:
            assert self.response is not None
            with _unavailable("read a file"):
                data = await self.response.content.readexactly(min(size, self.left))
            self.left -= len(data)
            yield data

    async def close(self) -> None:
        if self.response is not None:
            self.response.close()
            self.response = None

"""Files on the local disk (the embedded default): HAPTA_DATA_DIR/files/<key>.

An upload is written to `.partial/` beside the objects (the same filesystem), fsynced, then renamed into place and
the directory fsynced: a crash leaves either the whole object or a partial file the sweeper removes, never a
torn object under a real key. Disk I/O runs in threads so that a slow disk never stalls the event loop.

A paused upload is its partial file, fsynced; resuming reopens it, hashes what it holds (sha256 state cannot be
saved, and the bytes are at hand) and appends.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import AsyncIterator, BinaryIO

from .base import ObjectMissing, Reader, Storage, StorageUnavailable, Writer, check_key


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStorage(Storage):
    name = "local"

    def __init__(self, root: Path):
        self.root = root
        self.partial = root / ".partial"

    async def start(self) -> None:
        await asyncio.to_thread(self.partial.mkdir, parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def partial_path(self, key: str) -> Path:
        return self.partial / (check_key(key).replace("/", "+") + ".part")

    async def writer(self, key: str, content_type: str) -> Writer:
        try:
            file = await asyncio.to_thread(open, self.partial_path(key), "wb")
        except OSError as exc:
            raise StorageUnavailable(f"cannot write files: {exc.strerror}") from None
        return LocalWriter(self, key, file)

    async def resume(self, key: str, content_type: str, state: dict) -> Writer:
        size = int(state["size"])

        def reopen() -> tuple[BinaryIO, "hashlib._Hash"]:
            file = open(self.partial_path(key), "r+b")
            try:
                if os.fstat(file.fileno()).st_size < size:
                    raise ObjectMissing(key)
                file.truncate(size)   # bytes past what was kept: the client sends them again
                digest = hashlib.sha256()
                while data := file.read(1024 * 1024):
                    digest.update(data)
                return file, digest
            except BaseException:
                file.close()
                raise
        try:
            file, digest = await asyncio.to_thread(reopen)
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot write files: {exc.strerror}") from None
        writer = LocalWriter(self, key, file)
        writer.sha256, writer.size = digest, size
        return writer

    async def reader(self, key: str, offset: int, length: int) -> Reader:
        try:
            file = await asyncio.to_thread(open, self.path(key), "rb")
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read files: {exc.strerror}") from None
        file.seek(offset)
        return LocalReader(file, length)

    async def remove(self, key: str) -> None:
        def unlink() -> None:
            for path in (self.path(key), self.partial_path(key)):
                path.unlink(missing_ok=True)
        try:
            await asyncio.to_thread(unlink)
        except OSError as exc:
            raise StorageUnavailable(f"cannot remove files: {exc.strerror}") from None

    def read_range(self, key: str, offset: int, length: int) -> tuple[int, bytes]:
        """(object size, bytes) for the gateway's HTTP route; blocking, run it in a thread."""
        with open(self.path(key), "rb") as file:
            size = os.fstat(file.fileno()).st_size
            file.seek(offset)
            return size, file.read(max(0, min(length, size - offset)))

    def size_now(self, key: str) -> int:
        """Blocking: for the gateway's HTTP route, in its thread."""
        return self.path(key).stat().st_size

    async def size(self, key: str) -> int | None:
        try:
            return await asyncio.to_thread(self.size_now, key)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read files: {exc.strerror}") from None


class LocalWriter(Writer):
    def __init__(self, storage: LocalStorage, key: str, file: BinaryIO):
        super().__init__()
        self.storage = storage
        self.key = key
        self.file = file

    def _write(self, parts: list[bytes | memoryview]) -> None:
        for data in parts:   # hashlib releases the GIL: this thread hashes while the loop reads the socket
            self.sha256.update(data)
            self.file.write(data)
            self.size += len(data)

    async def write(self, parts: list[bytes | memoryview]) -> None:
        try:
            await asyncio.to_thread(self._write, parts)
        except OSError as exc:
            raise StorageUnavailable(f"cannot write files: {exc.strerror}") from None

    def _commit(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        final = self.storage.path(self.key)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.storage.partial_path(self.key), final)
        _fsync_dir(final.parent)

    async def commit(self) -> None:
        try:
            await asyncio.to_thread(self._commit)
        except OSError as exc:
            raise StorageUnavailable(f"cannot write files: {exc.strerror}") from None

    async def pause(self) -> dict | None:
        def keep() -> None:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
        try:
            await asyncio.to_thread(keep)
        except OSError as exc:
            raise StorageUnavailable(f"cannot write files: {exc.strerror}") from None
        return {"size": self.size}

    async def discard(self) -> None:
        def drop() -> None:
            self.file.close()
            self.storage.partial_path(self.key).unlink(missing_ok=True)
        await asyncio.to_thread(drop)


class LocalReader(Reader):
    def __init__(self, file: BinaryIO, length: int):
        self.file = file
        self.left = length

    async def chunks(self, size: int) -> AsyncIterator[bytes]:
        while self.left > 0:
            data = await asyncio.to_thread(self.file.read, min(size, self.left))
            if not data:
                raise StorageUnavailable("the file is shorter than its record says")
            self.left -= len(data)
            yield data

    async def close(self) -> None:
        await asyncio.to_thread(self.file.close)

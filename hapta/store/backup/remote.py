"""s3://bucket/key as the place of a backup: the app's own S3 (the S3_* settings), through the client the file
backend uses. The archive is written locally first and then uploaded: S3 shows an object only once its upload is
complete, which is the same promise as the local write's rename."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import aiohttp
from miniopy_async.error import MinioException, S3Error

from ...settings import Settings
from ..files.s3 import S3Storage
from .errors import BackupError


def parse(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not bucket or not key or key.endswith("/"):
        raise BackupError(f"{url}: give s3://bucket/key, the key naming the archive")
    return bucket, key


@asynccontextmanager
async def _client(settings: Settings, url: str, what: str) -> AsyncIterator:
    if not settings.s3_endpoint:
        raise BackupError(f"{url}: S3_ENDPOINT is not set (the S3 settings say where s3:// is)")
    storage = S3Storage.from_settings(settings)
    try:
        yield storage.s3
    except S3Error as exc:
        raise BackupError(f"S3 refused to {what} {url}: {exc.code}") from None
    except (MinioException, aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        raise BackupError(f"cannot reach S3 at {settings.s3_endpoint} to {what} {url} ({type(exc).__name__})") \
            from None
    finally:
        await storage.close()


async def upload(settings: Settings, url: str, archive: Path) -> None:
    bucket, key = parse(url)
    async with _client(settings, url, "store") as s3:
        await s3.fput_object(bucket, key, str(archive), content_type="application/x-tar")


async def download(settings: Settings, url: str, archive: Path) -> None:
    bucket, key = parse(url)
    async with _client(settings, url, "fetch") as s3:
        await s3.fget_object(bucket, key, str(archive))

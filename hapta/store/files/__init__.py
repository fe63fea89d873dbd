"""Where file bytes live: S3 (any S3 API, e.g. MinIO or SeaweedFS) when S3_* is set, else the local disk. The
interface both backends keep is in base.py; what the bytes are, judged by their first ones, in types.py."""
from __future__ import annotations

from ...settings import Settings
from .base import (KEY_PATTERN, ObjectMissing, Reader, Storage, StorageUnavailable, Writer, check_key,
                   new_key)

__all__ = ["KEY_PATTERN", "ObjectMissing", "Reader", "Storage", "StorageUnavailable", "Writer", "check_key", "new_key",
           "open_storage"]


def open_storage(settings: "Settings") -> Storage:
    if settings.s3_endpoint:
        from .s3 import S3Storage
        return S3Storage.from_settings(settings)
    from .local import LocalStorage
    return LocalStorage(settings.data_dir / "files")

"""The backup file: a plain tar of `database.dump` (pg_dump -Fc, compressed already), `files/<key>` (each stored
file under its key) and `manifest.json`, written last because it holds the sha256 of everything before it.

Writing goes to a temporary file beside the target and is renamed into place once complete and fsynced, so a cut-off
backup never looks like a finished one. Reading stages every member into a folder while hashing it, then checks
the hashes and the list of files against the manifest: nothing is restored from an archive that does not match.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from ..files.base import KEY_PATTERN
from .errors import BackupError

FORMAT = 1
DUMP = "database.dump"
MANIFEST = "manifest.json"
FILES = "files/"
MAX_MANIFEST = 64 * 1024 * 1024   # a manifest lists every file; this is millions of them, and bounds the read
COPY_CHUNK = 1024 * 1024


class _Hashing:
    """A file read through once, by tarfile, hashing as it goes: one pass over each file, not two."""

    def __init__(self, file: BinaryIO):
        self.file = file
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.sha256.update(data)
        return data


def _add(tar: tarfile.TarFile, name: str, file: BinaryIO, size: int) -> str:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(time.time()), 0o600
    hashing = _Hashing(file)
    tar.addfile(info, hashing)
    return hashing.sha256.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(target: Path, dump: Path, files: list[tuple[str, Path]], manifest: dict) -> dict:
    """Write the archive to `target` atomically; `files` are (key, path). Return the manifest as written: the one
    given plus the sha256 and sizes found while copying. A file gone meanwhile (released and swept by a gateway
    still running) is listed under files.missing rather than failing the whole backup."""
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
                with open(dump, "rb") as file:
                    manifest["database"]["bytes"] = size = os.fstat(file.fileno()).st_size
                    manifest["database"]["sha256"] = _add(tar, DUMP, file, size)
                hashes, total, missing = {}, 0, []
                for key, path in files:
                    try:
                        file = open(path, "rb")
                    except FileNotFoundError:
                        missing.append(key)
                        continue
                    with file:
                        size = os.fstat(file.fileno()).st_size
                        hashes[key] = _add(tar, FILES + key, file, size)
                        total += size
                manifest["files"].update(count=len(hashes), bytes=total, sha256=hashes, missing=missing)
                text = json.dumps(manifest, indent=2, sort_keys=True).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mtime, info.mode = len(text), int(time.time()), 0o600
                tar.addfile(info, io.BytesIO(text))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
        _fsync_dir(target.parent)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return manifest


def _copy(source: BinaryIO, target: Path) -> str:
    sha256 = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        while data := source.read(COPY_CHUNK):
            sha256.update(data)
            out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return sha256.hexdigest()


def stage(archive: Path, staging: Path) -> dict:
    """Unpack `archive` into `staging` (database.dump, files/<key>), checking every byte against the manifest;
    return the manifest. Anything that does not match is refused in one line."""
    found: dict[str, str] = {}
    manifest = None
    try:
        with tarfile.open(archive, mode="r:") as tar:
            for member in tar:
                name = member.name
                is_file = name.startswith(FILES) and KEY_PATTERN.fullmatch(name[len(FILES):])
                if not member.isfile() or name not in (DUMP, MANIFEST) and not is_file:
                    raise BackupError(f"{archive} is not a hapta backup (it holds {name!r})")
                source = tar.extractfile(member)
                assert source is not None   # a regular file always has its bytes
                if name == MANIFEST:
                    if member.size > MAX_MANIFEST:
                        raise BackupError(f"{archive}: its manifest.json is implausibly large")
                    manifest = source.read()
                else:
                    found[name] = _copy(source, staging / name)
    except (tarfile.TarError, EOFError) as exc:
        raise BackupError(f"{archive} is not a readable backup ({exc})") from None
    except OSError as exc:
        raise BackupError(f"cannot read {archive} ({exc.strerror})") from None
    return _check(archive, manifest, found)


def _check(archive: Path, raw: bytes | None, found: dict[str, str]) -> dict:
    if raw is None:
        raise BackupError(f"{archive} is not a hapta backup (no manifest.json; the archive may be cut off)")
    try:
        manifest = json.loads(raw)
        version, dump_sha, file_shas = manifest["format"], manifest["database"]["sha256"], manifest["files"]["sha256"]
    except (ValueError, KeyError, TypeError):
        raise BackupError(f"{archive} is not a hapta backup (its manifest.json is not one)") from None
    if version != FORMAT:
        raise BackupError(f"{archive} is a backup of format {version}; this hapta reads format {FORMAT}")
    if found.get(DUMP) != dump_sha:
        raise BackupError(f"{archive} is corrupt: database.dump does not match its sha256 in the manifest")
    listed = {FILES + key: sha for key, sha in file_shas.items()}
    held = {name: sha for name, sha in found.items() if name != DUMP}
    for name in sorted(listed.keys() | held.keys()):
        if name not in held:
            raise BackupError(f"{archive} is corrupt: {name} is in the manifest but not in the archive")
        if name not in listed:
            raise BackupError(f"{archive} is corrupt: {name} is in the archive but not in the manifest")
        if held[name] != listed[name]:
            raise BackupError(f"{archive} is corrupt: {name} does not match its sha256 in the manifest")
    return manifest

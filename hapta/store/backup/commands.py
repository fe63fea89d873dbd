"""`hapta backup` and `hapta restore`: a consistent snapshot of the database and the local files in one archive,
and back into an empty database and data directory (docs/operations.md, "Backup and restore").

Consistency: one REPEATABLE READ transaction exports its snapshot; the manifest's row counts are read in it and
pg_dump dumps exactly it (--snapshot). Stored files never change under a key (each upload gets a new one), so
copying them after the snapshot can only add files no row names yet, or miss one a running gateway released and
swept meanwhile (then listed under files.missing); stop the gateway for a backup that can miss nothing.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import asyncpg

from ...settings import Settings
from ..files.base import KEY_PATTERN
from . import archive, database, pgtools, remote
from .errors import BackupError

S3_NOTE = ("files stay in the S3 bucket, which is not copied: keep it safe with the bucket's own versioning or "
           "replication")
DUMP_TIMEOUT = 6 * 3600   # a bound, not an estimate: a dump that runs longer than this has hung


def _dsn(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    from ..embedded import start_embedded
    return start_embedded(settings.data_dir)


def _stored_files(settings: Settings) -> list[tuple[str, Path]]:
    """Every object of the local backend: HAPTA_DATA_DIR/files/<key>, leaving out uploads in progress."""
    root = settings.data_dir / "files"
    if not root.is_dir():
        return []
    found = ((path.relative_to(root).as_posix(), path) for path in root.rglob("*") if path.is_file())
    return sorted((key, path) for key, path in found if KEY_PATTERN.fullmatch(key))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _rows_text(rows: dict[str, int]) -> str:
    return f"{sum(rows.values())} rows ({', '.join(f'{name} {count}' for name, count in rows.items()) or 'no tables'})"


async def backup(settings: Settings, target: str, version: str) -> str:
    """Write the backup to a FILE or s3://bucket/key; return what was written, for the operator. `version` is
    hapta's, for the manifest (the package's root is above this layer)."""
    if target.startswith("s3://"):
        remote.parse(target)   # a bad URL is refused before the work
        with tempfile.TemporaryDirectory(prefix="hapta-backup-") as work:
            local = Path(work) / "backup.tar"
            manifest = await _write_backup(settings, local, version)
            await remote.upload(settings, target, local)
        return _backup_text(target, manifest)
    path = Path(target).resolve()
    if not path.parent.is_dir():
        raise BackupError(f"no folder {path.parent} to write {path.name} in")
    return _backup_text(str(path), await _write_backup(settings, path, version))


async def _write_backup(settings: Settings, path: Path, version: str) -> dict:
    embedded = not settings.database_url
    dsn = await asyncio.to_thread(_dsn, settings)
    uri, env = pgtools.connection(dsn)
    conn = await database.connect(dsn)
    try:
        with tempfile.TemporaryDirectory(prefix=".hapta-backup-", dir=path.parent) as work:
            dump = Path(work) / archive.DUMP
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
                described = await database.describe(conn)
                pg_dump = await asyncio.to_thread(pgtools.find, "pg_dump", await database.server_major(conn), embedded)
                # The exported snapshot lives as long as this transaction: pg_dump must finish inside it.
                await asyncio.to_thread(pgtools.run, [pg_dump.path, "--format=custom", f"--snapshot={snapshot}",
                                                      "--file", str(dump), "--dbname", uri],
                                        env, "pg_dump", DUMP_TIMEOUT)
            files = {"storage": "local", "included": True} if not settings.s3_endpoint else {
                "storage": "s3", "included": False, "bucket": settings.s3_bucket or "hapta", "note": S3_NOTE}
            manifest = {"format": archive.FORMAT, "hapta_version": version,
                        "created": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
                        "database": {**described, "pg_dump_version": pg_dump.version}, "files": files}
            stored = _stored_files(settings) if not settings.s3_endpoint else []
            return await asyncio.to_thread(archive.write, path, dump, stored, manifest)
    except OSError as exc:
        raise BackupError(f"cannot write {path} ({exc.strerror})") from None
    finally:
        await conn.close()


def _backup_text(where: str, manifest: dict) -> str:
    db, fs = manifest["database"], manifest["files"]
    files_text = (f"{_plural(fs['count'], 'file')} ({fs['bytes']} bytes)" if fs["included"] else S3_NOTE)
    lines = [f"wrote {where}: database {db['name']} (PostgreSQL {db['server_version']}): {_rows_text(db['rows'])}, "
             f"{_plural(len(db['migrations']), 'migration')}; {files_text}"]
    if fs.get("missing"):
        lines.append(f"note: {_plural(len(fs['missing']), 'file')} went away during the backup (released and removed "
                     f"by a running gateway): {', '.join(fs['missing'])}")
    return "\n".join(lines)


async def restore(settings: Settings, source: str, force: bool) -> str:
    """Bring the backup at a FILE or s3://bucket/key back; return what was restored, for the operator."""
    if not source.startswith("s3://"):
        source = str(Path(source).resolve())
        if not Path(source).is_file():
            raise BackupError(f"no backup at {source}")
    files_root = settings.data_dir / "files"
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Staged beside files/ (the same filesystem, so moving a file into place is a rename), removed at the end.
        staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=settings.data_dir))
    except OSError as exc:
        raise BackupError(f"cannot write in {settings.data_dir} ({exc.strerror})") from None
    try:
        local = Path(source)
        if source.startswith("s3://"):
            local = staging / "backup.tar"
            await remote.download(settings, source, local)
        manifest = await asyncio.to_thread(archive.stage, local, staging)   # refuses a corrupt archive
        if manifest["files"]["count"] and settings.s3_endpoint:
            raise BackupError(f"the backup holds {_plural(manifest['files']['count'], 'local file')}, but S3_ENDPOINT "
                              f"is set and this gateway would look for them in S3; restore with local files "
                              f"(no S3_* settings)")
        embedded = not settings.database_url
        dsn = await asyncio.to_thread(_dsn, settings)
        uri, env = pgtools.connection(dsn)
        conn = await database.connect(dsn)
        try:
            name = await conn.fetchval("SELECT current_database()")
            tables, present = await database.tables(conn), _stored_files(settings)
            if (tables or present) and not force:
                held = [f"database {name} has {_plural(tables, 'table')}" if tables else "",
                        f"{files_root} has {_plural(len(present), 'file')}" if present else ""]
                raise BackupError(f"the target is not empty ({' and '.join(filter(None, held))}); restore into an "
                                  f"empty one, or pass --force to replace it")
            dumped_by = int(manifest["database"].get("pg_dump_version", "0").split(".")[0])
            pg_restore = await asyncio.to_thread(pgtools.find, "pg_restore", dumped_by, embedded)
            replaced = []
            if tables:
                await database.empty(conn)
                replaced.append(f"{_plural(tables, 'table')} of database {name}")
            # One transaction: a restore that fails leaves the database as empty as it found it.
            try:
                await asyncio.to_thread(pgtools.run, [pg_restore.path, "--single-transaction", "--exit-on-error",
                                                      "--no-owner", "--no-privileges", "--dbname", uri,
                                                      str(staging / archive.DUMP)], env, "pg_restore", DUMP_TIMEOUT)
            except BackupError as exc:
                raise BackupError(f"{exc} (nothing was restored)") from None
            rows = await database.row_counts(conn)
        finally:
            await conn.close()
        if present:
            shutil.rmtree(files_root)
            replaced.append(f"{_plural(len(present), 'file')} in {files_root}")
        for key in manifest["files"]["sha256"]:
            target = files_root / key
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / archive.FILES / key, target)
    except OSError as exc:
        raise BackupError(f"cannot restore the files into {files_root} ({exc.strerror})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if rows != manifest["database"]["rows"]:
        raise BackupError(f"restored, but the rows differ from the manifest: {_rows_text(rows)} against "
                          f"{_rows_text(manifest['database']['rows'])}")
    fs = manifest["files"]
    files_text = (f"{_plural(fs['count'], 'file')} ({fs['bytes']} bytes) into {files_root}" if fs["included"]
                  else fs.get("note", S3_NOTE))
    lines = [f"restored {source} (made {manifest['created']} by hapta {manifest['hapta_version']}) into database "
             f"{name}: {_rows_text(rows)}, {_plural(len(manifest['database']['migrations']), 'migration')}; "
             f"{files_text}"]
    if replaced:
        lines.insert(0, f"replaced (--force): {' and '.join(replaced)}")
    return "\n".join(lines)


def command(args, settings: Settings, version: str) -> int:
    """Run `hapta backup` or `hapta restore` as parsed by hapta.cli; every failure is one line, exit status 1."""
    try:
        if args.command == "backup":
            target = args.target or f"hapta-backup-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.tar"
            print(asyncio.run(backup(settings, target, version)))
        else:
            print(asyncio.run(restore(settings, args.file, args.force)))
    except BackupError as exc:
        print(f"hapta {args.command}: {exc}", file=sys.stderr)
        return 1
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:   # e.g. no right to read a table
        print(f"hapta {args.command}: the database refused: {exc}", file=sys.stderr)
        return 1
    return 0

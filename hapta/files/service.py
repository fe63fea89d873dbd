"""The process-wide side of files: the storage backend, the declared file fields, and the sweeper.

Atomicity with the record rests on one table, hapta.unclaimed_files (store/sql/0004_files.sql): a row names an
object that may exist in storage while no record refers to it.

    begin    insert the row (a lease that this process renews while the upload lives), then open the writer
    store    in the transaction that writes the file into the record: delete the row (the record owns it now)
    abandon  remove the object, then the row; if storage is down, the row stays with its lease run out
    park     an upload finished without a record (files.upload with no id): the row stays, naming its token,
             uploader and field (column `upload`, store/sql/0017), its lease the idle time, not renewed; a create
             that names the token deletes the row in its own transaction, else the sweeper removes the object
    release  the trigger hapta.release_files adds a row for every file a record lets go of (replaced, removed,
             the record deleted, by any writer), in the writer's own transaction, and NOTIFYs hapta_files
    suspend  an upload of a signed-in principal whose socket dropped (store/sql/0018, column `resume`): the row keeps
             what storage kept, its lease the resume time, until `files.upload {resume}` holds it again

The sweeper removes the objects of rows whose lease ran out, then the rows: at start, every `sweep_interval`
seconds, and when NOTIFY hapta_files says a record let files go. Removal is idempotent, so two processes sweeping
the same row do no harm, and a crash between removing an object and deleting its row only repeats the removal.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Iterable

import asyncpg

from ..config import Collection, ConfigError, FileBounds, FileField
from ..models import Model
from ..query import schema as kinds
from ..settings import Settings
from ..store.files import ObjectMissing, Storage, StorageUnavailable, Writer, check_key, open_storage
from ..store.files.types import KNOWN_TYPES
from ..store.listener import Listener
from ..store.failures import UPSTREAM_ERRORS
from ..store.postgres import Database
from .signing import UrlSigner
from .thumbs import MAX_AT_ONCE, NotAnImage, make, output_type, parse_size, thumb_key


log = logging.getLogger("hapta.files")

CHANNEL = "hapta_files"
SWEEP_BATCH = 100
TRIGGER_LOCK = 0x6861707466   # "haptf": one process installs the triggers at a time
MAX_DIGESTS = 10_000          # kept uploads' running sha256 held in memory for a resume in this process


def declared_fields(collections: Iterable[Collection], models: dict[str, Model]) -> dict[str, dict[str, FileField]]:
    """collection -> field -> FileField, checked against the catalog; mistakes stop the start."""
    found: dict[str, dict[str, FileField]] = {}
    for collection in collections:
        for name, spec in getattr(collection, "files", {}).items():
            model = models[collection.name]
            column = model.info.columns.get(name)
            where = f"{collection.name}.files[{name!r}]"
            if column is None or name in collection.hidden or column.kind != kinds.JSON:
                raise ConfigError(f"{where} must name a visible jsonb column (a list of files)")
            if not (name.isidentifier() and name.isascii() and collection.name.isidentifier()
                    and collection.name.isascii()):
                raise ConfigError(f"{where}: file fields need plain ASCII identifiers as collection and field names")
            unknown = sorted(set(spec.types or ()) - KNOWN_TYPES)
            if unknown:
                raise ConfigError(f"{where}: cannot recognise {', '.join(unknown)} by content; "
                                  f"known: {', '.join(sorted(KNOWN_TYPES))}")
            if isinstance(spec.thumbs, str):
                raise ConfigError(f"{where}: thumbs is a tuple of sizes, e.g. ({spec.thumbs!r},)")
            for size in spec.thumbs:
                try:
                    parse_size(size)
                except ValueError as exc:
                    raise ConfigError(f"{where}: {exc}") from None
            if spec.max_size < 0 or spec.max_count < 1:
                raise ConfigError(f"{where}: max_size must be >= 0 and max_count >= 1")
            found.setdefault(collection.name, {})[name] = spec
    return found


class FileService:
    def __init__(self, bounds: FileBounds, collections: Iterable[Collection], settings: Settings, db: Database,
                 models: dict[str, Model], listener: Listener, storage: Storage | None = None, *,
                 public_url: Callable[[], str | None] = lambda: None):
        self.db = db
        self.models = models
        self.fields = declared_fields(collections, models)
        self.storage = storage or open_storage(settings)
        self.signer = UrlSigner(settings.jwt_secret)
        self.public_url = public_url   # how browsers reach the gateway (asked each time: known once it listens)
        self.limits = bounds   # chunk, window, idle_timeout: what every stream keeps to
        self.interval = bounds.sweep_interval
        self.lease = max(4 * self.interval, 2.0)   # renewed every interval: three renewals may fail in a row
        self.live: set[str] = set()                # keys of uploads in progress in this process
        self.ready = False
        self.thumbing = asyncio.Semaphore(MAX_AT_ONCE)        # thumbnails being made at once (worker threads)
        self.making: dict[str, asyncio.Future] = {}            # thumb key -> its making, shared by who asks meanwhile
        self.digests: dict[str, tuple[int, Any]] = {}          # kept upload's key -> (bytes, their sha256 so far)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        listener.add(CHANNEL, lambda _payload: self.wake())
        listener.on_reset(self.wake)   # a NOTIFY may have been missed: look now

    def field(self, collection: str, name: str) -> FileField | None:
        return self.fields.get(collection, {}).get(name)

    # ---- life cycle ----

    async def start(self) -> None:
        await self._install_triggers()
        try:
            await self.storage.start()
            self.ready = True
        except StorageUnavailable:
            log.warning("file storage (%s) is unavailable at start; file ops answer UNAVAILABLE until it is back",
                        self.storage.name)
        self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.storage.close()

    async def _install_triggers(self) -> None:
        async with self.db.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", TRIGGER_LOCK)
            for name in self.models:
                if not name.isidentifier():
                    continue
                fields = self.fields.get(name)
                if fields:
                    columns = ", ".join(f'"{f}"' for f in fields)
                    arguments = ", ".join(f"'{f}'" for f in fields)
                    await conn.execute(
                        f'CREATE OR REPLACE TRIGGER hapta_release_files AFTER UPDATE OF {columns} OR DELETE '
                        f'ON "{name}" FOR EACH ROW EXECUTE FUNCTION hapta.release_files({arguments})')
                else:
                    await conn.execute(f'DROP TRIGGER IF EXISTS hapta_release_files ON "{name}"')

    # ---- uploads ----

    async def begin(self, key: str, content_type: str, resume: dict | None = None) -> Writer:
        """Claim `key` for an upload in progress (so a crash leaves a row for the sweeper), then open a writer.
        `resume`: what a later files.upload {resume} needs to know of it (id, owner, target), held by this process."""
        await self.db.execute(
            "INSERT INTO hapta.unclaimed_files (key, lease_until, resume) "
            "VALUES ($1, now() + make_interval(secs => $2), $3)",
            key, self.lease, None if resume is None else {**resume, "held": True})
        self.live.add(key)
        try:
            return await self.storage.writer(key, content_type)
        except BaseException:
            await self.abandon(key)
            raise

    async def adopt(self, conn: asyncpg.Connection, key: str) -> bool:
        """In the record's transaction: the record owns `key` now. False if the claim is gone (swept)."""
        return await conn.fetchval("DELETE FROM hapta.unclaimed_files WHERE key = $1 RETURNING true", key) is True

    async def park(self, key: str, upload: dict) -> bool:
        """An upload finished without a record: its row now says who may use it and how (`upload`: token, owner,
        collection, field, entry), its lease is the idle time. The uploader's other parked uploads get the same
        lease again: a post with several large pictures names its first token only after the last one is up, and
        that may take longer than the idle time. False if the claim is gone."""
        async with self.db.transaction() as conn:
            parked = await conn.fetchval(
                "UPDATE hapta.unclaimed_files SET upload = $2, lease_until = now() + make_interval(secs => $3) "
                "WHERE key = $1 RETURNING true", key, upload, float(self.limits.idle_timeout))
            if parked:
                await conn.execute(
                    "UPDATE hapta.unclaimed_files SET lease_until = now() + make_interval(secs => $2) "
                    "WHERE upload ->> 'owner' = $1 AND upload IS NOT NULL AND lease_until > now()",
                    upload["owner"], float(self.limits.idle_timeout))
        self.live.discard(key)
        return parked is True

    async def suspend(self, key: str, kept: dict, owner: str, digest: Any = None) -> bool:
        """An upload's socket dropped: keep its row, with what storage `kept` ({stored, type, ...}), for the resume
        time, unless the principal's kept uploads would pass `resume_bytes` (False: the caller drops it). `digest`,
        the sha256 of the kept bytes, stays in this process for a resume here (elsewhere it is computed again)."""
        self.live.discard(key)
        try:
            suspended = await self.db.fetchval(
                "UPDATE hapta.unclaimed_files SET resume = resume || $2::jsonb, "
                "lease_until = now() + make_interval(secs => $3) "
                "WHERE key = $1 AND upload IS NULL AND $4 + (SELECT coalesce(sum((resume ->> 'stored')::bigint), 0) "
                "  FROM hapta.unclaimed_files WHERE resume ->> 'owner' = $5 AND resume ->> 'held' = 'false' "
                "  AND lease_until > now()) <= $6 RETURNING true",
                key, {**kept, "held": False}, float(self.limits.resume_timeout), int(kept["stored"]), owner,
                self.limits.resume_bytes) is True
        except UPSTREAM_ERRORS:
            return False
        if suspended and digest is not None:
            while len(self.digests) >= MAX_DIGESTS:   # never resumed here: the oldest go (resumes rehash them)
                del self.digests[next(iter(self.digests))]
            self.digests[key] = (int(kept["stored"]), digest)
        return suspended

    def digest(self, key: str, stored: int) -> Any:
        """The sha256 of a kept upload's first `stored` bytes, if this process kept it (once), else None."""
        found = self.digests.pop(key, None)
        return found[1] if found is not None and found[0] == stored else None

    async def resumable(self, upload_id: str) -> tuple[str, dict] | None:
        """(key, its resume state) of the upload `upload_id` in progress or kept, or None when there is none."""
        row = await self.db.fetchrow(
            "SELECT key, resume FROM hapta.unclaimed_files WHERE resume ->> 'id' = $1 AND upload IS NULL "
            "AND lease_until > now()", upload_id)
        return None if row is None else (row["key"], row["resume"])

    async def hold(self, key: str) -> bool:
        """Take a kept upload for this process's connection (False when another got it first, or it is gone); its
        lease is the live one again, renewed while it lives."""
        held = await self.db.fetchval(
            "UPDATE hapta.unclaimed_files SET resume = resume || '{\"held\": true}'::jsonb, "
            "lease_until = now() + make_interval(secs => $2) "
            "WHERE key = $1 AND resume ->> 'held' = 'false' AND lease_until > now() RETURNING true", key, self.lease)
        if held:
            self.live.add(key)
        return held is True

    async def release(self, key: str) -> None:
        """A held upload that could not go on after all (storage down): kept again, for the resume time."""
        self.live.discard(key)
        try:
            await self.db.execute(
                "UPDATE hapta.unclaimed_files SET resume = resume || '{\"held\": false}'::jsonb, "
                "lease_until = now() + make_interval(secs => $2) WHERE key = $1",
                key, float(self.limits.resume_timeout))
        except UPSTREAM_ERRORS:
            log.warning("could not keep an upload for a later resume; its lease will run out")

    async def claim(self, conn: asyncpg.Connection, token: str) -> dict | None:
        """In the record's transaction: the parked upload named by `token` (its row locked), or None when it is
        unknown, used or past its idle time. The caller checks it, then `adopt`s its key."""
        row = await conn.fetchrow(
            "SELECT key, upload FROM hapta.unclaimed_files WHERE upload ->> 'token' = $1 AND lease_until > now() "
            "FOR UPDATE", token)
        if row is None:
            return None
        return {**row["upload"], "key": row["key"]}   # jsonb: decoded by the pool's codec

    def adopted(self, key: str) -> None:
        self.live.discard(key)

    async def abandon(self, key: str, writer: Writer | None = None) -> None:
        """Leave nothing of `key`: drop the writer, remove the object, then the row. If storage or the database is
        down, what is left has a row whose lease has run out, and the sweeper finishes the job when it can."""
        self.live.discard(key)
        try:
            if writer is not None:
                await writer.discard()
            await self.remove(key)
        except StorageUnavailable:
            await self._expire(key)
            return
        try:
            await self.db.execute("DELETE FROM hapta.unclaimed_files WHERE key = $1", key)
        except UPSTREAM_ERRORS:
            log.warning("could not delete the unclaimed row of a removed file; the sweeper will")

    async def _expire(self, key: str) -> None:
        try:
            await self.db.execute("UPDATE hapta.unclaimed_files SET lease_until = now() WHERE key = $1", key)
        except UPSTREAM_ERRORS:
            log.warning("could not mark an abandoned upload for the sweeper; its lease will run out")
        self.wake()

    # ---- removal and thumbnails ----

    async def remove(self, key: str) -> None:
        """Remove an object and the thumbnails its field declares (made or not: removal is idempotent)."""
        self.digests.pop(key, None)
        collection, field = key.split("/")[:2]
        spec = self.field(collection, field)
        for size in (spec.thumbs if spec is not None else ()):
            await self.storage.remove(thumb_key(key, size))
        await self.storage.remove(key)

    async def thumbnail(self, entry: dict, size: str) -> tuple[str, str, int]:
        """(key, type, size in bytes) of the thumbnail of a file entry at a declared size, made now if it does not
        exist yet: one making per key at a time in this process, MAX_AT_ONCE makings at once, in worker threads."""
        key = thumb_key(entry["key"], size)
        kind = output_type(str(entry.get("type") or ""))
        length = await self.storage.size(key)
        if length is not None:
            return key, kind, length
        making = self.making.get(key)
        if making is None:
            making = self.making[key] = asyncio.ensure_future(self._make(entry, key, size, kind))
            making.add_done_callback(lambda _: self.making.pop(key, None))
        return key, kind, await asyncio.shield(making)

    async def _make(self, entry: dict, key: str, size: str, kind: str) -> int:
        length = int(entry.get("size") or 0)
        try:
            reader = await self.storage.reader(entry["key"], 0, length)
        except ObjectMissing:
            raise FileNotFoundError(entry["key"]) from None
        async with self.thumbing:
            parts = []
            try:
                async for data in reader.chunks(256 * 1024):
                    parts.append(data)
            finally:
                await reader.close()
            data = await asyncio.to_thread(make, b"".join(parts), size, str(entry.get("type") or ""))
        writer = await self.storage.writer(key, kind)
        try:
            await writer.write([data])
            await writer.commit()
        except BaseException:
            await writer.discard()
            raise
        log.info("made thumbnail %s (%d bytes)", key, len(data))
        return len(data)

    # ---- the sweeper ----

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                if not self.ready:
                    await self.storage.start()
                    self.ready = True
                    log.info("file storage (%s) is available", self.storage.name)
                await self._renew()
                await self.sweep()
            except StorageUnavailable:
                pass   # the backend logged it; try again next round
            except UPSTREAM_ERRORS:
                log.warning("file sweeper: the database is unavailable")
            except Exception:
                log.exception("file sweeper failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def _renew(self) -> None:
        if self.live:
            await self.db.execute(
                "UPDATE hapta.unclaimed_files SET lease_until = now() + make_interval(secs => $2) "
                "WHERE key = ANY($1::text[])", list(self.live), self.lease)

    async def sweep(self) -> int:
        """Remove the objects of unclaimed rows whose lease ran out; return how many rows were cleared."""
        cleared = 0
        while True:
            rows = await self.db.fetch(
                "SELECT key FROM hapta.unclaimed_files WHERE lease_until <= now() ORDER BY lease_until LIMIT $1",
                SWEEP_BATCH)
            done = []
            for row in rows:
                key = row["key"]
                if key in self.live:
                    continue
                try:
                    check_key(key)
                except ValueError:
                    log.warning("an unclaimed file key was not made by the gateway; its row is dropped untouched")
                else:
                    await self.remove(key)
                done.append(key)
            if done:
                await self.db.execute(
                    "DELETE FROM hapta.unclaimed_files WHERE key = ANY($1::text[]) AND lease_until <= now()", done)
            cleared += len(done)
            if len(rows) < SWEEP_BATCH or not done:
                return cleared

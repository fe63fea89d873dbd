"""What the dashboard's Backups, Settings and SQL pages do (docs/dashboard.md), as use cases: the backups there are
(HAPTA_DATA_DIR/backups, and s3://<S3_BUCKET>/backups/ with S3), their download, delete and restore, and when a
scheduled one runs next; the effective settings with every secret masked and where each came from; a test mail
through the configured SMTP; and SQL in a read-only transaction unless a statement is sent with `write`.

Fences. Restore replaces the running app's database and files: it is refused in production unless
HAPTA_ALLOW_RESTORE is set, and asks for the backup's name typed again. SQL runs on a connection of the gateway's
own pool (its database role, in the app's database only), in a transaction that is READ ONLY unless the request says
`write: true`, under SQL_TIMEOUT. Every statement, and every backup started, deleted or restored, goes to the admin
log (hapta.admin_log, store/sql/0021) with who (Principal.label) and from where.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
import urllib.parse
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

import asyncpg
import msgspec

from ..principal import Peer
from ..protocol.errors import BAD_REQUEST, CONFLICT, FORBIDDEN, NOT_FOUND, UNAVAILABLE, HaptaError
from ..settings import Settings, read_dotenv
from ..store.backup import BackupError, restore
from ..store.postgres import Database
from .service import BACKUP_NAME, Admin

log = logging.getLogger("hapta.admin")

SQL_TIMEOUT = 3.0            # seconds a console statement may run (statement_timeout), under the request's 10 s
MAX_ROWS = 500               # rows an answer carries; the rest are counted as cut off
MAX_BYTES = 1_000_000        # and bytes of their JSON
MAX_CELL = 10_000            # characters of one value shown
S3_PREFIX = "backups/"       # where in the app's bucket the dashboard keeps backups
DOWNLOAD_LINK_TTL = 300      # seconds an S3 backup's presigned link is valid
# A backup is a plain name in HAPTA_DATA_DIR/backups, or s3://<the app's bucket>/backups/<plain name>.
S3_BACKUP = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/backups/([A-Za-z0-9][A-Za-z0-9._-]{0,200})")

# Every setting the gateway reads (hapta/settings.py), and how it is shown: "secret" never, "url" without its
# password (and without query values that may hold one), "urls" each so, "plain" as it is.
SETTINGS: tuple[tuple[str, str, str], ...] = (
    ("DATABASE_URL", "database_url", "url"), ("DATABASE_REPLICA_URLS", "database_replica_urls", "urls"),
    ("REDIS_URL", "redis_url", "url"), ("HAPTA_DATA_DIR", "data_dir", "plain"),
    ("HAPTA_ENV", "env", "plain"), ("HAPTA_JWT_SECRET", "jwt_secret", "secret"),
    ("HAPTA_JWT_RETIRED_SECRETS", "jwt_retired_secrets", "secret"), ("HAPTA_ANON_KEY", "anon_key", "secret"),
    ("HAPTA_ADMIN_KEY", "admin_key", "secret"), ("S3_ENDPOINT", "s3_endpoint", "url"),
    ("S3_ACCESS_KEY", "s3_access_key", "secret"), ("S3_SECRET_KEY", "s3_secret_key", "secret"),
    ("S3_BUCKET", "s3_bucket", "plain"), ("HAPTA_TRUSTED_PROXIES", "trusted_proxies", "plain"),
    ("HAPTA_PUBLIC_URL", "public_url", "url"), ("HAPTA_REDIS_PREFIX", "redis_prefix", "plain"),
    ("HAPTA_METRICS_NETWORKS", "metrics_networks", "plain"), ("SMTP_URL", "smtp_url", "url"),
    ("HAPTA_MAIL_FROM", "mail_from", "plain"), ("HAPTA_WORKER_USER", "worker_user", "plain"),
    ("HAPTA_ALLOW_RESTORE", "allow_restore", "plain"),
)
MASK = "••••••"


def masked_url(url: str) -> str:
    """A URL without its password, nor the value of any query parameter (libpq's `?password=`, a token)."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        auth, _, hosts = netloc.rpartition("@")
        user, colon, _ = auth.partition(":")
        netloc = f"{user}:{MASK}@{hosts}" if colon else f"{user}@{hosts}"
    query = "&".join(f"{key}={MASK}" for key in urllib.parse.parse_qs(parts.query, keep_blank_values=True))
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def effective_settings(settings: Settings, environ: Mapping[str, str], dotenv: Mapping[str, str]) -> list[dict]:
    """Each setting's value as in force (secrets masked: `set` says whether there is one) and where it came from:
    "env" (the process's environment, which wins), ".env" (beside config.py) or "default". Pure."""
    shown = []
    for name, attribute, kind in SETTINGS:
        value = getattr(settings, attribute)
        source = "env" if environ.get(name) else ".env" if dotenv.get(name) else "default"
        if isinstance(value, tuple):
            value = ", ".join(masked_url(part) if kind == "urls" else part for part in value)
        elif isinstance(value, Path):
            value = str(value)
        if kind == "secret":
            value = MASK if value else None
        elif kind == "url" and value:
            value = masked_url(value)
        shown.append({"name": name, "value": value, "source": source, "secret": kind == "secret"})
    return shown


def _jsonable(value: Any) -> Any:
    """A value as the grid shows it: JSON's own types as they are, anything else (dates, numerics, bytes, ranges)
    as its text, each cut at MAX_CELL characters."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (dict, list)):
        text = msgspec.json.encode(value).decode()
        return value if len(text) <= MAX_CELL else text[:MAX_CELL] + "…"
    text = value.hex() if isinstance(value, (bytes, bytearray)) else str(value)
    return text if len(text) <= MAX_CELL else text[:MAX_CELL] + "…"


def _rows_of(status: str) -> int | None:
    """The row count of a command tag ("INSERT 0 3", "UPDATE 2", "SELECT 5"), None for one without ("CREATE")."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else None


class Operations:
    def __init__(self, db: Database, settings: Settings, admin: Admin, mailer: Any, streams: Any,
                 functions: Callable[[], Any], app_dir: Path | None):
        self.db = db
        self.settings = settings
        self.admin = admin            # starts backups (admin.backup) and knows the one under way
        self.mailer = mailer
        self.streams = streams        # file streams over the socket, for downloads
        self.functions = functions    # () -> the functions service, for the schedule of backups
        self.app_dir = app_dir
        self.restoring: asyncio.Task | None = None
        self.last_restore: dict[str, Any] | None = None

    # -- the admin log ------------------------------------------------------------------------------------------

    async def record(self, peer: Peer, action: str, detail: dict[str, Any]) -> None:
        """One line of hapta.admin_log. A log that cannot be written (a restore just replaced the schema with one
        older than 0021) is said in the gateway's log instead, never lost silently."""
        try:
            await self.db.execute("INSERT INTO hapta.admin_log (admin, address, action, detail) "
                                  "VALUES ($1, $2, $3, $4)", peer.principal.label, peer.address, action, detail)
        except asyncpg.UndefinedTableError:
            log.warning("admin log missing: %s %s by %s", action, detail.get("name", ""), peer.principal.label)

    async def log_lines(self, limit: int) -> dict[str, Any]:
        rows = await self.db.fetch("SELECT id, at, admin, address, action, detail FROM hapta.admin_log "
                                   "ORDER BY id DESC LIMIT $1", limit)
        return {"items": [{**dict(row), "at": row["at"].timestamp()} for row in rows]}

    # -- backups --------------------------------------------------------------------------------------------------

    @property
    def folder(self) -> Path:
        return self.settings.data_dir / "backups"

    @property
    def bucket(self) -> str:
        return self.settings.s3_bucket or "hapta"

    def _where(self, name: str) -> tuple[str, Path | str]:
        """("local", its path) or ("s3", its key) of a backup's name; BAD_REQUEST for any other name."""
        found = S3_BACKUP.fullmatch(name)
        if found is not None:
            if not self.settings.s3_endpoint or found.group(1) != self.bucket:
                raise HaptaError(BAD_REQUEST, f"backups in S3 are s3://{self.bucket}/backups/<name> of the app's own "
                                 "S3 (S3_* settings)")
            return "s3", S3_PREFIX + found.group(2)
        if not BACKUP_NAME.fullmatch(name):
            raise HaptaError(BAD_REQUEST, "a backup is a plain file name in HAPTA_DATA_DIR/backups (A-Z a-z 0-9 . _ -) "
                             f"or s3://{self.bucket}/backups/<name>")
        return "local", self.folder / name

    def _s3(self):
        from ..store.files.s3 import S3Storage
        return S3Storage.from_settings(self.settings)

    async def backups(self) -> dict[str, Any]:
        """The backups, newest first, the scheduled functions that take them, what is under way and how the last
        one ended, and whether restore is allowed here."""
        listed = []
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                if path.is_file() and BACKUP_NAME.fullmatch(path.name):   # not the .hapta-backup-* being written
                    stat = path.stat()
                    listed.append({"name": path.name, "where": "local", "size": stat.st_size,
                                   "created": stat.st_mtime})
        if self.settings.s3_endpoint:
            storage = self._s3()
            try:
                async for item in storage.s3.list_objects(self.bucket, prefix=S3_PREFIX):
                    if item.object_name.endswith("/"):
                        continue
                    listed.append({"name": f"s3://{self.bucket}/{item.object_name}", "where": "s3",
                                   "size": item.size, "created": item.last_modified.timestamp()
                                   if item.last_modified else None})
            except Exception as exc:   # S3 away: the local ones still show, and the page says why S3's do not
                listed.append({"name": f"s3://{self.bucket}/{S3_PREFIX}", "where": "s3", "size": None,
                               "created": None, "error": f"S3 cannot be listed ({type(exc).__name__})"})
            finally:
                await storage.close()
        listed.sort(key=lambda b: -(b["created"] or 0))
        running = self.admin.backing_up is not None and not self.admin.backing_up.done()
        restoring = self.restoring is not None and not self.restoring.done()
        return {"backups": listed, "folder": str(self.folder), "s3": f"s3://{self.bucket}/{S3_PREFIX}"
                if self.settings.s3_endpoint else None, "scheduled": self.scheduled(),
                "running": "backup" if running else "restore" if restoring else None,
                "last_backup": self.admin.last_backup, "last_restore": self.last_restore,
                "restore_allowed": self.restore_allowed()}

    def scheduled(self) -> list[dict[str, Any]]:
        """The @every functions that take backups, with their next run: those whose name or file says `backup`
        (functions/backups.py in docs/operations.md). A gateway cannot read which function calls ctx.backup()."""
        service = self.functions()
        if service is None:
            return []
        from croniter import croniter
        now = datetime.now(timezone.utc)
        found = []
        for function in service.functions.values():
            if "backup" not in function.name.lower() and "backup" not in Path(function.file).name.lower():
                continue
            for cron, _ in function.declares("every"):
                found.append({"function": function.name, "every": cron,
                              "next": croniter(cron, now).get_next(datetime).timestamp()})
        return sorted(found, key=lambda f: f["next"])

    async def start(self, peer: Peer, target: str | None) -> dict[str, Any]:
        """admin.backup, logged: a name of the list (local or s3://<bucket>/backups/...)."""
        started = self.admin.backup(target)
        where = started["target"]
        await self.record(peer, "backup.start", {"name": where if where.startswith("s3://") else Path(where).name})
        return started

    async def delete(self, peer: Peer, name: str) -> dict[str, Any]:
        where, place = self._where(name)
        if where == "local":
            try:
                Path(place).unlink()
            except FileNotFoundError:
                raise HaptaError(NOT_FOUND, f"no backup {name}") from None
        else:
            storage = self._s3()
            try:
                await storage.s3.remove_object(self.bucket, str(place))
            except Exception as exc:
                raise HaptaError(UNAVAILABLE, f"S3 refused to delete {name} ({type(exc).__name__})",
                                 retry_after=5.0) from None
            finally:
                await storage.close()
        await self.record(peer, "backup.delete", {"name": name})
        log.info("admin backup.delete %s by %s", name, peer.principal.label)
        return {"deleted": name}

    async def download(self, peer: Peer, name: str) -> tuple[dict[str, Any], Any]:
        """A local backup as a file stream over the socket (what files.download does); one in S3 as a presigned
        link valid DOWNLOAD_LINK_TTL seconds."""
        where, place = self._where(name)
        if where == "local":
            return await self.streams.send_local(peer, Path(place))
        storage = self._s3()
        try:
            url = await storage.s3.presigned_get_object(self.bucket, str(place),
                                                        expires=timedelta(seconds=DOWNLOAD_LINK_TTL))
        finally:
            await storage.close()
        return {"url": url, "expires_at": int(time.time()) + DOWNLOAD_LINK_TTL}, None

    def restore_allowed(self) -> bool:
        """Restore replaces the live database: never in production unless HAPTA_ALLOW_RESTORE says so."""
        return not self.settings.production or self.settings.allow_restore

    async def restore(self, peer: Peer, name: str, confirm: str) -> dict[str, Any]:
        """Start replacing the app's database and local files with a backup's (`hapta restore --force`), in the
        background; its outcome shows in admin.backups (last_restore) and the logs."""
        if not self.restore_allowed():
            raise HaptaError(FORBIDDEN, "restore is off in production (HAPTA_ENV=production); set "
                             "HAPTA_ALLOW_RESTORE=1 to allow it from the dashboard, or run `hapta restore`")
        where, place = self._where(name)
        if confirm != name:
            raise HaptaError(BAD_REQUEST, "confirm must be the backup's name, typed again")
        if where == "local" and not Path(place).is_file():
            raise HaptaError(NOT_FOUND, f"no backup {name}")
        if (self.restoring is not None and not self.restoring.done()) or \
                (self.admin.backing_up is not None and not self.admin.backing_up.done()):
            raise HaptaError(CONFLICT, "a backup or restore is under way in this process")
        source = str(place) if where == "local" else name
        await self.record(peer, "backup.restore", {"name": name, "state": "started"})
        log.warning("admin backup.restore %s by %s: replacing the database and local files", name,
                    peer.principal.label)
        self.last_restore = {"name": name, "state": "running", "started": time.time(), "message": None}
        self.restoring = asyncio.ensure_future(self._restore(peer, name, source))
        return {"started": True, "name": name}

    async def _restore(self, peer: Peer, name: str, source: str) -> None:
        state, message = "failed", ""
        try:
            message = await restore(self.settings, source, force=True)
            state = "done"
            log.info("restore: %s", message)
        except BackupError as exc:
            message = str(exc)
            log.warning("restore of %s failed: %s", name, exc)
        except Exception as exc:   # a bug of ours: the operator needs the story; the gateway goes on
            message = f"failed: {type(exc).__name__}"
            log.exception("restore of %s failed", name)
        # The pool's connections hold statements prepared against the tables just dropped: new ones replace them.
        await self.db.pool.expire_connections()
        assert self.last_restore is not None
        self.last_restore.update(state=state, message=message, ended=time.time())
        # The schema was replaced: this line goes into the restored admin log (when the backup has one).
        await self.record(peer, "backup.restore", {"name": name, "state": state})

    # -- settings and mail ------------------------------------------------------------------------------------

    def settings_view(self) -> dict[str, Any]:
        import os
        dotenv = read_dotenv(self.app_dir / ".env") if self.app_dir is not None else {}
        return {"settings": effective_settings(self.settings, os.environ, dotenv),
                "production": self.settings.production, "sql_timeout": SQL_TIMEOUT}

    async def mail_test(self, peer: Peer, to: str) -> dict[str, Any]:
        """Send a test mail now and say what the server answered (its words, or the error's kind and words); the
        outcome is the answer, not an error: the page shows it either way."""
        subject = "Hapta test mail"
        text = f"A test mail sent from the Hapta dashboard by {peer.principal.label}.\n"
        try:
            where = await asyncio.wait_for(self.mailer.send_now(to, subject, text), 8.0)
        except asyncio.TimeoutError:
            return {"sent": False, "message": "no answer from the SMTP server within 8 s"}
        except Exception as exc:   # the server's refusal or an unreachable server: what the admin came to see
            words = str(exc).replace(self.settings.smtp_url or "\0", "SMTP_URL")[:300]
            return {"sent": False, "message": f"{type(exc).__name__}: {words}"}
        log.info("admin mail.test sent by %s", peer.principal.label)
        return {"sent": True, "message": where}

    # -- SQL ------------------------------------------------------------------------------------------------------

    async def sql(self, peer: Peer, text: str, write: bool) -> dict[str, Any]:
        """One statement in its own transaction, READ ONLY unless `write`, at most SQL_TIMEOUT; the answer is its
        columns (name, type) and at most MAX_ROWS rows / MAX_BYTES, or PostgreSQL's error as PostgreSQL words it."""
        started = time.monotonic()
        detail: dict[str, Any] = {"sql": text, "write": write}
        try:
            async with self.db.acquire() as conn:
                conn.mark_touched()   # the statement may SET anything: the pool resets the session on release
                try:
                    answer = await self._run(conn, text, write)
                except asyncpg.PostgresError as exc:
                    detail["error"] = exc.sqlstate
                    raise HaptaError(BAD_REQUEST, str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                                     details={"sqlstate": exc.sqlstate, "detail": getattr(exc, "detail", None),
                                              "hint": getattr(exc, "hint", None),
                                              "position": getattr(exc, "position", None)}) from None
                detail["rows"] = answer["rows_count"]
                answer["ms"] = round((time.monotonic() - started) * 1000, 1)
                return answer
        finally:
            await self.record(peer, "sql", detail)

    async def _run(self, conn: asyncpg.Connection, text: str, write: bool) -> dict[str, Any]:
        async with conn.transaction(readonly=not write):
            await conn.execute(f"SET LOCAL statement_timeout = {int(SQL_TIMEOUT * 1000)}")
            # A first query takes the transaction's snapshot, after which PostgreSQL refuses
            # `SET transaction_read_only = off`: a statement cannot switch itself to writing.
            await conn.execute("SELECT 1")
            statement = await conn.prepare(text)   # one statement only: "a; b" is PostgreSQL's syntax error
            columns = [{"name": a.name, "type": a.type.name} for a in statement.get_attributes()]
            rows: list[list[Any]] = []
            size, cut = 0, False
            if columns:
                async for record in statement.cursor(prefetch=100):
                    row = [_jsonable(value) for value in record]
                    size += len(msgspec.json.encode(row))
                    if len(rows) >= MAX_ROWS or size > MAX_BYTES:
                        cut = True
                        break
                    rows.append(row)
                count = len(rows)
            else:
                await statement.fetch()
                count = _rows_of(statement.get_statusmsg())
            status = statement.get_statusmsg() if not columns else f"{len(rows)} row{'' if len(rows) == 1 else 's'}"
        return {"columns": columns, "rows": rows, "rows_count": count, "cut": cut, "status": status,
                "write": write}

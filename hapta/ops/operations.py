"""The ops of the dashboard's Backups, Settings and SQL pages (admin/operations.py; admins only, FORBIDDEN to anyone
else):

    admin.backup           {target?} -> {started, target}: a backup in the background (also a function's ctx.backup)
    admin.backups          -> {backups: [{name, where, size, created}], scheduled, running, last_backup,
                              last_restore, restore_allowed, folder, s3}
    admin.backup.download  {name} -> a file stream as files.download answers it (local), or {url, expires_at} (S3)
    admin.backup.delete    {name} -> {deleted}
    admin.backup.restore   {name, confirm} -> {started, name}: confirm is the name typed again; FORBIDDEN where
                           restore is off (production without HAPTA_ALLOW_RESTORE)
    admin.settings         -> {settings: [{name, value, source, secret}], production, sql_timeout}
    admin.mail.test        {to} -> {sent, message}
    admin.sql              {sql, write?} -> {columns: [{name, type}], rows, rows_count, cut, status, write, ms}
    admin.log              {limit?} -> {items: [{id, at, admin, address, action, detail}]}
"""
from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ..admin.operations import Operations
from .base import Args, Call, after_reply, op

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]


class BackupArgs(Args):
    target: Annotated[str, msgspec.Meta(max_length=1024)] | None = None   # s3://bucket/key, or a file name


class NameArgs(Args):
    name: Name


class RestoreArgs(Args):
    name: Name
    confirm: Annotated[str, msgspec.Meta(max_length=300)]   # the name typed again


class MailArgs(Args):
    to: Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]


class SqlArgs(Args):
    sql: Annotated[str, msgspec.Meta(min_length=1, max_length=100_000)]
    write: bool = False   # run outside READ ONLY: per statement, never remembered


class LogArgs(Args):
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 100


class OperationsOps:
    def __init__(self, operations: Operations):
        self.operations = operations

    @op("admin.backup", BackupArgs, admin=True)
    async def backup(self, call: Call, args: BackupArgs) -> dict[str, Any]:
        return await self.operations.start(call.peer, args.target)

    @op("admin.backups", admin=True)
    async def backups(self, call: Call, args: None) -> dict[str, Any]:
        return await self.operations.backups()

    @op("admin.backup.download", NameArgs, admin=True)
    async def download(self, call: Call, args: NameArgs) -> dict[str, Any]:
        answer, start = await self.operations.download(call.peer, args.name)
        if start is not None:
            after_reply(start)   # its chunks follow its answer
        return answer

    @op("admin.backup.delete", NameArgs, admin=True)
    async def delete(self, call: Call, args: NameArgs) -> dict[str, Any]:
        return await self.operations.delete(call.peer, args.name)

    @op("admin.backup.restore", RestoreArgs, admin=True)
    async def restore(self, call: Call, args: RestoreArgs) -> dict[str, Any]:
        return await self.operations.restore(call.peer, args.name, args.confirm)

    @op("admin.settings", admin=True)
    async def settings(self, call: Call, args: None) -> dict[str, Any]:
        return self.operations.settings_view()

    @op("admin.mail.test", MailArgs, admin=True)
    async def mail_test(self, call: Call, args: MailArgs) -> dict[str, Any]:
        return await self.operations.mail_test(call.peer, args.to)

    @op("admin.sql", SqlArgs, admin=True)
    async def sql(self, call: Call, args: SqlArgs) -> dict[str, Any]:
        return await self.operations.sql(call.peer, args.sql, args.write)

    @op("admin.log", LogArgs, admin=True)
    async def log(self, call: Call, args: LogArgs) -> dict[str, Any]:
        return await self.operations.log_lines(args.limit)

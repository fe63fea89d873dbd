"""Backup and restore of an app: its database (pg_dump) and its local files, in one archive with a manifest.

commands.py runs `hapta backup` / `hapta restore`; archive.py is the file format; database.py what is asked of
PostgreSQL; pgtools.py finds and runs pg_dump and pg_restore. docs/operations.md describes it for operators.
"""
from .commands import backup, command, restore
from .errors import BackupError

__all__ = ["BackupError", "backup", "command", "restore"]

"""pg_dump and pg_restore: which binary to run, and how to hand it the database without showing its password.

The embedded server (no DATABASE_URL) ships its own binaries inside pgserver, of exactly its version. Otherwise the
ones on PATH, as long as they are at least as new as the server (an older pg_dump refuses a newer server, and an
older pg_restore cannot read a newer dump); on Debian/Ubuntu a newer one may sit in /usr/lib/postgresql/N/bin.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from ...isolation import keep_environ
from .errors import BackupError


@dataclass(frozen=True)
class Tool:
    path: str
    major: int
    version: str


def _version(path: str) -> Tool | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=15).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"(\d+)(\.\d+)*", out)   # "pg_dump (PostgreSQL) 16.2"
    return Tool(path, int(found.group(1)), found.group(0)) if found else None


def embedded_bin() -> Path:
    import pgserver   # late: slow to import, and only the embedded path needs it
    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def find(name: str, least_major: int, embedded: bool) -> Tool:
    """The `name` binary (pg_dump, pg_restore) to run against a server of major version `least_major`."""
    if embedded:
        tool = _version(str(embedded_bin() / name))
        if tool is None:
            raise BackupError(f"the embedded PostgreSQL has no working {name} in {embedded_bin()}")
        return tool
    on_path = shutil.which(name)
    candidates = [on_path] if on_path else []
    candidates += sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = [tool for tool in map(_version, candidates) if tool is not None]
    for tool in found:
        if tool.major >= least_major:
            return tool
    if not found:
        raise BackupError(f"no {name} on PATH (install the PostgreSQL {least_major} client tools)")
    raise BackupError(f"{name} {found[0].version} at {found[0].path} is older than PostgreSQL {least_major}; "
                      f"put {name} {least_major} or newer on PATH")


# What pg_dump and pg_restore start with: what they need, and libpq's own settings; none of the gateway's (a process
# of the same user could read them in /proc/<pid>/environ while the dump runs).
TOOL_ENVIRON = keep_environ()


def connection(dsn: str) -> tuple[str, dict[str, str]]:
    """(a URI without the password, the environment carrying it): a password on the command line would show in
    every `ps` listing."""
    parts = urlsplit(dsn)
    env = {name: value for name, value in os.environ.items() if TOOL_ENVIRON(name) or name.startswith("PG")}
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
        host = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        parts = parts._replace(netloc=f"{user}@{host}" if user else host)
    return urlunsplit(parts), env


def where(dsn: str) -> str:
    """host:port (or the socket folder) for messages: never the user or password."""
    parts = urlsplit(dsn)
    socket = re.search(r"(?:^|&)host=([^&]+)", parts.query)
    if not parts.hostname and socket:
        return unquote(socket.group(1))
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"


def run(command: list[str], env: dict[str, str], what: str, timeout: float | None = None) -> None:
    """Run a client tool; its failure becomes one line: its first error (what follows is the SQL it ran)."""
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BackupError(f"{what} did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise BackupError(f"cannot run {command[0]} ({exc.strerror})") from None
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "error:" in line] or lines or [f"exit status {done.returncode}"]
        reason = errors[0].removeprefix(Path(command[0]).name + ": ").removeprefix("error: ")
        raise BackupError(f"{what} failed: {reason}")

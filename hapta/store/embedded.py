"""The embedded PostgreSQL used when no DATABASE_URL is set (pgserver: real PostgreSQL binaries from PyPI).

It lives in HAPTA_DATA_DIR/postgres, listens only on a Unix socket, and stops when the last process using it
exits. The gateway uses a database named `hapta` inside it.

Every connection needs the password (scram-sha-256, local and host alike): pgserver makes a server that trusts
every local connection, which a rule or function worker could open as the superuser. The password is made once,
at random, and kept in the server's own folder (`hapta.pgpass`, mode 0600, in the libpq password-file format);
the DSN names that file (`passfile=`), never the password, so that the DSN may travel (to --workers, to psql and
pg_dump) without it. Who can read the file: the gateway's user, and under a root gateway no worker (the folder is
pgserver's own user's, mode 0700, and a root gateway's workers have no capability to pass that); with workers of
the gateway's own user the server's files are theirs as much as the gateway's (docs/security.md says so).
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from ..isolation import keep_environ, scrubbed_environ
from ..settings import StartupError

log = logging.getLogger("hapta.embedded")

DATABASE = "hapta"
PASSFILE = "hapta.pgpass"   # in the server's folder; the libpq password-file format
HBA_MARKER = "# hapta: every connection needs the password"
HBA = f"""{HBA_MARKER} of role postgres, kept in {PASSFILE} beside this file (hapta/store/embedded.py)
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""
# What the server (pg_ctl, initdb) starts with: what they need, none of the gateway's settings (a process of the
# same user could read them in /proc/<pid>/environ for as long as the server runs).
SERVER_ENVIRON = keep_environ({"XDG_RUNTIME_DIR"})


def _share_bundled_postgres(package: Path) -> None:
    """Run as root, pgserver starts PostgreSQL as the user `pgserver` and opens its bin/ and lib/ folders to it.
    In the single binary everything is unpacked private to root (0700), share/ and the wheel's shared-library
    folder too, so open the whole unpacked PostgreSQL for reading (it is our own temporary copy)."""
    if not getattr(sys, "frozen", False) or os.geteuid() != 0:
        return
    for top in (package, package.parent / "pgserver.libs"):
        for folder, _dirs, files in os.walk(top):
            os.chmod(folder, os.stat(folder).st_mode | 0o055)   # group/other: read and traverse
            for name in files:
                path = os.path.join(folder, name)
                os.chmod(path, os.stat(path).st_mode | 0o044)


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded server; return a DSN for asyncpg (and libpq: psql, pg_dump)."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(Path("/tmp") / f"hapta-runtime-{os.getuid()}"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    import pgserver  # imported late: it is only needed on this path, and it is slow to import
    from pgserver._commands import POSTGRES_BIN_PATH

    _share_bundled_postgres(Path(pgserver.__file__).parent)
    pgdata = data_dir / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with scrubbed_environ(SERVER_ENVIRON):
        _stop_stale(pgdata.resolve())
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    uri = urlparse(server.get_uri())
    socket_dir = parse_qs(uri.query).get("host", [""])[0]
    passfile = pgdata.resolve() / PASSFILE
    with type(server)._lock:   # pgserver's own lock between processes: one of them sets the password
        _require_password(pgdata, passfile, socket_dir, POSTGRES_BIN_PATH / "psql")
    base = f"postgresql://postgres@/postgres?host={socket_dir}&passfile={passfile}"
    exists = _psql(POSTGRES_BIN_PATH / "psql", base, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
    if "1 row" not in exists:
        _psql(POSTGRES_BIN_PATH / "psql", base, f"CREATE DATABASE {DATABASE};")
    log.info("embedded PostgreSQL in %s", pgdata)
    return f"postgresql://postgres@/{DATABASE}?host={socket_dir}&passfile={passfile}"


def _stop_stale(pgdata: Path) -> None:
    """pgserver keeps the pids of the processes that use the server in `.handle_pids.json` and stops the server when
    the last of them leaves; a hapta that ended without leaving (SIGKILL, a crash, a closed terminal) stays listed,
    and with it the server ran on after every later stop. So: drop the dead from the list, and a server then used by
    no one is a stale one of ours: stop it, and this start begins afresh (its own stop will stop what it starts)."""
    import psutil
    from pgserver._commands import pg_ctl
    from pgserver.postgres_server import PostgresServer
    from pgserver.utils import PostmasterInfo
    handles = pgdata / ".handle_pids.json"
    with PostgresServer._lock:   # pgserver's own lock between processes, which guards this list
        try:
            listed = [int(pid) for pid in json.loads(handles.read_text())]
        except (OSError, ValueError, TypeError):
            return   # no server here yet, or no list pgserver would read either
        live = [pid for pid in listed if pid == os.getpid() or _running(psutil, pid)]   # ours: before an exec
        if live == listed:
            return
        handles.write_text(json.dumps(live))
        info = PostmasterInfo.read_from_pgdata(pgdata)
        if live or info is None or not info.is_running():
            return
        log.warning("stopping the embedded PostgreSQL in %s: it was left running by hapta process %s, which is gone",
                    pgdata, ", ".join(str(pid) for pid in listed))
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user="pgserver" if os.geteuid() == 0 else None,
                   timeout=60)
        except (subprocess.SubprocessError, OSError) as exc:
            raise StartupError(f"the embedded PostgreSQL in {pgdata} was left running and does not stop: {exc}") \
                from exc


def _running(psutil, pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:   # NoSuchProcess: gone
        return False


def _require_password(pgdata: Path, passfile: Path, socket_dir: str, psql: Path) -> None:
    """Once per server folder (a new one, or one from before passwords): give role postgres a random password,
    keep it in `passfile`, and make pg_hba.conf require it of every connection. The server trusts local
    connections until then: this runs before the gateway starts any worker."""
    hba = pgdata / "pg_hba.conf"
    required = HBA_MARKER in hba.read_text()
    if required and passfile.is_file():
        return
    if required:
        raise StartupError(f"the embedded PostgreSQL in {pgdata} requires a password, and its file {passfile} is "
                           f"gone: put it back (or, to let the gateway make a new one, put pgserver's own "
                           f"pg_hba.conf back: `local all all trust`)")
    password = secrets.token_urlsafe(32)
    descriptor = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        os.fchmod(descriptor, 0o600)
        file.write(f"*:*:*:postgres:{password}\n")
    trusted = f"postgresql://postgres@/postgres?host={socket_dir}"
    # the password travels on psql's standard input, never on a command line
    _psql(psql, trusted, f"ALTER ROLE postgres PASSWORD '{password}';")
    hba.write_text(HBA)   # in place: the file keeps its owner (pgserver's user, under root)
    _psql(psql, trusted, "SELECT pg_reload_conf();")
    log.info("the embedded PostgreSQL now requires a password (kept in %s)", passfile)


def _psql(psql: Path, dsn: str, command: str) -> str:
    environ = {name: value for name, value in os.environ.items() if SERVER_ENVIRON(name)}
    done = subprocess.run([str(psql), dsn], input=command, capture_output=True, text=True, timeout=60, env=environ)
    if done.returncode != 0:
        raise StartupError(f"the embedded PostgreSQL did not run {command.split()[0]}: "
                           f"{(done.stderr.strip().splitlines() or ['exit status %d' % done.returncode])[0]}")
    return done.stdout

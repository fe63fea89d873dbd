"""The embedded PostgreSQL used when no DATABASE_URL is set (pgserver: real PostgreSQL binaries from PyPI).

It lives in HAPTA_DATA_DIR/postgres, listens only on a Unix socket, and stops when the last process using it
exits. The gateway uses a database named `hapta` inside it.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

log = logging.getLogger("hapta.embedded")

DATABASE = "hapta"


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
    """Start (or join) the embedded server; return a DSN for asyncpg."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(Path("/tmp") / f"hapta-runtime-{os.getuid()}"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    import pgserver  # imported late: it is only needed on this path, and it is slow to import

    _share_bundled_postgres(Path(pgserver.__file__).parent)
    pgdata = data_dir / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE};")
    uri = urlparse(server.get_uri())
    socket_dir = parse_qs(uri.query).get("host", [""])[0]
    log.info("embedded PostgreSQL in %s", pgdata)
    return f"postgresql://postgres@/{DATABASE}?host={socket_dir}"

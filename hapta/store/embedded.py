"""The embedded PostgreSQL used when no DATABASE_URL is set (pgserver: real PostgreSQL binaries from PyPI).

It lives in HAPTA_DATA_DIR/postgres, listens only on a Unix socket, and stops when the last process using it
exits. The gateway uses a database named `hapta` inside it.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import parse_qs, urlparse

log = logging.getLogger("hapta.embedded")

DATABASE = "hapta"


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded server; return a DSN for asyncpg."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(Path("/tmp") / f"hapta-runtime-{os.getuid()}"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    import pgserver  # imported late: it is only needed on this path, and it is slow to import

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

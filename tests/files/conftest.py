"""Fixtures of the files tests: a private SeaweedFS (real S3, signatures checked), and the files test app served
by a real `hapta serve` on each backend: `files_gateway` is parametrized over local disk and S3."""
from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from hapta.client import Client
from hapta.store.files.s3 import S3Storage
from tests.conftest import PASSWORD, gateway_env
from tests.services import APP, GatewayProcess, SeaweedS3, create_database, drop_database

HERE = Path(__file__).parent
MIB = 1024 * 1024
CHUNK = 256 * 1024
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def png(size: int) -> bytes:
    """Bytes that are a PNG by their signature (all the gateway looks at), `size` long."""
    return (PNG + os.urandom(max(0, size - len(PNG))))[:size]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assemble_app(folder: Path, config: Path = HERE / "app" / "config.py") -> Path:
    """The demo app's migrations and rules, with this folder's extra migration and posts hooks, served with
    `config` (a file that defines `app`; the bench brings its own)."""
    for part in ("migrations", "rules"):
        (folder / part).mkdir(parents=True)
        own = {p.name: p for p in (HERE / "app" / part).iterdir() if p.suffix in (".py", ".sql")}
        demo = {p.name: p for p in (APP / part).iterdir() if p.suffix in (".py", ".sql")}
        for name, source in {**demo, **own}.items():
            (folder / part / name).symlink_to(source)
    # Not a link: the gateway takes the app folder from where config.py really is.
    (folder / "config.py").write_text(f"import runpy\napp = runpy.run_path({str(config)!r})['app']\n")
    return folder / "config.py"


@pytest.fixture(scope="session")
def seaweed():
    server = SeaweedS3().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def files_app(tmp_path_factory) -> Path:
    return assemble_app(tmp_path_factory.mktemp("files-app"))


@dataclass
class FilesGateway:
    backend: str
    process: GatewayProcess
    dsn: str
    data_dir: Path
    s3: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.process.url

    async def stored(self, record_id: str) -> list[str]:
        """The objects (and partial uploads) the backend holds for one record (keys are collection/field/id/...)."""
        return [key for key in await self.stored_all() if f"/{record_id}/" in key or f"+{record_id}+" in key]

    async def stored_all(self) -> list[str]:
        if self.backend == "local":
            root = self.data_dir / "files"
            return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        storage = S3Storage(self.s3["S3_ENDPOINT"], self.s3["S3_ACCESS_KEY"], self.s3["S3_SECRET_KEY"],
                            self.s3["S3_BUCKET"])
        try:
            return sorted(await storage.list_keys())
        finally:
            await storage.close()

    async def unclaimed(self, parked: bool = False) -> list[str]:
        """Keys of unclaimed objects; uploads made without a record, which wait for one (files.upload without id)
        until their own time is up, only with `parked` (another test's may be waiting)."""
        conn = await asyncpg.connect(self.dsn)
        try:
            where = "" if parked else " WHERE upload IS NULL"
            return [r["key"] for r in await conn.fetch(f"SELECT key FROM hapta.unclaimed_files{where}")]
        finally:
            await conn.close()

    async def settled(self, record_id: str, expected: int, timeout: float = 20) -> list[str]:
        """Wait (bounded) until the backend holds exactly `expected` objects of a record and nothing is unclaimed
        (but uploads parked for a record to come: another test's)."""
        deadline = time.monotonic() + timeout
        while True:
            stored, unclaimed = await self.stored(record_id), await self.unclaimed()
            if len(stored) == expected and not unclaimed:
                return stored
            assert time.monotonic() < deadline, f"storage holds {stored}, unclaimed {unclaimed}"
            await asyncio.sleep(0.1)


async def start_files_gateway(backend: str, pg_admin: str, config: Path, folder: Path, seaweed: SeaweedS3,
                              s3_endpoint: str | None = None) -> FilesGateway:
    dsn = await create_database(pg_admin)
    s3 = seaweed.env(f"hapta-{secrets.token_hex(4)}", s3_endpoint) if backend == "s3" else {}
    process = GatewayProcess(gateway_env(dsn, HAPTA_DATA_DIR=str(folder)), config=config,
                             drop=("S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_BUCKET"))
    process.env.update(s3)   # after the drop, which clears any S3_* of the environment running the tests
    await asyncio.to_thread(process.start)
    return FilesGateway(backend, process, dsn, folder, s3)


async def stop_files_gateway(gateway: FilesGateway, pg_admin: str) -> None:
    gateway.process.stop()
    await drop_database(pg_admin, gateway.dsn)
    log = gateway.process.log_text()
    assert "Traceback" not in log, log


@pytest_asyncio.fixture(scope="session", params=["local", "s3"])
async def files_gateway(request, pg_admin, files_app, seaweed, tmp_path_factory):
    gateway = await start_files_gateway(request.param, pg_admin, files_app,
                                        tmp_path_factory.mktemp(f"data-{request.param}"), seaweed)
    yield gateway
    await stop_files_gateway(gateway, pg_admin)


@pytest_asyncio.fixture
async def connect_files(files_gateway, open_client):
    """connect(**options) -> a Client of the files gateway, each from its own loopback address."""
    async def make(**options: Any) -> Client:
        return await open_client(files_gateway, **options)
    return make


@pytest_asyncio.fixture
async def author(connect_files):
    """author(**options) -> (client, user, post_id): a new user, signed in, with a new public post of their own."""
    async def make(public: bool = True, **options: Any):
        client = await connect_files(**options)
        name = "f" + secrets.token_hex(5)
        session = await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD,
                                                      "username": name})
        user = session["user"]
        post = await client.call("records.create", {"collection": "posts", "data": {
            "author": user["id"], "text": "with files", "public": public}})
        return client, user, post["id"]
    return make

"""`hapta backup` and `hapta restore`, run as a user runs them: a real gateway fills a database and a data directory,
the backup goes to a file, comes back into a new empty database and data directory, and a gateway started there
serves the same sessions, posts and file bytes. A target that is not empty and an archive that is corrupt are
refused in one line before anything is written."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from hapta import __version__
from hapta.client import Client
from tests.conftest import PASSWORD, gateway_env
from tests.services import APP, GatewayProcess, SeaweedS3, create_database, drop_database

S3 = ("S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_BUCKET")
PHOTO = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(300_000)   # a PNG by its signature, which is all it checks


def hapta(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`python -m hapta ARGS --config tests/app/config.py` with `env` (S3 only where `env` sets it: local files)."""
    full = {**{key: value for key, value in os.environ.items() if key not in S3}, **env}
    return subprocess.run([sys.executable, "-m", "hapta", *args, "--config", str(APP / "config.py")],
                          env=full, capture_output=True, text=True, timeout=180)


def one_line_refusal(done: subprocess.CompletedProcess, command: str) -> str:
    assert done.returncode != 0, done.stdout
    lines = [line for line in done.stderr.splitlines() if line.startswith("hapta ")]
    assert len(lines) == 1 and lines[0].startswith(f"hapta {command}: "), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return lines[0]


@dataclass
class Original:
    env: dict[str, str]
    data_dir: Path
    archive: Path
    backup_output: str
    session: dict
    posts: list[str]


async def _tables(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname IN ('public', 'hapta')")
    finally:
        await conn.close()


def _files_in(data_dir: Path) -> list[Path]:
    root = data_dir / "files"
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


@pytest_asyncio.fixture(scope="module")
async def original(pg_admin, tmp_path_factory):
    """A gateway's database and data directory with a user, a session, two posts and a photo, then its backup."""
    dsn = await create_database(pg_admin)
    data_dir = tmp_path_factory.mktemp("original-data")
    env = gateway_env(dsn, HAPTA_DATA_DIR=str(data_dir))
    process = await asyncio.to_thread(GatewayProcess(env, drop=S3).start)
    try:
        async with await Client.connect(process.url) as client:
            name = "b" + secrets.token_hex(5)
            session = await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD,
                                                          "username": name})
            posts = [(await client.call("records.create", {"collection": "posts", "data": {
                "author": session["user"]["id"], "text": text, "public": True}}))["id"]
                for text in ("before the backup", "with a photo")]
            await client.upload("posts", posts[1], "media", "photo.png", PHOTO, type="image/png")
    finally:
        process.stop()
    assert "Traceback" not in process.log_text(), process.log_text()
    archive = tmp_path_factory.mktemp("backups") / "app.tar"
    done = await asyncio.to_thread(hapta, env, "backup", str(archive))
    assert done.returncode == 0, done.stderr
    yield Original(env, data_dir, archive, done.stdout, session, posts)
    await drop_database(pg_admin, dsn)


@pytest_asyncio.fixture
async def empty_target(pg_admin, tmp_path):
    """A new empty database and a new data directory (not created yet: restore makes it)."""
    dsn = await create_database(pg_admin)
    yield dsn, tmp_path / "restored-data"
    await drop_database(pg_admin, dsn)


async def test_a_restored_backup_serves_the_same_sessions_posts_and_files(original, empty_target):
    dsn, data_dir = empty_target
    env = gateway_env(dsn, HAPTA_DATA_DIR=str(data_dir))
    done = await asyncio.to_thread(hapta, env, "restore", str(original.archive))
    assert done.returncode == 0, done.stderr
    assert "restored" in done.stdout and "users 1" in done.stdout and "posts 2" in done.stdout
    assert "1 file (" in done.stdout
    process = await asyncio.to_thread(GatewayProcess(env, drop=S3).start)
    try:
        async with await Client.connect(process.url) as client:
            # The session survived: its refresh token, issued before the backup, still rolls it.
            rolled = await client.call("auth.refresh", {"refresh_token": original.session["refresh_token"]})
            assert rolled["user"]["id"] == original.session["user"]["id"]
            page = await client.call("records.list", {"collection": "posts", "sort": "created"})
            assert [post["id"] for post in page["items"]] == original.posts
            assert [post["text"] for post in page["items"]] == ["before the backup", "with a photo"]
            back = await client.download_bytes("posts", original.posts[1], "media", "photo.png")
            assert back == PHOTO
    finally:
        process.stop()
    assert "Traceback" not in process.log_text(), process.log_text()


def test_the_manifest_counts_what_the_backup_holds(original):
    assert original.backup_output.startswith(f"wrote {original.archive}: ")
    with tarfile.open(original.archive) as tar:
        assert sorted(tar.getnames()) == sorted(["database.dump", "manifest.json",
                                                 *(f"files/{p.relative_to(original.data_dir / 'files').as_posix()}"
                                                   for p in _files_in(original.data_dir))])
        manifest = json.loads(tar.extractfile("manifest.json").read())
        dump = tar.extractfile("database.dump").read()
    assert manifest["format"] == 1 and manifest["created"].endswith("Z") and manifest["hapta_version"] == __version__
    assert manifest["database"]["rows"] == {"comments": 0, "likes": 0, "messages": 0, "posts": 2, "users": 1}
    assert manifest["database"]["sha256"] == hashlib.sha256(dump).hexdigest()
    assert manifest["database"]["server_version"][:2].isdigit()
    names = [migration["name"] for migration in manifest["database"]["migrations"]]
    assert names[0] == "hapta/0001_core.sql" and "app/0001_social.sql" in names
    files = manifest["files"]
    assert (files["storage"], files["included"], files["count"], files["bytes"]) == ("local", True, 1, len(PHOTO))
    assert list(files["sha256"].values()) == [hashlib.sha256(PHOTO).hexdigest()]
    assert dump.startswith(b"PGDMP")   # pg_dump's custom format


async def test_restore_refuses_a_database_that_is_not_empty(original):
    refused = one_line_refusal(await asyncio.to_thread(hapta, original.env, "restore", str(original.archive)),
                               "restore")
    assert "not empty" in refused and "--force" in refused


async def test_restore_refuses_a_data_directory_with_files(original, empty_target):
    dsn, data_dir = empty_target
    stray = data_dir / "files" / "posts" / "media" / "someone" / ("0" * 32)
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"already here")
    refused = one_line_refusal(await asyncio.to_thread(
        hapta, gateway_env(dsn, HAPTA_DATA_DIR=str(data_dir)), "restore", str(original.archive)), "restore")
    assert "not empty" in refused and "1 file" in refused
    assert await _tables(dsn) == 0 and _files_in(data_dir) == [stray]


async def test_force_replaces_what_the_target_holds(original, empty_target):
    dsn, data_dir = empty_target
    env = gateway_env(dsn, HAPTA_DATA_DIR=str(data_dir))
    first = await asyncio.to_thread(hapta, env, "restore", str(original.archive))
    assert first.returncode == 0, first.stderr
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE leftover (id int)")
    finally:
        await conn.close()
    again = await asyncio.to_thread(hapta, env, "restore", "--force", str(original.archive))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("replaced (--force): ") and "posts 2" in again.stdout
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT to_regclass('leftover')") is None
        assert await conn.fetchval("SELECT count(*) FROM posts") == 2
    finally:
        await conn.close()
    assert len(_files_in(data_dir)) == 1


async def test_a_corrupt_archive_is_refused_before_anything_is_written(original, empty_target, tmp_path):
    dsn, data_dir = empty_target
    corrupt = tmp_path / "corrupt.tar"
    data = bytearray(original.archive.read_bytes())
    with tarfile.open(original.archive) as tar:
        member = tar.getmember("database.dump")
    data[member.offset_data + member.size // 2] ^= 0x01   # one bit, in the middle of the dump
    corrupt.write_bytes(bytes(data))
    refused = one_line_refusal(await asyncio.to_thread(
        hapta, gateway_env(dsn, HAPTA_DATA_DIR=str(data_dir)), "restore", str(corrupt)), "restore")
    assert "corrupt" in refused and "database.dump" in refused
    assert await _tables(dsn) == 0
    assert _files_in(data_dir) == [] and not any(data_dir.iterdir())   # the staging folder is gone too


async def test_an_unreachable_database_is_one_line(tmp_path):
    env = gateway_env("postgresql://postgres:not-shown@127.0.0.1:1/nowhere", HAPTA_DATA_DIR=str(tmp_path))
    done = await asyncio.to_thread(hapta, env, "backup", str(tmp_path / "never.tar"))
    refused = one_line_refusal(done, "backup")
    assert refused == "hapta backup: cannot reach the database at 127.0.0.1:1 (connection refused)"
    assert "not-shown" not in done.stderr and not (tmp_path / "never.tar").exists()


@pytest.fixture(scope="module")
def seaweed():
    server = SeaweedS3().start()
    yield server
    server.stop()


async def test_an_s3_app_backs_up_into_its_bucket_and_restores_from_it(seaweed, pg_admin, tmp_path, empty_target):
    """With S3 the files stay in the bucket (the manifest says so); the archive itself goes to s3://bucket/key."""
    bucket = f"hapta-{secrets.token_hex(4)}"
    source = await create_database(pg_admin)
    try:
        env = {**gateway_env(source, HAPTA_DATA_DIR=str(tmp_path / "data")), **seaweed.env(bucket)}
        process = await asyncio.to_thread(GatewayProcess(env).start)   # it makes the bucket
        try:
            async with await Client.connect(process.url) as client:
                session = await client.call("auth.register", {"email": f"s{secrets.token_hex(4)}@example.com",
                                                              "password": PASSWORD})
                post = await client.call("records.create", {"collection": "posts", "data": {
                    "author": session["user"]["id"], "text": "in S3", "public": True}})
                await client.upload("posts", post["id"], "media", "photo.png", PHOTO, type="image/png")
        finally:
            process.stop()
        url = f"s3://{bucket}/backups/app.tar"
        done = await asyncio.to_thread(hapta, env, "backup", url)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"wrote {url}: ") and "files stay in the S3 bucket" in done.stdout
    finally:
        await drop_database(pg_admin, source)
    dsn, data_dir = empty_target
    env = {**gateway_env(dsn, HAPTA_DATA_DIR=str(data_dir)), **seaweed.env(bucket)}
    done = await asyncio.to_thread(hapta, env, "restore", url)
    assert done.returncode == 0, done.stderr
    assert "posts 1" in done.stdout and "files stay in the S3 bucket" in done.stdout
    process = await asyncio.to_thread(GatewayProcess(env).start)
    try:
        async with await Client.connect(process.url) as client:
            await client.call("auth.refresh", {"refresh_token": session["refresh_token"]})
            assert await client.download_bytes("posts", post["id"], "media", "photo.png") == PHOTO
    finally:
        process.stop()


async def test_s3_without_the_s3_settings_is_one_line(tmp_path, original):
    refused = one_line_refusal(await asyncio.to_thread(hapta, original.env, "backup", "s3://bucket/app.tar"), "backup")
    assert "S3_ENDPOINT is not set" in refused

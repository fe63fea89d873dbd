"""What code inside a worker (a compromised dependency, an injection bug in a function) can get of the gateway
(issue 26, item 11). Before: a function read /proc/<gateway>/environ (the JWT secret, the admin key, SMTP_URL and
every other function's secrets), rule workers inherited SMTP_URL, a function could declare secrets=("SMTP_URL",),
the embedded PostgreSQL let any local process in as its superuser without a password, and a process a function
started outlived its worker.

What holds now (docs/security.md, "Workers"), each checked here through a real gateway and its real workers:
- the gateway's processes (and the --workers supervisor) are not dumpable: their environment and memory are
  refused to a worker, whatever user runs them (a root gateway's workers have no capability to bypass it);
- a worker's environment is an allowlist; the gateway's own settings are refused as declared secrets;
- the embedded PostgreSQL takes no connection without its password, which lives where a root gateway's workers
  cannot read it (with workers of the gateway's own user the server's files are theirs too: said in the docs);
- a worker leads its process group and the group ends with it;
- HAPTA_WORKER_USER runs workers as another user, who reads none of the gateway's files.
"""
from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from hapta.client import Client
from tests.conftest import ADMIN_KEY, ANON_KEY, PASSWORD, gateway_env
from tests.services import GatewayProcess, next_loopback, write_app

ROOT_USER = os.geteuid() == 0
SMTP_URL = "smtp://mailer:hunter2-" + secrets.token_hex(4) + "@127.0.0.1:1"

FUNCTIONS = '''
import os, subprocess, sys, time
from hapta.functions import call

@call(allow="")
def peek(ctx, paths):
    """What a compromised dependency would try: read each path, or say why it could not."""
    seen = {}
    for what, path in paths.items():
        try:
            with open(path, "rb") as file:
                seen[what] = file.read(1 << 16).decode("latin-1")
        except OSError as error:
            seen[what] = f"refused: {type(error).__name__}"
    return seen

@call(allow="")
def family(ctx, args):
    """This worker's parent (the gateway process) and grandparent (the supervisor under --workers)."""
    parent = os.getppid()
    with open(f"/proc/{parent}/stat") as file:
        grandparent = int(file.read().rsplit(")", 1)[1].split()[1])
    return {"parent": parent, "grandparent": grandparent, "uid": os.getuid(), "group_leader": os.getpgrp() == os.getpid()}

@call(allow="", timeout=1)
def leave_a_process(ctx, args):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    with open(args, "w") as file:
        file.write(str(child.pid))
    time.sleep(30)

@call(allow="")
async def connect(ctx, dsn):
    import asyncpg
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except Exception as error:
        return f"refused: {type(error).__name__}"
    role = await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    await conn.close()
    return f"connected, superuser: {role}"
'''

GREEDY = '''
from hapta.functions import call

@call(allow="", secrets=("SMTP_URL",))
def greedy(ctx, args):
    return ctx.secrets
'''

# the test app's posts, with a hook that shows what its worker was started with
POSTS_HOOK = '''
def before_create(ctx, data):
    if data.get("text") == "environ":
        with open("/proc/self/environ", "rb") as file:   # what the exec passed, not only os.environ
            data["text"] = file.read().replace(b"\\0", b"\\n").decode()
    return data
'''


def app_folder(root: Path, *, functions: str = FUNCTIONS, extra: str = "") -> Path:
    folder = root / "app"
    root.mkdir(parents=True, exist_ok=True)
    config = write_app(folder, f"""
        import dataclasses, runpy
        app = dataclasses.replace(runpy.run_path(APP + "/config.py")["app"], function_workers=1, rule_workers=1
                                  {extra})
    """)
    (folder / "rules").unlink()   # a hook of its own, in place of the demo's
    (folder / "rules").mkdir()
    (folder / "rules" / "posts.py").write_text(textwrap.dedent(POSTS_HOOK))
    (folder / "functions").mkdir()
    (folder / "functions" / "probe.py").write_text(textwrap.dedent(functions))
    return config


@pytest.fixture(scope="module")
def supervised(tmp_path_factory, database):
    """The test app under `--workers 2` (a supervisor and two gateway processes), with SMTP_URL and an app secret
    in its environment."""
    config = app_folder(tmp_path_factory.mktemp("isolated"))
    env = gateway_env(database, SMTP_URL=SMTP_URL, PAYMENT_API_KEY="pk-live-" + secrets.token_hex(8))
    process = GatewayProcess(env, config=config, workers=2).start()
    yield process
    process.stop()


async def signed_in(process: GatewayProcess) -> Client:
    client = await Client.connect(process.url, local_addr=(next_loopback(), 0))
    await client.call("auth.register", {"email": f"i{secrets.token_hex(5)}@example.com", "password": PASSWORD})
    return client


async def call(client: Client, name: str, args=None):
    return await client.call("functions.call", {"name": name, "args": args})


async def test_a_function_reads_neither_the_gateways_nor_the_supervisors_environment_or_memory(supervised):
    async with await signed_in(supervised) as client:
        family = await call(client, "family")
        assert family["group_leader"]
        seen = await call(client, "peek", {
            "gateway environ": f"/proc/{family['parent']}/environ", "gateway memory": f"/proc/{family['parent']}/mem",
            "supervisor environ": f"/proc/{family['grandparent']}/environ", "own status": "/proc/self/status"})
    for what in ("gateway environ", "gateway memory", "supervisor environ"):
        assert seen[what].startswith("refused: PermissionError"), (what, seen[what][:200])
    status = dict(line.split(":\t", 1) for line in seen["own status"].splitlines() if ":\t" in line)
    if ROOT_USER:   # a root gateway's worker is uid 0 without a single capability (it could bypass the above)
        assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == int(status["CapBnd"], 16) == 0, status
        assert status["NoNewPrivs"].strip() == "1"
    assert all(value not in str(seen) for value in (SMTP_URL, supervised.env["HAPTA_JWT_SECRET"], ADMIN_KEY))


async def test_rule_workers_start_with_the_allowlist_and_nothing_else(supervised):
    async with await signed_in(supervised) as client:
        me = (await client.call("auth.me"))["user"]["id"]
        post = await client.call("records.create", {"collection": "posts", "data": {
            "author": me, "text": "environ", "public": False}})
    names = {line.split("=", 1)[0] for line in post["text"].splitlines()}
    assert "PATH" in names and "SMTP_URL" not in names and "PAYMENT_API_KEY" not in names, names
    assert SMTP_URL not in post["text"] and supervised.env["PAYMENT_API_KEY"] not in post["text"]


async def test_a_process_a_function_started_ends_with_its_worker(supervised, tmp_path):
    pidfile = tmp_path / "child.pid"
    pidfile.touch(mode=0o666)
    pidfile.chmod(0o666)   # whoever the worker runs as writes it
    async with await signed_in(supervised) as client:
        with pytest.raises(Exception) as late:
            await call(client, "leave_a_process", str(pidfile))   # TIMEOUT: its worker is killed
        assert getattr(late.value, "code", None) == "TIMEOUT"
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not alive(child), f"the function's process {child} outlived its worker"


def alive(pid: int) -> bool:
    """Running (a zombie waiting for whoever reaps orphans here is dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def refused_start(config: Path, env: dict[str, str]) -> str:
    with pytest.raises(RuntimeError) as refused:
        GatewayProcess(env, config=config).start()
    return str(refused.value)


def test_the_gateways_own_settings_are_refused_as_declared_secrets(database, tmp_path):
    config = app_folder(tmp_path / "greedy", functions=GREEDY)
    assert "greedy may not read SMTP_URL" in refused_start(config, gateway_env(database, SMTP_URL=SMTP_URL))
    config = app_folder(tmp_path / "hooks", extra=', rule_environ=("SMTP_URL",)')
    assert "App.hooks.environ: SMTP_URL is the gateway's own" in refused_start(config, gateway_env(database))


async def test_the_embedded_database_takes_no_connection_without_its_password(tmp_path, embedded_data):
    data = embedded_data
    config = app_folder(tmp_path)
    env = {key: value for key, value in gateway_env("").items() if key != "DATABASE_URL"}
    process = GatewayProcess({**env, "HAPTA_DATA_DIR": str(data)}, config=config, drop=("DATABASE_URL",))
    await asyncio.to_thread(process.start, 120)
    try:
        pgdata = data / "postgres"
        socket_dir = (pgdata / "postmaster.pid").read_text().splitlines()[4]
        async with await signed_in(process) as client:
            # what the gateway used before: the superuser over the socket, no password
            assert (await call(client, "connect", f"postgresql://postgres@/hapta?host={socket_dir}")).startswith(
                "refused: ")
            seen = await call(client, "peek", {"password": str(pgdata / "hapta.pgpass"),
                                               "data": str(pgdata / "PG_VERSION")})
        if ROOT_USER:   # the server's folder is pgserver's own user's: a root gateway's workers cannot enter it
            assert seen["password"].startswith("refused: ") and seen["data"].startswith("refused: "), seen
        # (a worker of the gateway's own user reads what that user reads, the server's files included: the docs
        # say so, and HAPTA_WORKER_USER is the answer)
    finally:
        assert process.stop() == 0
    assert "Traceback" not in process.log_text(), process.log_text()


# ---- HAPTA_WORKER_USER --------------------------------------------------------------------------------------

needs_root = pytest.mark.skipif(not ROOT_USER, reason="only root can start workers as another user")


@needs_root
def test_a_worker_of_another_user_reads_nothing_of_the_gateway(tmp_path):
    """hapta.isolation.confine, as a worker runs it first thing: in a real process that then tries what a
    compromised dependency would (all it needs imported before, as a worker's own imports are)."""
    secret_file = tmp_path / ".env"
    secret_file.write_text("HAPTA_JWT_SECRET=" + "s" * 40 + "\n")
    secret_file.chmod(0o600)
    probe = textwrap.dedent(f"""
        import os, sys
        from hapta.isolation import WorkerUser, confine
        confine(WorkerUser.find("nobody"))
        for path in ({str(secret_file)!r}, f"/proc/{os.getpid()}/environ", f"/proc/{{os.getppid()}}/environ"):
            try:
                open(path, "rb").read()
                print("read", path)
            except PermissionError:
                print("refused", path)
        print("uid", os.getuid(), "group leader", os.getpgrp() == os.getpid())
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SOME_SECRET": "x"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"refused {secret_file}" and lines[2].startswith("refused /proc/"), lines
    assert lines[3] == f"uid {pwd.getpwnam('nobody').pw_uid} group leader True"


@needs_root
def test_a_worker_user_who_could_read_the_env_file_stops_the_start(database, tmp_path):
    config = app_folder(tmp_path)
    (config.parent / ".env").write_text("SENDGRID_API_KEY=sg-123\n")
    (config.parent / ".env").chmod(0o644)
    message = refused_start(config, gateway_env(database, HAPTA_WORKER_USER="nobody"))
    assert f"{config.parent / '.env'} is readable by HAPTA_WORKER_USER nobody" in message and "chmod 600" in message


def _python_usable_by(user: str) -> bool:
    """Whether `user` can run this Python: every folder on the way to its standard library traversable by others."""
    for top in {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(__file__).resolve().parents[2]}:
        for folder in (top, *top.parents):
            if not folder.stat().st_mode & 0o001:
                return False
    return user == "nobody"


@needs_root
@pytest.mark.skipif(not _python_usable_by("nobody"), reason="the Python installation running the tests is not "
                    "readable by the user nobody here (e.g. it lives under /root), so a worker as nobody cannot run")
async def test_workers_run_as_the_worker_user_through_a_real_gateway(database):
    root = Path(tempfile.mkdtemp(prefix="hapta-worker-user-"))
    try:
        root.chmod(0o755)   # the worker user reads the app's functions/ and rules/, not its .env
        config = app_folder(root)
        (config.parent / ".env").write_text("SENDGRID_API_KEY=sg-123\n")
        (config.parent / ".env").chmod(0o600)
        process = GatewayProcess(gateway_env(database, HAPTA_WORKER_USER="nobody",
                                             HAPTA_DATA_DIR=str(root / "data")), config=config).start()
        try:
            async with await signed_in(process) as client:
                family = await call(client, "family")
                seen = await call(client, "peek", {"env": str(config.parent / ".env"),
                                                   "environ": f"/proc/{family['parent']}/environ"})
        finally:
            process.stop()
        assert family["uid"] == pwd.getpwnam("nobody").pw_uid
        assert seen == {"env": "refused: PermissionError", "environ": "refused: PermissionError"}
    finally:
        shutil.rmtree(root, ignore_errors=True)

"""The pure parts of the hooks' machinery (hapta.workers, hapta.hooks.child), without a gateway: framing, messages,
secrets, the loader, --reload's snapshot, and one worker's call handling over a socket pair."""
from __future__ import annotations

import ipaddress
import os
import socket
from datetime import datetime, timezone
from multiprocessing.connection import Connection

import msgspec
import pytest

from hapta.hooks.child import HookProgram, load
from hapta.isolation import is_gateway_own, keep_environ, scrubbed_environ
from hapta.workers.child import Runner
from hapta.workers.loading import LoadError, describe
from hapta.workers.messages import (MAX_FRAME, Denied, FrameError, FrameReader, Invoke, LoadFailed, Raised, Ready,
                                    Returned, Sql, SqlResult, Who, decode_in_gateway, decode_in_worker,
                                    encode_for_gateway, encode_for_worker, frame)
from hapta.workers.reload import snapshot

WHO = Who("u1", "user", "records.create", "posts", "127.0.0.1")


# ---- framing ------------------------------------------------------------------------------------------------

def test_frames_split_and_joined_anyhow_come_out_whole():
    payloads = [b"", b"a", b"x" * 70_000, b"last"]
    stream = b"".join(frame(p) for p in payloads)
    for step in (1, 3, 4096, len(stream)):
        reader, out = FrameReader(), []
        for i in range(0, len(stream), step):
            out += reader.feed(stream[i:i + step])
        assert out == payloads


@pytest.mark.parametrize("length", [-1, MAX_FRAME + 1])
def test_a_bad_frame_length_is_refused(length):
    with pytest.raises(FrameError):
        FrameReader().feed(length.to_bytes(4, "big", signed=True) + b"xx")


def test_the_framing_is_multiprocessing_connections():
    """The worker speaks through multiprocessing.Connection; the gateway parses the same bytes itself."""
    ours, theirs = socket.socketpair()
    worker_end = Connection(theirs.detach())
    try:
        worker_end.send_bytes(b"from the worker")
        assert FrameReader().feed(ours.recv(1024)) == [b"from the worker"]
        ours.sendall(frame(b"from the gateway"))
        assert worker_end.recv_bytes() == b"from the gateway"
    finally:
        ours.close()
        worker_end.close()


# ---- messages -----------------------------------------------------------------------------------------------

def test_every_message_survives_the_trip():
    when = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
    for message in (Ready({"posts": ["before_create"]}), LoadFailed("rules/x.py:1: SyntaxError", "tb"),
                    Sql(7, "SELECT $1", [1, "a", None, when]), Returned(7, {"text": "hi", "at": when}),
                    Denied(7, "no"), Raised(7, "Traceback ...")):
        assert decode_in_gateway(encode_for_gateway(message)) == message
    for message in (Invoke(8, "posts", "before_create", WHO, [{"text": "hi", "at": when}]),
                    SqlResult(8, rows=[{"n": 1}]), SqlResult(8, error="boom", sqlstate="42601")):
        assert decode_in_worker(encode_for_worker(message)) == message


def test_each_side_refuses_the_others_messages():
    with pytest.raises(msgspec.ValidationError):
        decode_in_worker(encode_for_gateway(Returned(1, None)))
    with pytest.raises(msgspec.ValidationError):
        decode_in_gateway(encode_for_worker(SqlResult(1, rows=[])))


def test_database_values_without_a_msgpack_type_reach_hooks_as_text():
    sent = SqlResult(1, rows=[{"addr": ipaddress.ip_address("10.0.0.1")}])
    assert decode_in_worker(encode_for_worker(sent)).rows == [{"addr": "10.0.0.1"}]


# ---- secrets ------------------------------------------------------------------------------------------------

def test_which_names_are_the_gateways_own_and_what_a_worker_keeps():
    for name in ("HAPTA_JWT_SECRET", "HAPTA_ADMIN_KEY", "HAPTA_ANON_KEY", "HAPTA_JWT_RETIRED_SECRETS",
                 "HAPTA_DATA_DIR", "HAPTA_WORKER_USER", "DATABASE_URL", "DATABASE_REPLICA_URLS", "REDIS_URL",
                 "SMTP_URL", "S3_SECRET_KEY", "S3_ENDPOINT", "PGPASSWORD", "AWS_SECRET_ACCESS_KEY"):
        assert is_gateway_own(name), name
    for name in ("PATH", "PAYMENT_API_KEY", "SENDGRID_API_KEY"):
        assert not is_gateway_own(name), name
    keep = keep_environ()   # an allowlist: a name the gateway does not know is not a worker's either
    assert all(keep(name) for name in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "HAPTA_ENV"))
    assert not any(keep(name) for name in ("SMTP_URL", "SENDGRID_API_KEY", "GITHUB_CLIENT_SECRET", "HAPTA_DATA_DIR"))
    chosen = keep_environ(("SENDGRID_API_KEY", "SMTP_URL"))   # App.rule_environ adds names, never the gateway's own
    assert chosen("SENDGRID_API_KEY") and not chosen("SMTP_URL")


def test_secrets_leave_the_environment_only_while_a_worker_starts(monkeypatch):
    monkeypatch.setenv("HAPTA_JWT_SECRET", "s" * 40)
    monkeypatch.setenv("SMTP_URL", "smtp://user:password@mail.example.com")
    with scrubbed_environ(keep_environ()):
        assert "HAPTA_JWT_SECRET" not in os.environ and "SMTP_URL" not in os.environ
        assert "PATH" in os.environ
    assert os.environ["HAPTA_JWT_SECRET"] == "s" * 40 and os.environ["SMTP_URL"].startswith("smtp://")


# ---- the loader ---------------------------------------------------------------------------------------------

def write(folder, name, text):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)


def test_the_loader_finds_hooks_by_name(tmp_path):
    rules = tmp_path / "rules"
    write(rules, "posts.py", "def before_create(ctx, data): return data\nasync def after_delete(ctx, r): pass\n"
                             "def helper(): pass\nbefore_update = 'not callable'\n")
    write(rules, "_shared.py", "raise RuntimeError('helpers are not hook modules')\n")
    write(rules, "likes.py", "X = 1\n")
    table = load(rules, {"posts", "likes"})
    assert {c: sorted(h) for c, h in table.items()} == {"posts": ["after_delete", "before_create"]}
    assert load(tmp_path / "missing", {"posts"}) == {}


def test_a_module_for_no_collection_is_refused(tmp_path):
    write(tmp_path / "rules", "postz.py", "")
    with pytest.raises(LoadError, match="rules/postz.py names no collection"):
        load(tmp_path / "rules", {"posts"})


@pytest.mark.parametrize("text, said", [
    ("x = 1\ndef before_create(ctx, data:\n", "rules/posts.py:2: SyntaxError:"),
    ("x = 1\ny = 1 / 0\n", "rules/posts.py:2: ZeroDivisionError: division by zero"),
])
def test_a_module_that_does_not_import_is_described_in_one_line(tmp_path, text, said):
    write(tmp_path / "rules", "posts.py", text)
    with pytest.raises(Exception) as failed:
        load(tmp_path / "rules", {"posts"})
    assert describe(failed.value, tmp_path / "rules").startswith(said)


# ---- --reload's snapshot ------------------------------------------------------------------------------------

def test_the_snapshot_sees_edits_new_files_and_removals_of_python_files_only(tmp_path):
    rules = tmp_path / "rules"
    write(rules, "posts.py", "a = 1\n")
    first = snapshot(rules)
    write(rules, "notes.txt", "not python")
    assert snapshot(rules) == first
    os.utime(rules / "posts.py", ns=(1, 1))
    assert snapshot(rules) != first
    second = snapshot(rules)
    write(rules / "sub", "helper.py", "")
    assert snapshot(rules) != second
    (rules / "sub" / "helper.py").unlink()
    assert snapshot(rules) == second
    assert snapshot(tmp_path / "missing") == {}


# ---- one worker's calls, over a socket pair (no process) --------------------------------------------------------

def answer(hooks, name, *args, sql_rows=None):
    """Run one Invoke through a worker's Runner; answer its Sql (if any) with `sql_rows`."""
    ours, theirs = socket.socketpair()
    conn = Connection(theirs.detach())
    if sql_rows is not None:   # the reply is waiting before the hook asks: the Runner reads it when it does
        ours.sendall(frame(encode_for_worker(SqlResult(1, rows=sql_rows))))
    try:
        return decode_in_gateway(Runner(conn, HookProgram({"posts": hooks})).run(Invoke(1, "posts", name, WHO,
                                                                                         list(args))))
    finally:
        ours.close()
        conn.close()


def test_a_worker_reports_each_outcome_under_the_calls_id():
    from hapta.rules import Deny

    def edit(ctx, data):
        return {**data, "by": ctx.user_id}

    async def edit_async(ctx, data):
        return {**data, "rows": await ctx.sql("SELECT 1")}

    def deny(ctx, data):
        raise Deny("not today")

    def buggy(ctx, data):
        return data["missing"]

    def odd(ctx, data):
        return object()

    hooks = {"edit": edit, "edit_async": edit_async, "deny": deny, "buggy": buggy, "odd": odd}
    assert answer(hooks, "edit", {"a": 1}) == Returned(1, {"a": 1, "by": "u1"})
    assert answer(hooks, "edit_async", {"a": 1}, sql_rows=[{"n": 1}]) == Returned(1, {"a": 1, "rows": [{"n": 1}]})
    assert answer(hooks, "deny", {}) == Denied(1, "not today")
    raised = answer(hooks, "buggy", {})
    assert isinstance(raised, Raised) and raised.call == 1
    assert "return data[\"missing\"]" in raised.traceback and raised.traceback.endswith("KeyError: 'missing'\n")
    assert "hapta/rules/worker.py" not in raised.traceback   # the app's frames, not ours
    assert "hapta/workers/child.py" not in raised.traceback and "hapta/hooks/child.py" not in raised.traceback
    odd_value = answer(hooks, "odd", {})
    assert isinstance(odd_value, Raised) and "cannot be sent back" in odd_value.traceback


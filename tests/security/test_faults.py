"""Upstream faults (issue 11, items 10-12): every request gets exactly one reply within a bound, whatever the
database or Redis does, and a write's reply says what is known of it.

- A normal PostgreSQL restart (`pg_ctl -m fast`) costs UNAVAILABLE with retry_after, never INTERNAL.
- A write whose COMMIT succeeded answers ok, even when its connection dies right after; one whose COMMIT got no
  answer says the outcome is unknown (so that a client does not retry a create blindly).
- A frozen PostgreSQL (SIGSTOP) or Redis costs TIMEOUT or UNAVAILABLE within the request's deadline.
- Writes combined into one statement (records/combine.py) through restarts and a freeze: each done once or not at
  all, as its reply says, and heard once on resume.
"""
from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter

import asyncpg
import pytest

from hapta.client import HaptaError
from hapta.live import MAX_REPLAY
from tests.conftest import ADMIN_KEY, gateway_env
from tests.live.realtime.helpers import change_of, events_until
from tests.security.conftest import register
from tests.services import GatewayProcess, PrivatePostgres, RedisServer, cuttable_database, write_app

DEADLINE = 3.0   # the test app's connections.request_timeout

QUICK = f"""
    import dataclasses, runpy
    from hapta.config import ConnectionBounds, DatabaseBounds, Limit
    demo = runpy.run_path(APP + "/config.py")["app"]
    app = dataclasses.replace(demo, connections=ConnectionBounds(request_timeout={DEADLINE}),
                              database=DatabaseBounds(statement_timeout=1.0, acquire_timeout=1.0, lock_timeout=1.0),
                              limits={{"records.create": Limit(1000, per=1)}})
"""


@pytest.fixture
def private_pg():
    server = PrivatePostgres().start()
    yield server
    server.remove()


def quick_gateway(tmp_path_factory, dsn: str, **env: str) -> GatewayProcess:
    return GatewayProcess(gateway_env(dsn, **env), config=write_app(tmp_path_factory.mktemp("quick"), QUICK))


def clean(process: GatewayProcess) -> None:
    log = process.log_text()
    assert "Traceback" not in log and "never retrieved" not in log, log


async def traffic(client, author: str, known: str, codes: list[str], stop: asyncio.Event) -> None:
    """Batches of reads that reach PostgreSQL, cached reads (which first wait for the change feed's barrier) and a
    write, pipelined, each reply's code noted, until `stop`."""
    n = 0
    while not stop.is_set():
        n += 1
        calls = [("records.list", {"collection": "posts", "per_page": 1, "filter": f'text = "t{n}x{i}"'})
                 for i in range(4)]
        calls += [("records.get", {"collection": "posts", "id": known})] * 4
        calls += [("records.create", {"collection": "posts", "data": {"author": author, "text": f"w{n}"}})]
        try:
            replies = await client.batch(calls)
        except ConnectionError:
            codes.append("CLOSED")
            return
        for reply in replies:
            if isinstance(reply, HaptaError):
                codes.append(reply.code)
                assert reply.code not in ("UNAVAILABLE", "TIMEOUT", "RATE_LIMITED") or reply.retry_after, reply
            else:
                codes.append("OK")
        await asyncio.sleep(0.02)


async def test_a_normal_postgres_restart_answers_unavailable_never_internal(private_pg, tmp_path_factory,
                                                                            open_client):
    process = quick_gateway(tmp_path_factory, private_pg.dsn)
    await asyncio.to_thread(process.start)
    try:
        codes: list[str] = []
        stop = asyncio.Event()
        running = []
        for _ in range(8):
            client = await open_client(process)
            session = await register(client)
            known = await client.call("records.create", {"collection": "posts", "data": {
                "author": session["user"]["id"], "text": "known", "public": True}})
            running.append(asyncio.ensure_future(traffic(client, session["user"]["id"], known["id"], codes, stop)))
        for _ in range(3):   # "3-10 INTERNAL replies per restart" were seen: three restarts
            await asyncio.sleep(0.3)
            seen = len(codes)
            await asyncio.to_thread(private_pg.stop, "fast")
            while "UNAVAILABLE" not in codes[seen:] and "TIMEOUT" not in codes[seen:]:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(private_pg.start)
            back = len(codes)
            deadline = time.monotonic() + 30
            while "OK" not in codes[back:]:
                assert time.monotonic() < deadline, codes[back:]
                await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*running)
        # RATE_LIMITED: a client's requests beyond its share of the pool, refused after waiting for it
        assert set(codes) <= {"OK", "UNAVAILABLE", "TIMEOUT", "RATE_LIMITED"}, sorted(set(codes))
    finally:
        process.stop()
    clean(process)


async def create_through_a_cut(database, tmp_path_factory, open_client, deliver: bool):
    """A records.create whose connection is cut at the answer to its commit (after it reached the gateway, or
    instead of it): (its outcome, the posts an admin finds with its text). A create is one statement in its own
    implicit transaction; PostgreSQL sends its answer (the stored row, with the text) once it has committed."""
    proxy, dsn = await cuttable_database(database)
    process = quick_gateway(tmp_path_factory, dsn)
    await asyncio.to_thread(process.start)
    try:
        client = await open_client(process)
        session = await register(client)
        text = "cut " + secrets.token_hex(4)
        proxy.cut_at(text.encode(), deliver=deliver)
        try:
            outcome = await client.call("records.create", {"collection": "posts", "data": {
                "author": session["user"]["id"], "text": text}})
        except HaptaError as error:
            outcome = error
        assert proxy.sprung.is_set()
        admin = await open_client(process)
        await admin.call("auth.admin", {"key": ADMIN_KEY})
        found = await admin.call("records.list", {"collection": "posts", "filter": f'text = "{text}"'})
    finally:
        process.stop()
        await proxy.cut()
    clean(process)
    return outcome, [p["id"] for p in found["items"]]


async def test_a_committed_write_answers_ok_when_its_connection_dies_right_after(database, tmp_path_factory,
                                                                                 open_client):
    created, found = await create_through_a_cut(database, tmp_path_factory, open_client, deliver=True)
    assert isinstance(created, dict) and found == [created["id"]]


async def test_a_commit_without_an_answer_says_the_outcome_is_unknown(database, tmp_path_factory, open_client):
    lost, found = await create_through_a_cut(database, tmp_path_factory, open_client, deliver=False)
    assert isinstance(lost, HaptaError), lost
    assert lost.code == "UNAVAILABLE" and lost.details == {"outcome": "unknown"} and lost.retry_after
    assert len(found) == 1   # ... and indeed it happened: reading it back is what the client does next


async def timed_replies(client, calls: list[tuple[str, dict]]) -> list[tuple[str, float]]:
    """(code, seconds) for each call, all sent at once."""
    async def one(op: str, args: dict) -> tuple[str, float]:
        started = time.perf_counter()
        try:
            await client.call(op, args)
            return "OK", time.perf_counter() - started
        except HaptaError as error:
            assert error.code == "OK" or error.retry_after, error
            return error.code, time.perf_counter() - started
    return list(await asyncio.gather(*(one(op, args) for op, args in calls)))


async def test_a_frozen_postgres_still_gets_every_request_answered_in_time(private_pg, tmp_path_factory,
                                                                         open_client):
    process = quick_gateway(tmp_path_factory, private_pg.dsn)
    await asyncio.to_thread(process.start)
    try:
        client = await open_client(process)
        session = await register(client)
        await client.call("records.list", {"collection": "posts", "per_page": 1})
        private_pg.freeze()
        try:
            calls = [("ping", {})] + [("records.list", {"collection": "posts", "filter": f'text = "f{i}"'})
                                      for i in range(12)]
            calls += [("records.create", {"collection": "posts", "data": {"author": session["user"]["id"],
                                                                          "text": f"frozen {i}"}})
                      for i in range(4)]
            calls += [("records.get", {"collection": "posts", "id": "nothere0000000"}), ("auth.me", {})]
            replies = await asyncio.wait_for(timed_replies(client, calls), DEADLINE + 5)
        finally:
            private_pg.thaw()
        assert replies[0][0] == "OK"   # the gateway itself answers at once
        slowest = max(seconds for _, seconds in replies)
        assert slowest < DEADLINE + 1.5, replies
        # (RATE_LIMITED: this one client's requests beyond its share of the pool, refused after waiting for it)
        assert {code for code, _ in replies[1:]} <= {"TIMEOUT", "UNAVAILABLE", "RATE_LIMITED"}, replies
        deadline = time.monotonic() + 30
        while True:   # and it comes back by itself
            try:
                await client.call("records.list", {"collection": "posts", "per_page": 1, "filter": 'text = "back"'})
                break
            except HaptaError as error:
                assert error.code in ("TIMEOUT", "UNAVAILABLE") and time.monotonic() < deadline
                await asyncio.sleep(0.2)
    finally:
        process.stop()
    clean(process)


async def test_a_frozen_redis_costs_a_timeout_now_and_then_not_one_per_request(database, tmp_path_factory,
                                                                               open_client):
    redis = RedisServer().start()
    process = quick_gateway(tmp_path_factory, database, REDIS_URL=redis.url,
                            HAPTA_REDIS_PREFIX=f"hapta-test-{secrets.token_hex(4)}:")
    await asyncio.to_thread(process.start)
    try:
        client = await open_client(process)
        session = await register(client)
        own = await client.call("records.create", {"collection": "posts", "data": {
            "author": session["user"]["id"], "text": "cached"}})
        await client.call("records.get", {"collection": "posts", "id": own["id"]})
        redis.proc.send_signal(__import__("signal").SIGSTOP)
        try:
            started = time.perf_counter()
            for n in range(30):   # each read misses this process's cache, so it would ask Redis for the answer
                await client.call("records.list", {"collection": "posts", "per_page": 1, "filter": f'text = "r{n}"'})
            took = time.perf_counter() - started
        finally:
            redis.proc.send_signal(__import__("signal").SIGCONT)
        assert took < 6.0, f"30 reads took {took:.1f} s with Redis frozen (its timeout is 0.5-1 s)"
    finally:
        process.stop()
        redis.stop()
    clean(process)


COMBINED = f"""
    import dataclasses, runpy
    from hapta.config import ConnectionBounds, DatabaseBounds, Limit
    demo = runpy.run_path(APP + "/config.py")["app"]
    app = dataclasses.replace(demo, connections=ConnectionBounds(request_timeout={DEADLINE}),
                              database=DatabaseBounds(statement_timeout=1.0, acquire_timeout=1.0, lock_timeout=1.0),
                              limits={{"records.create": Limit(1000, per=1), "records.update": Limit(1000, per=1)}})
"""


def unhooked_gateway(tmp_path_factory, dsn: str) -> GatewayProcess:
    """The quick gateway with an empty rules/: posts' updates are combined too (the demo's before_update hook
    would keep each in a transaction of its own)."""
    config = write_app(tmp_path_factory.mktemp("combined"), COMBINED)
    (config.parent / "rules").unlink()
    (config.parent / "rules").mkdir()
    return GatewayProcess(gateway_env(dsn), config=config)


async def combined_traffic(client, author: str, prefix: str, creates: dict, updates: dict, codes: list[str],
                           stop: asyncio.Event) -> None:
    """Until `stop`: frames of 8 creates of posts (each text once) and an update of up to 4 posts this client made
    before (each once, to public), every reply noted: creates[text] and updates[id] are the record or the error."""
    made: list[str] = []
    n = 0
    while not stop.is_set():
        texts = [f"{prefix} {n + i}" for i in range(8)]
        n += len(texts)
        touched, made[:] = made[:4], made[4:]
        calls = [("records.create", {"collection": "posts", "data": {"author": author, "text": text}})
                 for text in texts]
        calls += [("records.update", {"collection": "posts", "id": record_id, "data": {"public": True}})
                  for record_id in touched]
        try:
            replies = await client.batch(calls)
        except ConnectionError:
            codes.append("CLOSED")
            return
        for text, reply in zip(texts, replies):
            creates[text] = reply
            if not isinstance(reply, HaptaError):
                made.append(reply["id"])
        for record_id, reply in zip(touched, replies[len(texts):]):
            updates[record_id] = reply
        for reply in replies:
            if isinstance(reply, HaptaError):
                assert reply.code not in ("UNAVAILABLE", "TIMEOUT", "RATE_LIMITED") or reply.retry_after, reply
            codes.append(reply.code if isinstance(reply, HaptaError) else "OK")
        await asyncio.sleep(0.1)   # the pace of a busy client, not a flood: the resume below replays it all


async def until(condition, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"within {seconds} s: {what}"
        await asyncio.sleep(0.05)


def unknown(reply) -> bool:
    return isinstance(reply, HaptaError) and (reply.details or {}).get("outcome") == "unknown"


class Traffic:
    """Four signed-in clients sending combined_traffic to a gateway, and what it got: each create's and update's
    reply, every code, and a subscription position from before it began, to check a resume against."""

    def __init__(self, process: GatewayProcess, open_client, tag: str):
        self.process, self.open_client, self.tag = process, open_client, tag
        self.watch = {"collection": "posts", "filter": f'text ~ "{tag}"'}
        self.creates: dict[str, object] = {}
        self.updates: dict[str, object] = {}
        self.codes: list[str] = []
        self.stop = asyncio.Event()
        self.running: list[asyncio.Future] = []
        self.authors: list[str] = []
        self.since = 0

    async def start(self, clients: int = 4) -> "Traffic":
        admin = await self.open_client(self.process)
        await admin.call("auth.admin", {"key": ADMIN_KEY})
        self.since = (await admin.call("realtime.subscribe", self.watch))["pos"]
        await admin.close()
        for c in range(clients):
            client = await self.open_client(self.process)
            session = await register(client)
            self.authors.append(session["user"]["id"])
            self.running.append(asyncio.ensure_future(combined_traffic(
                client, session["user"]["id"], f"{self.tag} {c}", self.creates, self.updates, self.codes,
                self.stop)))
        await until(lambda: self.codes.count("OK") >= 200, "writes go through")
        return self

    async def end(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.running)
        assert set(self.codes) <= {"OK", "UNAVAILABLE", "TIMEOUT", "RATE_LIMITED"}, sorted(set(self.codes))

    async def stored(self, dsn: str) -> dict[str, bool]:
        """What the database holds (id -> public), checked against the replies: a create answered ok is there
        once; one refused with a known outcome is not; one whose outcome is unknown is there at most once; an
        update likewise."""
        sql = await asyncpg.connect(dsn)
        try:
            rows = await sql.fetch("SELECT id, text, public, xmin::text AS x FROM posts WHERE text LIKE $1",
                                   f"{self.tag} %")
        finally:
            await sql.close()
        self.rows = rows
        assert max(Counter(row["text"] for row in rows).values()) == 1   # no text twice
        stored = {row["text"]: row for row in rows}
        assert set(stored) <= set(self.creates)
        for text, reply in self.creates.items():
            if not isinstance(reply, HaptaError):
                assert stored[text]["id"] == reply["id"], (text, reply)
            elif not unknown(reply):
                assert text not in stored, (text, reply)
        public = {row["id"]: row["public"] for row in rows}
        for record_id, reply in self.updates.items():
            if not isinstance(reply, HaptaError):
                assert public[record_id] is True, (record_id, reply)
            elif not unknown(reply):
                assert public[record_id] is False, (record_id, reply)
        return public

    async def heard_on_resume(self, public: dict[str, bool]) -> list[tuple[str, str, int]]:
        """A subscriber resuming from before it all hears one create per stored record (and a marker made now):
        (id, action, position) of what it heard, in order."""
        admin = await self.open_client(self.process)
        await admin.call("auth.admin", {"key": ADMIN_KEY})
        resumed = await admin.call("realtime.subscribe", {**self.watch, "since": self.since})
        marker = await admin.call("records.create", {"collection": "posts", "data": {
            "author": self.authors[0], "text": f"{self.tag} marker"}})
        events = await events_until(admin, change_of(marker["id"]), timeout=60)
        heard = [(e["data"]["record"]["id"], e["data"]["action"], e["data"]["pos"]) for e in events
                 if e["event"] == "records.change" and e.get("sub") == resumed["sub"]]
        assert Counter(record_id for record_id, action, _ in heard if action == "create") == \
            Counter([*public, marker["id"]])
        assert {record_id for record_id, _, _ in heard} <= {*public, marker["id"]}
        return heard


async def test_combined_writes_through_restarts_and_a_freeze_are_done_once_or_not_at_all_as_answered(
        private_pg, tmp_path_factory, open_client):
    """Several clients pipeline creates and updates of posts, which the gateway combines, while PostgreSQL restarts
    twice and freezes once. A create answered ok is there once; one refused with a known outcome is not; one whose
    outcome is unknown is there at most once; an update likewise; and a subscriber that resumes from before it all
    hears one create per record there."""
    process = unhooked_gateway(tmp_path_factory, private_pg.dsn)
    await asyncio.to_thread(process.start)
    try:
        traffic = await Traffic(process, open_client, "combined" + secrets.token_hex(4)).start()
        codes = traffic.codes
        for fault in ("restart", "restart", "freeze"):
            seen = len(codes)
            if fault == "restart":
                await asyncio.to_thread(private_pg.stop, "fast")
            else:
                private_pg.freeze()
            try:
                await until(lambda: {"UNAVAILABLE", "TIMEOUT"} & set(codes[seen:]), f"the {fault} is felt")
            finally:
                if fault == "restart":
                    await asyncio.to_thread(private_pg.start)
                else:
                    private_pg.thaw()
            back = len(codes)
            await until(lambda: codes[back:].count("OK") >= 50, f"writes go through after the {fault}")
        await traffic.end()
        public = await traffic.stored(private_pg.dsn)
        # the writes were combined: rows that one statement wrote share its transaction
        together = Counter((row["x"], row["public"]) for row in traffic.rows)
        assert max(n for (_, updated), n in together.items() if not updated) > 1
        assert max(n for (_, updated), n in together.items() if updated) > 1
        replies = [*traffic.creates.values(), *traffic.updates.values()]
        assert any(isinstance(reply, HaptaError) for reply in replies)   # the faults were felt by writes
        assert len(replies) < MAX_REPLAY - 100   # what the resume replays stays in one answer
        await traffic.heard_on_resume(public)
    finally:
        await asyncio.to_thread(process.stop)
    clean(process)

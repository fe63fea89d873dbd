"""The read replicas' choice (hapta/store/replicas.py) without servers: positions come from fake servers whose
samples the test answers by hand, so what each read waits for, and where it goes, is exact."""
from __future__ import annotations

import asyncio

import pytest

from hapta import metrics
from hapta.protocol.errors import NOT_FOUND, UNAVAILABLE, HaptaError
from hapta.store.replicas import Behind, Replica, Replicas, Sampler, where_it_is


class FakeServer:
    """A position query the test answers: each sample waits until `answer()` (or `fail()`) settles it."""

    def __init__(self):
        self.pending: list[asyncio.Future] = []
        self.started = 0

    async def __call__(self):
        self.started += 1
        future = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        return await future

    async def answer(self, value):
        await until(lambda: self.pending)
        self.pending.pop(0).set_result(value)
        await asyncio.sleep(0)

    async def fail(self, exc: BaseException):
        await until(lambda: self.pending)
        self.pending.pop(0).set_exception(exc)
        await asyncio.sleep(0)


async def until(condition, rounds: int = 1000):
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


PRIMARY_DB, REPLICA_DB = object(), object()


def setup(replica_count: int = 1, catch_up: float = 5.0):
    clock = Clock()
    primary = FakeServer()
    servers = [FakeServer() for _ in range(replica_count)]
    replicas = [Replica(f"r{i}", REPLICA_DB, Sampler(f"r{i}", server), rest=5.0, clock=clock)
                for i, server in enumerate(servers)]
    return Replicas(PRIMARY_DB, Sampler("primary", primary), replicas, catch_up=catch_up,
                    position_timeout=5.0), primary, servers, clock


def reads(target: str, why: str) -> float:
    return metrics.REPLICA_READS.labels(target, why)._value.get()


async def test_a_replica_at_the_position_serves_at_once():
    choice, primary, [replica], _ = setup()
    choice.replicas[0].sampler.value = 50   # a sample from before the read: replay only moves forward
    read = asyncio.ensure_future(choice.reader())
    await primary.answer(40)
    assert await read is choice.replicas[0]
    assert replica.started == 0   # no replica sample needed


async def test_reads_that_begin_while_a_primary_sample_runs_share_the_next_one():
    choice, primary, [replica], _ = setup()
    choice.replicas[0].sampler.value = 10**9
    first = asyncio.ensure_future(choice.reader())
    await until(lambda: primary.started == 1)
    later = [asyncio.ensure_future(choice.reader()) for _ in range(20)]   # begun after the first sample started
    await asyncio.sleep(0)
    await primary.answer(5)
    assert await first is choice.replicas[0]
    assert not any(read.done() for read in later)   # they wait for a sample that started after them
    await primary.answer(6)
    assert all(result is choice.replicas[0] for result in await asyncio.gather(*later))
    assert primary.started == 2   # 21 reads, 2 samples
    await asyncio.sleep(0)
    assert primary.started == 2   # nobody waits: the sampler idles


async def test_a_lagging_replica_is_waited_for_then_serves():
    choice, primary, [replica], _ = setup()
    read = asyncio.ensure_future(choice.reader())
    await primary.answer(100)
    await replica.answer(90)    # behind: wait for the next sample
    assert not read.done()
    await replica.answer(100)
    assert await read is choice.replicas[0]


async def test_a_replica_that_stays_behind_sends_the_read_to_the_primary_within_the_wait():
    choice, primary, [replica], _ = setup(catch_up=0.05)
    before = reads("primary", "lagging")
    read = asyncio.ensure_future(choice.reader())
    await primary.answer(100)
    while not read.done():   # it keeps sampling, the replica stays behind
        await replica.answer(99)
        await asyncio.sleep(0.005)
    assert await read is None
    assert reads("primary", "lagging") == before + 1


async def test_a_replica_whose_sample_fails_is_skipped_for_a_while_and_sampled_again_after():
    choice, primary, [replica], clock = setup()
    read = asyncio.ensure_future(choice.reader())
    await primary.answer(100)
    await replica.fail(OSError("connection refused"))
    assert await read is None
    before = reads("primary", "no replica")
    assert await choice.reader() is None   # skipped: not even the primary's position is asked
    assert reads("primary", "no replica") == before + 1
    assert primary.started == 1
    clock.now += 5.0
    read = asyncio.ensure_future(choice.reader())
    await primary.answer(120)
    await replica.answer(120)
    assert await read is choice.replicas[0]


async def test_a_server_that_is_no_standby_is_skipped():
    choice, primary, [replica], _ = setup()
    read = asyncio.ensure_future(choice.reader())
    await primary.answer(100)
    await replica.answer(None)   # pg_is_in_recovery() false: promoted
    assert await read is None
    assert not choice.replicas[0].usable()


async def test_a_second_replica_serves_when_the_first_lags_and_fresh_ones_take_turns():
    choice, primary, servers, _ = setup(replica_count=2)
    read = asyncio.ensure_future(choice.reader())
    await primary.answer(100)
    await servers[0].answer(10)
    await servers[1].answer(100)
    assert await read is choice.replicas[1]
    choice.replicas[0].sampler.value = 100
    chosen = []
    for position in (101, 102):
        read = asyncio.ensure_future(choice.reader())
        await primary.answer(100)
        chosen.append(await read)
    assert set(chosen) == set(choice.replicas)


async def test_a_primary_position_that_does_not_come_sends_reads_to_the_primary():
    choice, primary, _, _ = setup()
    choice.position_timeout = 0.02
    before = reads("primary", "no position")
    assert await choice.reader() is None   # the sample never answers
    assert reads("primary", "no position") == before + 1


async def test_a_read_that_fails_on_the_replica_runs_again_on_the_primary_but_its_own_errors_do_not():
    choice, primary, [replica], _ = setup()
    choice.replicas[0].sampler.value = 10**9
    ran = []

    async def lost(db):
        ran.append(db)
        if db is REPLICA_DB:
            raise ConnectionResetError("gone")
        return "answer"

    read = asyncio.ensure_future(choice.read(lost))
    await primary.answer(1)
    assert await read == "answer" and ran == [REPLICA_DB, PRIMARY_DB]
    assert not choice.replicas[0].usable()

    choice.replicas[0].skipped_until = 0
    choice.replicas[0].sampler.value = 10**9

    async def absent(db):
        raise HaptaError(NOT_FOUND, "no record")

    read = asyncio.ensure_future(choice.read(absent))
    await primary.answer(1)
    with pytest.raises(HaptaError) as raised:
        await read
    assert raised.value.code == NOT_FOUND and choice.replicas[0].usable()

    async def busy(db):
        if db is REPLICA_DB:
            raise HaptaError(UNAVAILABLE, "the database is busy; try again")
        return "answer"

    read = asyncio.ensure_future(choice.read(busy))
    await primary.answer(1)
    assert await read == "answer"


async def test_a_waiting_read_cancelled_does_not_cancel_the_sample_others_share():
    choice, primary, [replica], _ = setup()
    choice.replicas[0].sampler.value = 10**9
    first = asyncio.ensure_future(choice.reader())
    second = asyncio.ensure_future(choice.reader())
    await until(lambda: primary.started == 1)
    first.cancel()
    await primary.answer(5)
    assert await second is choice.replicas[0]


class FakeConnection:
    def __init__(self, position):
        self.position = position

    async def fetchval(self, statement):
        return self.position


async def test_a_new_replica_connection_must_be_where_the_sampler_said_and_a_read_refused_so_goes_to_the_primary():
    """After a restart a standby's replay goes on from its last restartpoint: a connection made then could see less
    than the sample taken before the restart proved."""
    sampler = Sampler("r", FakeServer())
    sampler.value = 100
    await where_it_is(sampler, FakeConnection(100))
    await where_it_is(sampler, FakeConnection(120))
    for behind in (99, None):
        with pytest.raises(Behind):
            await where_it_is(sampler, FakeConnection(behind))

    choice, primary, _, _ = setup()
    choice.replicas[0].sampler.value = 10**9

    async def restarted(db):
        if db is REPLICA_DB:
            raise Behind("behind")
        return "answer"

    read = asyncio.ensure_future(choice.read(restarted))
    await primary.answer(1)
    assert await read == "answer" and not choice.replicas[0].usable()

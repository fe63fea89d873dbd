"""The guards' arithmetic, without sockets (hapta/gateway/flow.py)."""
from __future__ import annotations

import asyncio

import pytest

from hapta.config import Limit
from hapta.gateway.flow import (FD_RESERVE, FLOOD_STRIKES, Admission, Budget, IdleTimer, MessageRate, Outbox,
                                connection_cap)
from hapta.protocol.codec import JSON, MSGPACK, Codec


def test_admission_caps_each_address_then_the_total():
    admission = Admission(total=4, per_address=2)
    assert admission.enter("10.0.0.1") is None
    assert admission.enter("10.0.0.1") is None
    assert admission.enter("10.0.0.1") == "address"
    assert admission.enter("10.0.0.2") is None
    assert admission.enter("10.0.0.3") is None
    assert admission.enter("10.0.0.4") == "capacity"
    assert admission.count == 4   # refusals are not counted
    admission.leave("10.0.0.1")
    assert admission.enter("10.0.0.1") is None   # a place came free for that address
    for address in ("10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3"):
        admission.leave(address)
    assert admission.count == 0 and admission.by_address == {}   # nothing kept for addresses that left


def test_the_body_budget_caps_each_address_then_the_total():
    budget = Budget(total=10, per_address=6)
    assert budget.take("10.0.0.1", 4) is None
    assert budget.take("10.0.0.1", 3) == "address"   # 7 > 6: nothing counted
    assert budget.take("10.0.0.1", 2) is None
    assert budget.take("10.0.0.2", 5) == "capacity"  # 6 + 5 > 10
    assert budget.take("10.0.0.2", 4) is None
    assert budget.take("10.0.0.3", 0) is None and "10.0.0.3" not in budget.by_address
    assert budget.held == 10
    budget.give("10.0.0.1", 6)
    budget.give("10.0.0.2", 4)
    assert budget.held == 0 and budget.by_address == {}   # nothing kept for addresses that hold nothing


def test_the_connection_cap_leaves_descriptors_for_everything_else():
    assert connection_cap(10_000, open_files=1_000_000) == 10_000
    assert connection_cap(10_000, open_files=1024) == 1024 - FD_RESERVE   # the usual soft limit
    assert connection_cap(10_000, open_files=FD_RESERVE) == 1


def test_message_rate_passes_the_burst_then_refuses_with_the_wait():
    rate = MessageRate(Limit(10, per=1, burst=5))
    assert [rate.admit(100.0) for _ in range(5)] == [None] * 5
    wait = rate.admit(100.0)
    assert wait == pytest.approx(0.1)   # one message every 1/10 s
    assert rate.strikes == 1 and not rate.flooding
    assert rate.admit(100.1) is None   # one came free
    assert rate.strikes == 0   # a message that passes ends the run of refusals


def test_message_rate_calls_a_run_of_refusals_a_flood():
    rate = MessageRate(Limit(1, per=1, burst=1))
    assert rate.admit(0.0) is None
    for _ in range(FLOOD_STRIKES - 1):
        assert rate.admit(0.0) is not None
    assert not rate.flooding
    rate.admit(0.0)
    assert rate.flooding


def test_message_rate_off():
    rate = MessageRate(None)
    assert all(rate.admit(0.0) is None for _ in range(10_000))


def test_outbox_checks_what_already_waits_before_a_message_joins():
    outbox = Outbox(cap=100)
    assert not outbox.full(buffered=0)
    outbox.put(b"x" * 500)   # one message larger than the cap still goes to a client that keeps up
    assert outbox.full(buffered=0)   # but nothing more while it waits
    outbox.take_frame(Codec(JSON).encode)
    assert outbox.queued == 0 and len(outbox) == 0
    assert outbox.full(buffered=101)   # the transport's unsent bytes count too
    assert not outbox.full(buffered=100)


@pytest.mark.parametrize("subprotocol", [JSON, MSGPACK])
def test_outbox_frames_one_message_as_is_and_several_as_a_batch(subprotocol):
    codec = Codec(subprotocol)
    decode = codec._any.decode
    outbox = Outbox(cap=1 << 20)
    first = {"id": 1, "ok": True, "data": {"time": 5}}
    outbox.put(codec.encode(first))
    assert decode(outbox.take_frame(codec.encode)) == first
    second = {"event": "auth.expiring", "data": {"expires_at": 7}}
    outbox.put(codec.encode(first))
    outbox.put(codec.encode(second))
    assert outbox.queued == len(codec.encode(first)) + len(codec.encode(second))
    assert decode(outbox.take_frame(codec.encode)) == [first, second]


async def test_idle_timer_fires_a_timeout_after_the_last_touch():
    loop = asyncio.get_running_loop()
    fired = loop.create_future()
    timer = IdleTimer(loop, 0.05, lambda: fired.set_result(loop.time()))
    touches = []
    for _ in range(10):   # busy for about twice the timeout
        await asyncio.sleep(0.01)
        timer.touch()
        touches.append(loop.time())
    fired_at = await asyncio.wait_for(fired, 5)
    assert fired_at - max(t for t in touches if t <= fired_at) >= 0.05
    assert timer.handle is None


async def test_idle_timer_cancelled_never_fires():
    loop = asyncio.get_running_loop()
    fired = []
    timer = IdleTimer(loop, 0.01, lambda: fired.append(True))
    timer.cancel()
    await asyncio.sleep(0.05)
    assert fired == []

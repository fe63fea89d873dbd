"""GCRA as pure arithmetic: exact retry_after, burst, remaining and reset, with a clock the test holds."""
from __future__ import annotations

import random

import pytest

from hapta.limits.gcra import MICROS, Decision, Rate, decide
from hapta.limits.stores import LocalStore

S = MICROS   # one second in the limiter's unit
T0 = 1_700_000_000 * S


def run(rate: Rate, times: list[int], cost: int = 1) -> list[Decision]:
    """Events at the given times against one fresh key."""
    tat, out = None, []
    for now in times:
        new_tat, decision = decide(tat, now, rate, cost)
        tat = new_tat if new_tat is not None else tat
        out.append(decision)
    return out


def test_rate_of_limit():
    assert Rate.of(5, per=60) == Rate(12 * S, 5)                 # burst defaults to rate: 5 at once, then 1/12 s
    assert Rate.of(10, per=1, burst=20) == Rate(100_000, 20)
    assert Rate.of(7, per=60).interval == round(60 * S / 7)      # 8571429 us: rounded to the microsecond
    assert Rate.of(1_000_000_000, per=1).interval == 1           # never zero
    for bad in ((0,), (-1,), (1.5,), (True,), (5, 0), (5, -1), (5, 1, 0), (5, 1, 2.5)):
        with pytest.raises(ValueError):
            Rate.of(*bad)


def test_burst_then_exact_retry_after():
    rate = Rate.of(5, per=60)
    decisions = run(rate, [T0] * 6)
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    assert [d.reset for d in decisions] == [12.0, 24.0, 36.0, 48.0, 60.0, 60.0]
    assert all(d.retry_after is None for d in decisions[:5])
    assert decisions[5].retry_after == 12.0 and decisions[5].limit == 5


def test_retry_after_is_exact_to_the_microsecond():
    rate = Rate.of(5, per=60)
    tat = None
    for _ in range(5):
        tat, _ = decide(tat, T0, rate)
    refused = decide(tat, T0 + 3 * S, rate)[1]
    assert refused.retry_after == 9.0                                  # 12 s after the burst, 3 s of it gone
    just_before = decide(tat, T0 + 12 * S - 1, rate)[1]
    assert not just_before.allowed and just_before.retry_after == 1 / S
    on_time = decide(tat, T0 + 12 * S, rate)
    assert on_time[1].allowed and on_time[1].remaining == 0 and on_time[1].reset == 60.0


def test_refused_events_cost_nothing():
    rate = Rate.of(2, per=10)
    tat = None
    for _ in range(2):
        tat, _ = decide(tat, T0, rate)
    for t in range(100):   # a client hammering while refused does not push its own retry further
        new_tat, refused = decide(tat, T0 + t * 1000, rate)
        assert new_tat is None and not refused.allowed
    assert decide(tat, T0 + 5 * S, rate)[1].allowed


def test_sustained_rate_after_the_burst():
    rate = Rate.of(10, per=1, burst=20)
    burst = run(rate, [T0] * 21)
    assert sum(d.allowed for d in burst) == 20 and burst[20].retry_after == 0.1
    tat = None
    for _ in range(20):
        tat, _ = decide(tat, T0, rate)
    for k in range(1, 50):   # one every 100 ms passes forever; a second one in the same slot does not
        tat, ok = decide(tat, T0 + k * 100_000, rate)
        assert ok.allowed and ok.remaining == 0
        assert not decide(tat, T0 + k * 100_000, rate)[1].allowed


def test_refill_restores_remaining_and_an_idle_key_is_fresh():
    rate = Rate.of(10, per=1, burst=20)
    tat = None
    for _ in range(20):
        tat, _ = decide(tat, T0, rate)
    assert decide(tat, T0 + 500_000, rate, cost=0)[1].remaining == 5    # half a second: 5 back
    assert tat == T0 + 2 * S                                             # full again two seconds after the burst
    later = decide(tat, T0 + 2 * S, rate, cost=0)[1]
    fresh = decide(None, T0 + 2 * S, rate, cost=0)[1]
    assert later == fresh and later.remaining == 20 and later.reset == 0


def test_cost_zero_only_looks():
    rate = Rate.of(3, per=1)
    new_tat, looked = decide(None, T0, rate, cost=0)
    assert new_tat is None and looked == Decision(True, 3, 3, 0.0, None)
    tat, _ = decide(None, T0, rate)
    new_tat, looked = decide(tat, T0, rate, cost=0)
    assert new_tat is None and looked.remaining == 2 and looked.reset == pytest.approx(1 / 3, abs=1e-6)


def test_cost_above_one_and_bounds():
    rate = Rate.of(100, per=1)   # e.g. file chunks weighted by size
    tat, first = decide(None, T0, rate, cost=60)
    assert first.allowed and first.remaining == 40
    _, refused = decide(tat, T0, rate, cost=60)
    assert not refused.allowed and refused.retry_after == 0.2 and refused.remaining == 40
    with pytest.raises(ValueError):
        decide(None, T0, rate, cost=101)
    with pytest.raises(ValueError):
        decide(None, T0, rate, cost=-1)


def test_random_traffic_never_exceeds_the_limit_in_any_window():
    """Over any window of length w, at most burst + w/T events pass: the promise GCRA makes."""
    rng = random.Random(5)
    rate = Rate.of(10, per=1, burst=4)
    times = sorted(T0 + rng.randrange(0, 5 * S) for _ in range(2000))
    allowed = [t for t, d in zip(times, run(rate, times)) if d.allowed]
    for i, start in enumerate(allowed):
        for window in (1_000, 100_000, S):
            inside = sum(1 for t in allowed[i:] if t < start + window)
            assert inside <= rate.burst + window // rate.interval


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def test_local_store_forgets_idle_keys_and_stays_bounded():
    clock = Clock()
    store = LocalStore(max_keys=100, clock=clock)
    rate = Rate.of(5, per=60)
    for i in range(100):
        assert store.decide(f"k{i}", rate).allowed
    assert all(store.decide("k0", rate).allowed for _ in range(4))
    assert not store.decide("k0", rate).allowed     # k0 spent its burst of 5
    for i in range(100, 1000):                      # more keys than the bound: the oldest make room
        store.decide(f"k{i}", rate)
    assert len(store.tats) <= 100
    clock.now += 60 * S                             # everyone's TAT has passed: nothing is kept
    store.tats.expire()
    assert len(store.tats) == 0
    assert store.decide("k999", rate) == LocalStore(clock=clock).decide("k999", rate)

"""The function workers' shares (hapta.functions.shares), without a pool: how many workers each caller may hold,
and whom a call counts against."""
from __future__ import annotations

import pytest

from hapta.functions.shares import Shares
from hapta.workers.messages import Who


def test_shares_follow_the_pool_and_name_each_caller():
    assert Shares.of(2) == Shares(1, 1, 1, 1)   # two workers: nobody (and no webhooks) may hold both
    assert Shares.of(8) == Shares(4, 6, 4, 2) and Shares.of(8, per_principal=2, http=3) == Shares(2, 6, 3, 2)
    with pytest.raises(ValueError):
        Shares.of(4, per_address=0)
    shares = Shares.of(8)
    user = shares.caller(Who("u1", "user", "functions.call", "functions", "10.0.0.1"))
    assert user.turn == "p|user:u1" and user.shares == (("p|user:u1", 4), ("a|10.0.0.1", 6))
    anon = shares.caller(Who(None, "anon", "functions.call", "functions", "2001:db8::1"))
    assert anon.shares == (("p|addr:2001:db8::/64", 4), ("a|2001:db8::/64", 6))   # an IPv6 client is its /64
    hook = shares.caller(Who(None, "admin", "functions.http", "functions", "10.0.0.2"))   # @http(admin=True) too
    assert hook.shares == (("http", 4), ("w|10.0.0.2", 2)) and hook.refusal == "UNAVAILABLE"
    assert shares.caller(Who(None, "admin", "functions.every", "functions", None)).shares == ()   # the gateway's own
    assert shares.caller(Who(None, "admin", "functions.call", "functions", "10.0.0.3")).shares == ()

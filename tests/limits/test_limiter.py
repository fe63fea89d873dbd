"""The limiter without servers: which limit applies, what RATE_LIMITED carries, what limits.status reads, who
counts as the principal, and who may read /metrics."""
from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from hapta.config import Limit
from hapta.limits import Limiter, address_key, principal_key
from hapta.limits.gcra import MICROS
from hapta.limits.stores import LocalStore
from hapta.metrics import scrape_allowed
from hapta.config import ConfigError
from hapta.principal import Principal, SocketPeer
from hapta.protocol.errors import HaptaError

LIMITS = {
    "default": Limit(100, per=1),
    "records.create": Limit(10, per=1, burst=20),
    "records.create:posts": Limit(2, per=60),
    "auth.login": Limit(5, per=60),
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000 * MICROS

    def __call__(self) -> int:
        return self.now


def limiter_with_clock(limits=LIMITS) -> tuple[Limiter, Clock]:
    limiter, clock = Limiter(limits), Clock()
    limiter.local = LocalStore(clock=clock)
    return limiter, clock


def test_the_most_specific_key_wins():
    limiter = Limiter(LIMITS)
    assert limiter.resolve("records.create", "posts")[0] == "records.create:posts"
    assert limiter.resolve("records.create", "comments")[0] == "records.create"
    assert limiter.resolve("records.create")[0] == "records.create"
    assert limiter.resolve("records.list", "posts") == ("records.list", limiter.rates["default"])  # per op
    assert limiter.resolve("ping")[0] == "ping"
    assert Limiter({"auth.login": Limit(5, per=60)}).resolve("ping") is None   # no default: not limited


async def test_over_the_limit_is_rate_limited_with_exact_retry_after():
    limiter, clock = limiter_with_clock()
    for _ in range(2):
        await limiter.enforce("records.create", "user:a", collection="posts")
    before = REGISTRY.get_sample_value("hapta_rate_limited_total", {"key": "records.create:posts"}) or 0
    clock.now += 7 * MICROS
    with pytest.raises(HaptaError) as refused:
        await limiter.enforce("records.create", "user:a", collection="posts")
    error = refused.value
    assert error.code == "RATE_LIMITED" and error.retry_after == 23.0   # 2 a minute: one back every 30 s
    assert error.details == {"key": "records.create:posts", "limit": 2, "remaining": 0, "reset": 53.0}
    assert error.to_wire()["retry_after"] == 23.0
    assert REGISTRY.get_sample_value("hapta_rate_limited_total", {"key": "records.create:posts"}) == before + 1
    # other buckets and other principals are untouched
    assert (await limiter.enforce("records.create", "user:a", collection="comments")).remaining == 19
    assert (await limiter.enforce("records.create", "user:b", collection="posts")).remaining == 1
    clock.now += 23 * MICROS - 1
    with pytest.raises(HaptaError):
        await limiter.enforce("records.create", "user:a", collection="posts")
    clock.now += 1
    assert (await limiter.enforce("records.create", "user:a", collection="posts")).allowed


async def test_status_reads_without_spending():
    limiter, clock = limiter_with_clock()
    fresh = await limiter.status("auth.login", "addr:1.2.3.4")
    assert (fresh.limit, fresh.remaining, fresh.reset) == (5, 5, 0)
    await limiter.enforce("auth.login", "addr:1.2.3.4")
    for _ in range(3):
        standing = await limiter.status("auth.login", "addr:1.2.3.4")
        assert (standing.remaining, standing.reset) == (4, 12.0)
    assert await Limiter({}).status("auth.login", "addr:1.2.3.4") is None


async def test_a_given_limit_for_keys_the_config_does_not_name():
    """What the sessions and files code use: their own key class and limit (identity logins, file chunks)."""
    limiter, _ = limiter_with_clock({})
    for _ in range(3):
        await limiter.enforce("auth.login.identity", "ada@example.com", limit=Limit(3, per=60))
    with pytest.raises(HaptaError) as refused:
        await limiter.enforce("auth.login.identity", "ada@example.com", limit=Limit(3, per=60))
    assert refused.value.retry_after == 20.0
    tuned, _ = limiter_with_clock({"auth.login.identity": Limit(1, per=60)})   # the app's config wins
    await tuned.enforce("auth.login.identity", "ada@example.com", limit=Limit(3, per=60))
    with pytest.raises(HaptaError):
        await tuned.enforce("auth.login.identity", "ada@example.com", limit=Limit(3, per=60))
    raw = await limiter.check("files.chunk|user:1", Limit(4, per=1), cost=3)
    assert raw.allowed and raw.remaining == 1
    assert not (await limiter.check("files.chunk|user:1", Limit(4, per=1), cost=3)).allowed
    with pytest.raises(ValueError):
        await limiter.check("files.chunk|user:1", Limit(4, per=1), cost=5)


def test_bad_config_is_a_config_error():
    with pytest.raises(ConfigError, match="records.create"):
        Limiter({"records.create": Limit(0)})
    with pytest.raises(ConfigError, match="burst"):
        Limiter({"x": Limit(1, burst=0)})
    with pytest.raises(ConfigError, match="fallback"):
        Limiter({}, fallback="ignore")


def test_principal_is_the_user_else_the_address():
    user = SocketPeer(Principal("user", user_id="u1"), address="10.0.0.7")
    anon = SocketPeer(Principal("anon"), address="10.0.0.7")
    assert principal_key(user) == "user:u1"
    assert principal_key(user, by_address=True) == "addr:10.0.0.7"   # auth.* ops: signing in buys no budget
    assert principal_key(anon) == "addr:10.0.0.7"
    assert principal_key(SocketPeer(address=None)) == "addr:unknown"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"


def test_who_may_read_metrics():
    key = "s3cret-admin-key"
    assert scrape_allowed("127.0.0.1", {}, key)
    assert scrape_allowed("127.9.9.9", {}, key) and scrape_allowed("::1", {}, key)
    assert scrape_allowed("::ffff:127.0.0.1", {}, key)
    assert not scrape_allowed("203.0.113.5", {}, key)
    assert scrape_allowed("203.0.113.5", {"Authorization": f"Bearer {key}"}, key)
    assert scrape_allowed("203.0.113.5", {"Authorization": f"bearer {key}"}, key)
    assert not scrape_allowed("203.0.113.5", {"Authorization": "Bearer wrong"}, key)
    assert not scrape_allowed("203.0.113.5", {"Authorization": key}, key)
    assert not scrape_allowed("203.0.113.5", {"Authorization": "Bearer "}, "")   # no admin key: no key works
    # a local reverse proxy relays the world: it needs the key
    assert not scrape_allowed("127.0.0.1", {"X-Forwarded-For": "198.51.100.1"}, key)
    assert not scrape_allowed("127.0.0.1", {"Forwarded": "for=198.51.100.1"}, key)
    assert scrape_allowed("127.0.0.1", {"X-Forwarded-For": "1.2.3.4", "Authorization": f"Bearer {key}"}, key)
    # configured networks: none (the key always), or a monitoring subnet
    assert not scrape_allowed("127.0.0.1", {}, key, networks=())
    assert scrape_allowed("10.1.2.3", {}, key, networks=("10.1.0.0/16",))
    assert not scrape_allowed(None, {}, key) and not scrape_allowed("not-an-ip", {}, key)

"""REDIS_URL naming Sentinels (issue 34): how redis+sentinel:// is read, what a malformed one is refused with, and
that no message or repr shows a password. No servers: building a client connects to nothing yet."""
from __future__ import annotations

import pytest

from hapta.settings import SentinelURL, Settings, SettingsError, parse_sentinel_url
from hapta.store.redis import BlockingSentinelPool, client

SECRETS = {"HAPTA_JWT_SECRET": "s" * 40, "HAPTA_ANON_KEY": "anon", "HAPTA_ADMIN_KEY": "admin"}
PASSWORD = "pa55-w0rd"


@pytest.mark.parametrize(("url", "read"), [
    ("redis+sentinel://10.0.0.1:26379,10.0.0.2:26380,sentinel-3/mymaster",
     SentinelURL((("10.0.0.1", 26379), ("10.0.0.2", 26380), ("sentinel-3", 26379)), "mymaster")),
    ("redis+sentinel://:pw@s1,s2/mymaster/3",
     SentinelURL((("s1", 26379), ("s2", 26379)), "mymaster", 3, password="pw")),
    ("redis+sentinel://app:p%40ss%2Fw%3Ard@s1:1/m/",
     SentinelURL((("s1", 1),), "m", 0, username="app", password="p@ss/w:rd")),
    ("redis+sentinel://[::1]:26379,[fe80::1]/my%20master?sentinel_password=s+p%26w",
     SentinelURL((("::1", 26379), ("fe80::1", 26379)), "my master", sentinel_password="s+p&w")),
    ("redis+sentinel://:p@ss@s1/m",   # an unencoded @ in the password: the last @ ends it
     SentinelURL((("s1", 26379),), "m", password="p@ss")),
])
def test_a_sentinel_url_is_read_as_redis_py_wants_it(url, read):
    parsed = parse_sentinel_url(url)
    assert parsed == read
    assert parsed.password == read.password and parsed.sentinel_password == read.sentinel_password


@pytest.mark.parametrize(("url", "said"), [
    ("redis+sentinel:///mymaster", "names no sentinel"),
    ("redis+sentinel://s1,,s2/m", "sentinel 2 has no host"),
    ("redis+sentinel://s1:port/m", "sentinel 1 (s1) has a port that is not a number from 1 to 65535"),
    ("redis+sentinel://s1:70000/m", "sentinel 1 (s1) has a port that is not a number"),
    ("redis+sentinel://s1:26379", "names no master: add /<master-name>"),
    ("redis+sentinel://s1/", "names no master"),
    ("redis+sentinel://s1/m/zero", "the database after the master name is not a number"),
    ("redis+sentinel://s1/m/0/x", "has 3 path parts after the sentinels; only /master-name[/db]"),
    ("redis+sentinel://s1/m?timeout=3", "unknown option 'timeout'; the only one is sentinel_password"),
])
def test_a_malformed_sentinel_url_is_refused_saying_what_is_wrong(url, said, tmp_path):
    with pytest.raises(SettingsError) as refused:
        Settings.load(tmp_path, {**SECRETS, "REDIS_URL": url})
    assert said in str(refused.value)
    assert "the form is redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master-name[/db]" \
        in str(refused.value)


@pytest.mark.parametrize("url", [
    f"redis+sentinel://:{PASSWORD}/x@s1/m",        # an unencoded / in the password
    f"redis+sentinel://:{PASSWORD}?x@s1/m",        # ... a ?
    f"redis+sentinel://:{PASSWORD}#x@s1/m",        # ... a #
    f"redis+sentinel://:{PASSWORD}@s1:{PASSWORD}/m",   # a port that is not one (a pasted password)
    f"redis+sentinel://:{PASSWORD}@s1/m/{PASSWORD}",
])
def test_no_refusal_quotes_the_password(url, tmp_path):
    with pytest.raises(SettingsError) as refused:
        Settings.load(tmp_path, {**SECRETS, "REDIS_URL": url})
    assert PASSWORD not in str(refused.value) and "x@s1" not in str(refused.value)


def test_a_password_is_kept_out_of_repr():
    parsed = parse_sentinel_url(f"redis+sentinel://:{PASSWORD}@s1/m?sentinel_password={PASSWORD}")
    assert PASSWORD not in repr(parsed)


def test_the_schemes_redis_takes(tmp_path):
    for url in ("redis://h:6379/0", "rediss://:pw@h/1", "unix:///run/redis.sock", "redis+sentinel://s1/m"):
        assert Settings.load(tmp_path, {**SECRETS, "REDIS_URL": url}).redis_url == url
    with pytest.raises(SettingsError) as refused:
        Settings.load(tmp_path, {**SECRETS, "REDIS_URL": "sentinel://s1/m"})
    assert str(refused.value) == "REDIS_URL must start with redis://, rediss://, unix:// or redis+sentinel://"


async def test_a_sentinel_url_makes_a_client_of_redis_pys_sentinel():
    made = client("redis+sentinel://:pw@127.0.0.1:1,127.0.0.1:2/mymaster/2?sentinel_password=spw",
                  timeout=0.5, max_connections=8)
    pool = made.connection_pool
    assert isinstance(pool, BlockingSentinelPool) and pool.service_name == "mymaster" and pool.is_master
    assert pool.max_connections == 8 and pool.timeout == 0.5
    assert pool.connection_kwargs["db"] == 2 and pool.connection_kwargs["password"] == "pw"
    sentinels = pool.sentinel_manager.sentinels
    assert [(s.connection_pool.connection_kwargs["port"], s.connection_pool.connection_kwargs["password"])
            for s in sentinels] == [(1, "spw"), (2, "spw")]
    await made.aclose()
    await pool.sentinel_manager.aclose()

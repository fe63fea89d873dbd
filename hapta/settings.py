"""Deployment settings: where the upstreams are and which secrets to use.

They come from the environment, with a `.env` beside the app's config.py filling the gaps (the real environment
wins). The app's *shape* (collections, rules, limits) lives in config.py instead; see hapta.config.
"""
from __future__ import annotations

import ipaddress
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

# The secrets that ship in the demo .env. Production refuses to start with any of them.
DEVELOPMENT_SECRETS = frozenset({
    "dev-jwt-secret-change-me-0123456789abcdef",
    "dev-anon-key",
    "dev-admin-key-change-me",
})


class SettingsError(Exception):
    """The settings cannot work; the message says which one and why."""


class StartupError(Exception):
    """Something the gateway needs at start cannot be had (the database unreachable, the port taken); the message
    says what, where and what to do, in one line."""


DATABASE_SCHEMES = ("postgresql", "postgres")
ENCODE_HINT = "percent-encode @ : / in the password as %40 %3A %2F"


def _database_url_parts(dsn: str) -> dict[str, str | None]:
    """A DATABASE_URL split as asyncpg splits it (the user part ends at the first '@', hosts are comma-separated,
    the query may name host, port, user and dbname), with None for what it does not give and "?" for what does
    not parse. The password is never kept; a part that may hold a piece of it (an unencoded '@' or '/' in the
    password moves the split into the hosts or the path) is "?" too."""
    parts = urllib.parse.urlsplit(dsn)
    query = {key: values[0] for key, values in urllib.parse.parse_qs(parts.query).items()}
    auth, _, hostspec = parts.netloc.rpartition("@") if "@" in parts.netloc else ("", "", parts.netloc)
    if "@" in auth:   # asyncpg ends the user part at the first '@': the rest of the password would be the host
        auth, hostspec = auth.partition("@")[0], "?"
    hosts, ports = [], []
    for spec in filter(None, hostspec.split(",")):
        if spec.startswith("["):
            host, _, rest = spec[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ""
        else:
            host, _, port = spec.partition(":")
        hosts.append(urllib.parse.unquote(host) or "?")
        ports.append(port if port.isdigit() or not port else "?")
    database = parts.path[1:] if parts.path.startswith("/") else parts.path
    return {
        "host": ", ".join(hosts) or query.get("host"),
        "port": ", ".join(port or "5432" for port in ports) if any(ports) else query.get("port", "5432"),
        "database": "?" if "@" in database else urllib.parse.unquote(database) or query.get("dbname"),
        "user": urllib.parse.unquote(auth.partition(":")[0]) or query.get("user"),
    }


def database_parts(dsn: str) -> str:
    """What a DATABASE_URL was read as, for a message: host, port, database and user, never the password."""
    shown = {name: "unreadable" if value == "?" or value and "?" in value.split(", ") else value or "not given"
             for name, value in _database_url_parts(dsn).items()}
    return ", ".join(f"{name} {value}" for name, value in shown.items())


def check_database_url(dsn: str, name: str = "DATABASE_URL") -> None:
    """Refuse a DATABASE_URL (or one of DATABASE_REPLICA_URLS: `name`) asyncpg could not use as meant, saying what
    it was read as."""
    if urllib.parse.urlsplit(dsn).scheme not in DATABASE_SCHEMES:
        raise SettingsError(f"{name} must start with postgresql:// or postgres:// (it reads as "
                            f"{database_parts(dsn)})")
    if any(value == "?" or value and "?" in value.split(", ") for value in _database_url_parts(dsn).values()):
        raise SettingsError(f"{name} does not parse as postgresql://user:password@host:port/database (it reads "
                            f"as {database_parts(dsn)}); {ENCODE_HINT}")


def database_address(dsn: str) -> str:
    """Where a DATABASE_URL points, without its user or password: host:port/database (hosts, with their ports,
    comma-separated when it names several: a primary and its standbys)."""
    parts = _database_url_parts(dsn)
    hosts = (parts["host"] or "localhost").split(", ")
    ports = (parts["port"] or "5432").split(", ")
    ports += ports[-1:] * (len(hosts) - len(ports))   # one port for every host, as libpq reads it
    return ",".join(f"{host}:{port}" for host, port in zip(hosts, ports)) + f"/{parts['database'] or ''}"


REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://")
SENTINEL_PORT = 26379
SENTINEL_FORM = "redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master-name[/db]"
SENTINEL_OPTIONS = ("sentinel_password",)


@dataclass(frozen=True)
class SentinelURL:
    """A REDIS_URL that names Sentinels (the form in SENTINEL_FORM): who to ask for the master, its name there, and
    how to sign in to it. The user and password are the master's (and its replicas'); the sentinels are asked
    without one unless `?sentinel_password=` gives theirs, as redis-py's Sentinel does. Passwords stay out of repr."""
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)


def parse_sentinel_url(url: str) -> SentinelURL:
    """redis-py reads no Sentinel URL itself (Redis.from_url knows redis://, rediss:// and unix:// only), so the
    gateway reads this one. SettingsError says what is wrong without quoting the password: a part that may hold a
    piece of it (an unencoded @ / ? # in the password moves the split, a password pasted where a port or database
    goes) is never shown; hosts and the master name are."""
    def refuse(why: str) -> SettingsError:
        return SettingsError(f"REDIS_URL: {why} (the form is {SENTINEL_FORM})")

    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "redis+sentinel":
        raise refuse("a Sentinel URL starts with redis+sentinel://")
    if "@" in parts.path or parts.fragment or ("@" in parts.query and "@" not in parts.netloc):
        raise refuse("cannot be read; percent-encode @ : / ? # in a password as %40 %3A %2F %3F %23")
    userinfo, _, hostspec = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    sentinels = []
    for number, spec in enumerate(hostspec.split(","), 1):
        if spec.startswith("["):   # [IPv6]:port
            host, _, rest = spec[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else rest
        else:
            host, _, port = spec.partition(":")
        if not host or any(c.isspace() for c in host):
            raise refuse(f"sentinel {number} has no host" if hostspec else "names no sentinel")
        if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            raise refuse(f"sentinel {number} ({host[:80]}) has a port that is not a number from 1 to 65535")
        sentinels.append((host, int(port or SENTINEL_PORT)))
    path = parts.path.split("/")[1:]
    if path and path[-1] == "" and len(path) > 1:
        path.pop()   # a trailing slash
    if not path or not path[0]:
        raise refuse("names no master: add /<master-name>, the name the sentinels monitor it by")
    if len(path) > 2:
        raise refuse(f"has {len(path)} path parts after the sentinels; only /master-name[/db]")
    if len(path) == 2 and not (path[1].isascii() and path[1].isdigit()):
        raise refuse("the database after the master name is not a number")
    # Split by hand: parse_qs would read a '+' in a password as a space.
    query = {urllib.parse.unquote(key): urllib.parse.unquote(value)
             for key, _, value in (pair.partition("=") for pair in parts.query.split("&") if pair)}
    unknown = sorted(set(query) - set(SENTINEL_OPTIONS))
    if unknown:
        raise refuse(f"unknown option {unknown[0][:40]!r}; the only one is {', '.join(SENTINEL_OPTIONS)}")
    return SentinelURL(
        sentinels=tuple(sentinels), master=urllib.parse.unquote(path[0]), db=int(path[1]) if len(path) == 2 else 0,
        username=urllib.parse.unquote(user) or None, password=urllib.parse.unquote(password) if colon else None,
        sentinel_password=query.get("sentinel_password"))


def check_redis_url(url: str) -> None:
    if not url.startswith(REDIS_SCHEMES):
        raise SettingsError("REDIS_URL must start with redis://, rediss://, unix:// or redis+sentinel://")
    if url.startswith("redis+sentinel://"):
        parse_sentinel_url(url)


def reason(exc: BaseException) -> str:
    """An upstream failure in a few words: "connection refused", "timed out", PostgreSQL's own message."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; `#` comments, blank lines and optional quotes around the value."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


LOOPBACK = ("127.0.0.0/8", "::1/128")
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# A typo ("prod") must not start a gateway in development mode with development secrets.
ENVIRONMENTS = ("development", "production")


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    redis_url: str | None
    data_dir: Path
    jwt_secret: str
    anon_key: str
    admin_key: str
    env: str
    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_bucket: str | None = None
    jwt_retired_secrets: tuple[str, ...] = ()   # still accepted for verification while their tokens live
    trusted_proxies: tuple[str, ...] = ()       # addresses/networks whose X-Forwarded-For is believed
    public_url: str | None = None               # how browsers reach this gateway (OAuth2 redirects)
    redis_prefix: str = "hapta:"                # starts every Redis key (the names: hapta/limits/keys.py)
    metrics_networks: tuple[str, ...] = LOOPBACK   # may read /metrics without the admin key ("none": nobody)
    smtp_url: str | None = None                 # smtp[s]://user:password@host:port; unset: mails go to files
    mail_from: str = "Hapta <no-reply@localhost>"   # the From of every mail the gateway sends
    worker_user: str | None = None              # under a root gateway, the user rule and function workers run as
    static_csp: str | None = None               # --static pages' Content-Security-Policy (None: static.POLICY)
    allow_restore: bool = False                 # HAPTA_ALLOW_RESTORE: the dashboard may restore in production too
    # streaming standbys that cache misses of records.get/list/aggregate may read from (hapta/store/replicas.py)
    database_replica_urls: tuple[str, ...] = ()

    @property
    def production(self) -> bool:
        return self.env == "production"

    @classmethod
    def load(cls, app_dir: Path, environ: dict[str, str] | None = None) -> "Settings":
        env = {**read_dotenv(app_dir / ".env"), **(os.environ if environ is None else environ)}

        def get(name: str, default: str | None = None) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else default

        data_dir = Path(get("HAPTA_DATA_DIR", "data"))
        if not data_dir.is_absolute():
            data_dir = app_dir / data_dir
        settings = cls(
            database_url=get("DATABASE_URL"),
            redis_url=get("REDIS_URL"),
            data_dir=data_dir,
            jwt_secret=get("HAPTA_JWT_SECRET", "") or "",
            anon_key=get("HAPTA_ANON_KEY", "") or "",
            admin_key=get("HAPTA_ADMIN_KEY", "") or "",
            env=get("HAPTA_ENV", "development") or "development",
            s3_endpoint=get("S3_ENDPOINT"),
            s3_access_key=get("S3_ACCESS_KEY"),
            s3_secret_key=get("S3_SECRET_KEY"),
            s3_bucket=get("S3_BUCKET"),
            jwt_retired_secrets=_split(get("HAPTA_JWT_RETIRED_SECRETS")),
            trusted_proxies=_split(get("HAPTA_TRUSTED_PROXIES")),
            public_url=(get("HAPTA_PUBLIC_URL") or "").rstrip("/") or None,
            redis_prefix=get("HAPTA_REDIS_PREFIX", "hapta:") or "hapta:",
            metrics_networks=() if get("HAPTA_METRICS_NETWORKS") == "none"
            else _split(get("HAPTA_METRICS_NETWORKS")) or LOOPBACK,
            smtp_url=get("SMTP_URL"),
            mail_from=get("HAPTA_MAIL_FROM", "Hapta <no-reply@localhost>") or "Hapta <no-reply@localhost>",
            worker_user=get("HAPTA_WORKER_USER"),
            static_csp=get("HAPTA_STATIC_CSP"),
            allow_restore=(get("HAPTA_ALLOW_RESTORE", "") or "").lower() in ("1", "true", "yes"),
            database_replica_urls=_split(get("DATABASE_REPLICA_URLS")),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.env not in ENVIRONMENTS:
            raise SettingsError(f"HAPTA_ENV must be {' or '.join(ENVIRONMENTS)}, not {self.env[:40]!r}")
        for network in self.trusted_proxies:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise SettingsError(f"HAPTA_TRUSTED_PROXIES: {network!r} is not an address or network") from None
        for network in self.metrics_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise SettingsError(f"HAPTA_METRICS_NETWORKS: {network!r} is not an address or network") from None
        if self.static_csp is not None and any(c in self.static_csp for c in "\r\n\0"):
            raise SettingsError("HAPTA_STATIC_CSP must be one line (it is sent as a header as it is)")
        if self.redis_url:
            check_redis_url(self.redis_url)
        if self.database_url:
            check_database_url(self.database_url)
        for number, dsn in enumerate(self.database_replica_urls, 1):
            check_database_url(dsn, f"DATABASE_REPLICA_URLS (URL {number})")
        if self.database_replica_urls and not self.database_url:
            raise SettingsError("DATABASE_REPLICA_URLS needs DATABASE_URL: the embedded PostgreSQL has no standbys")
        s3 = {"S3_ENDPOINT": self.s3_endpoint, "S3_ACCESS_KEY": self.s3_access_key, "S3_SECRET_KEY": self.s3_secret_key,
              "S3_BUCKET": self.s3_bucket}
        if any(s3.values()):
            missing = [name for name, value in s3.items() if not value and name != "S3_BUCKET"]   # default: hapta
            if missing:
                raise SettingsError(f"S3 needs S3_ENDPOINT, S3_ACCESS_KEY and S3_SECRET_KEY together; "
                                    f"{', '.join(missing)} missing")
            endpoint = urllib.parse.urlsplit(self.s3_endpoint or "")
            if endpoint.scheme not in ("http", "https") or not endpoint.hostname:
                raise SettingsError(f"S3_ENDPOINT must be an http:// or https:// URL, not {self.s3_endpoint[:80]!r}")
            if self.s3_bucket and not BUCKET.fullmatch(self.s3_bucket):
                raise SettingsError(f"S3_BUCKET {self.s3_bucket[:80]!r} is not a bucket name (3-63 of a-z, 0-9, "
                                    "'.' and '-')")
        if len(self.jwt_secret) < 32:
            raise SettingsError("HAPTA_JWT_SECRET must be at least 32 characters")
        if not self.anon_key or not self.admin_key:
            raise SettingsError("HAPTA_ANON_KEY and HAPTA_ADMIN_KEY must be set")
        if self.production:
            weak = [name for name, value in (("HAPTA_JWT_SECRET", self.jwt_secret),
                                             ("HAPTA_ANON_KEY", self.anon_key),
                                             ("HAPTA_ADMIN_KEY", self.admin_key))
                    if value in DEVELOPMENT_SECRETS]
            if weak:
                raise SettingsError(f"HAPTA_ENV=production refuses the development value of {', '.join(weak)}")
            # The admin key opens everything and is guessed over the network: as long as a JWT secret. The anon key
            # ships in apps, so it is no secret, but a short one is a typo or a placeholder.
            for name, value, least in (("HAPTA_ADMIN_KEY", self.admin_key, 32), ("HAPTA_ANON_KEY", self.anon_key, 16)):
                if len(value) < least:
                    raise SettingsError(f"HAPTA_ENV=production needs {name} of at least {least} characters "
                                        f"(e.g. from `openssl rand -hex 32`)")

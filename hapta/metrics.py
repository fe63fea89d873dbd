"""Prometheus metrics: the objects the gateway updates, and the text that GET /metrics serves.

One process: prometheus-client's default registry. Several worker processes: the supervisor sets
PROMETHEUS_MULTIPROC_DIR (an empty directory) for them before they start; prometheus-client then keeps each
process's values in files there, and /metrics, whichever worker serves it, adds them up. The variable must be
set before this module is first imported, and the supervisor calls mark_process_dead(pid) for a worker that
exits so that its live gauges stop counting.

Label values are bounded on purpose (op names, error codes, config keys): never put user data in a label.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
from typing import Any, Iterable, Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.exposition import choose_encoder

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

# A WebSocket op is often well under a millisecond; the default buckets start at 5 ms.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CONNECTIONS = Gauge("hapta_connections", "Open WebSocket connections.", multiprocess_mode="livesum")
REQUESTS = Counter("hapta_requests", "Requests answered, by op and result code (OK or the error code).",
                   ["op", "code"])
LATENCY = Histogram("hapta_request_duration_seconds", "Time from a request's dispatch to its reply, by op.",
                    ["op"], buckets=LATENCY_BUCKETS)
RATE_LIMITED = Counter("hapta_rate_limited", "Requests refused by the rate limiter, by limit key.", ["key"])
UPSTREAM_ERRORS = Counter("hapta_upstream_errors", "Failed calls to an upstream (postgres, redis, s3, rules, "
                          "functions).",
                          ["upstream"])
REDIS_DOWN = Gauge("hapta_limiter_redis_down", "Processes whose rate limits fall back to local state because "
                   "Redis does not answer (0: all shared, or no REDIS_URL).", multiprocess_mode="livesum")
# One series per pool: the hooks of rules/ and the functions of functions/ have workers of their own, and a gauge
# both set would show whichever changed last.
WORKERS = Gauge("hapta_workers", "Worker processes alive and ready, by pool: hooks (rules/) or functions "
                "(functions/).", ["pool"], multiprocess_mode="livesum")
WORKER_RESTARTS = Counter("hapta_worker_restarts", "Workers replaced after dying or hanging, by pool.", ["pool"])
WORKER_POOLS = ("hooks", "functions")

for _upstream in ("postgres", "redis", "s3", "rules", "functions"):   # a zero is an answer; a missing series is a question
    UPSTREAM_ERRORS.labels(_upstream)
for _pool in WORKER_POOLS:
    WORKERS.labels(_pool)
    WORKER_RESTARTS.labels(_pool)
# The change feed and what it drives (hapta/live).
FEED_CHANGES = Counter("hapta_feed_changes", "Row changes read from the change log.")
FEED_RESETS = Counter("hapta_feed_resets", "Times the change feed fell behind the change log it reads (subscribers reset).")
SUBSCRIPTIONS = Gauge("hapta_realtime_subscriptions", "Realtime subscriptions held.", multiprocess_mode="livesum")
EVENTS = Counter("hapta_realtime_events", "records.change events written to connections.")
LIVE_QUERY_DIFFS = Counter("hapta_live_query_diffs", "realtime.diff events written to connections.")
LIVE_QUERY_READS = Counter("hapta_live_query_reads", "Live query windows read again from PostgreSQL because "
                           "changes left fewer than their limit (one read per group of identical queries).")
CHANNEL_MEMBERS = Gauge("hapta_channel_members", "Channel memberships of this process's connections.",
                        multiprocess_mode="livesum")
FEED_BARRIERS = Counter("hapta_feed_barriers", "Round trips of the change feed's barrier (a SELECT 1 on the "
                        "listening connection that reads served from memory wait for).")
CACHE_READS = Counter("hapta_cache_reads", "records.get/list reads, by how they were answered: hit (memory or a "
                      "query already running), shared (Redis) or load (PostgreSQL).", ["result"])
# Read replicas (hapta/store/replicas.py): where cache misses of records.get/list/aggregate were read and why,
# and what proving a replica fresh costs (one position query per sample, shared by the reads that wait for it).
REPLICA_READS = Counter("hapta_replica_reads", "Reads that may go to a replica (DATABASE_REPLICA_URLS), by target "
                        "(replica, primary) and why: fresh (proven to have replayed every earlier commit), lagging "
                        "(not proven within the wait), no replica (all skipped), no position (the primary's not "
                        "read in time), replica failed (the read failed there and ran again on the primary).",
                        ["target", "why"])
REPLICA_SAMPLES = Counter("hapta_replica_samples", "Position queries run to prove replicas fresh, by server "
                          "(primary, or the replica's host:port).", ["server"])
# The connection guards (hapta/gateway/flow.py, docs/operations.md).
GUARD_CLOSES = Counter("hapta_guard_closes", "Connections refused or closed by a connection guard, by guard: "
                       "capacity, address (1013), flood, garbage, auth_deadline (1008), idle (1000), slow_reader "
                       "(dropped: it did not read), origin (HTTP 403 at the handshake).", ["guard"])
# The request log (hapta/admin/requests.py): rows written to PostgreSQL, and rows dropped from its bounded buffer
# because PostgreSQL was slow or down.
REQUEST_LOG_ROWS = Counter("hapta_request_log_rows", "Request log rows, by outcome: written (to PostgreSQL, in "
                           "batches) or dropped (the buffer was full: PostgreSQL slow or down).", ["outcome"])
REQUEST_LOG_BATCHES = Counter("hapta_request_log_batches", "Batches (COPY statements) the request log wrote.")
for _outcome in ("written", "dropped"):
    REQUEST_LOG_ROWS.labels(_outcome)


_series: dict[tuple[str, str], tuple[Counter, Histogram]] = {}   # bounded: ops x codes


def observe_request(op: str, code: str, seconds: float) -> None:
    """Count one answered request. Once per request: the labelled children are looked up once per (op, code)."""
    series = _series.get((op, code))
    if series is None:
        series = _series[op, code] = (REQUESTS.labels(op, code), LATENCY.labels(op))
    series[0].inc()
    series[1].observe(seconds)


def exposition(accept: str | None = None) -> tuple[bytes, str]:
    """The metrics and their content type: Prometheus text (0.0.4) unless the scraper's Accept header asks for
    OpenMetrics, as prometheus-client's own HTTP server negotiates it."""
    encode, content_type = choose_encoder(accept or "")
    return encode(_registry()), content_type


def _registry() -> CollectorRegistry:
    """What /metrics reads: this process's registry, or every worker's values added up (--workers)."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def summary() -> dict[str, Any]:
    """The key figures of /metrics as numbers, for the dashboard: gauges as they stand, counters as totals since
    start (the dashboard differences them), the request latency histogram's cumulative buckets (summed over ops,
    `[[le seconds, count], ...]`, +Inf last) and the p99 they give since start, in milliseconds."""
    figures = {"connections": 0.0, "subscriptions": 0.0, "requests": 0.0, "errors": 0.0, "events": 0.0,
               "cache_hits": 0.0, "cache_loads": 0.0}
    buckets: dict[float, float] = {}
    for family in _registry().collect():
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "hapta_connections":
                figures["connections"] += value
            elif name == "hapta_realtime_subscriptions":
                figures["subscriptions"] += value
            elif name == "hapta_requests_total":
                figures["requests"] += value
                if labels.get("code") != "OK":
                    figures["errors"] += value
            elif name == "hapta_realtime_events_total":
                figures["events"] += value
            elif name == "hapta_cache_reads_total":
                figures["cache_hits" if labels.get("result") in ("hit", "shared") else "cache_loads"] += value
            elif name == "hapta_request_duration_seconds_bucket":
                bound = float(labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + value
    cumulative = sorted(buckets.items())
    return {**figures, "latency_buckets": [[bound, count] for bound, count in cumulative],
            "p99_ms": p99_ms(cumulative)}


def p99_ms(cumulative: list[tuple[float, float]]) -> float | None:
    """The 99th percentile a cumulative histogram gives (the upper bound of its bucket), in ms; None if empty or
    past the largest finite bucket."""
    total = cumulative[-1][1] if cumulative else 0.0
    if total <= 0:
        return None
    for bound, count in cumulative:
        if count >= 0.99 * total:
            return None if bound == float("inf") else bound * 1000
    return None


def mark_process_dead(pid: int) -> None:
    """For the supervisor: a worker exited; drop its live gauges (connections, hook and function workers)."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(pid)


def scrape_allowed(address: str | None, headers: Mapping[str, str], admin_key: str,
                   networks: Iterable[str] = ("127.0.0.0/8", "::1/128")) -> bool:
    """May this HTTP request read /metrics? With `Authorization: Bearer <admin key>` always; without it only
    from an address in `networks` (loopback by default) and only when no proxy relayed it: a reverse proxy on
    the same host makes every client look local, and it says so with X-Forwarded-For or Forwarded."""
    authorization = headers.get("Authorization") or ""
    scheme, _, token = authorization.partition(" ")
    if admin_key and scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), admin_key.encode()):
        return True
    if "X-Forwarded-For" in headers or "Forwarded" in headers or not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return any(ip in ipaddress.ip_network(network, strict=False) for network in networks)

"""The CPU of every server process by role over a measured window, per operation: what bench.cpu and bench.peer
print beside the rates.

    census = Census(admin_dsn, [database], gateways={"Hapta": pid}, others={"PocketBase": pid})
    window = census.measure(seconds)    # a snapshot now, every `every` s meanwhile, and one at the end
    ...
    row = Row(("create", "50", "Hapta"), ops / seconds, ops, window.columns("Hapta"))
    print(table([row], ("case", "VUs", "server")))

A snapshot reads user + system CPU seconds (psutil, /proc) of each process, keyed by pid and start time (a reused
pid is another process), with its role (owner, kind):

- a gateway's own processes, by its pid and its children's command lines: `gateway` (the process started),
  `gateway workers` (the extra processes of `--workers N`, `serve --worker`), `hook/function workers` (the
  worker processes that run rules/ and functions/: multiprocessing children; their command line does not say
  which kind), `other gateway children` (multiprocessing's resource tracker, anything else);
- the PostgreSQL backends of the bench databases (pg_stat_activity, datname), each owned by the gateway whose
  process holds the other end of its TCP connection (its `client_port`): `pool` (`hapta-pool`) and `listener`
  (`hapta-listener`; a gateway older than those names: the connection whose last query is LISTEN, the listener's
  `SELECT 1` probe or its advisory lock), a parallel worker as its leader; a backend no known process holds goes to
  `other backends of the database` (shown, not in the total). Numbering (hapta.position_changes) runs on whichever
  pool connection is free: it is inside `pool`;
- `walsender`: replication connections (none unless something replicates);
- `other PostgreSQL (cluster-wide)`: the postmaster and its children that are not client backends (checkpointer,
  background writer, walwriter, autovacuum launcher and workers, the logical replication launcher): shared by every
  database of the cluster, so another tenant's load shows there too; not in the total. Client backends of other
  databases are not counted at all;
- any other server (PocketBase, the echo server): its process and children, as one kind named after it.

The difference of two snapshots counts each process from its value in the first, or from zero if it started
after it; a process seen in a snapshot between them keeps its last value if it ended before the last one (its CPU
after that last sight is lost: hence the snapshots every `every` seconds).
"""
from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Collection, Iterable, Mapping

GATEWAY = "gateway"
GATEWAY_WORKERS = "gateway workers"
WORKERS = "hook/function workers"
CHILDREN = "other gateway children"
POOL = "pool"
LISTENER = "listener"
WALSENDER = "walsender"
UNATTRIBUTED = "other backends of the database"
IDLE = "idle servers"
CLUSTER = "other PostgreSQL (cluster-wide)"
SHARED = ""   # the owner of roles that are no one server's: walsender, cluster-wide, unattributed backends
# Columns in this order (a server's own kind, e.g. "PocketBase", comes after the gateway's); the ones marked always
# are printed even when no process had that role ("–"), the others only when some row had one.
ORDER = (GATEWAY, GATEWAY_WORKERS, WORKERS, CHILDREN, POOL, LISTENER, WALSENDER)
ALWAYS = (GATEWAY, POOL, LISTENER, WALSENDER)
TAIL = (IDLE, UNATTRIBUTED, CLUSTER)
NOT_IN_TOTAL = frozenset(TAIL)

Key = tuple[int, float]          # pid, start time
Role = tuple[str, str]           # owner (a server's label, or SHARED), kind
Snapshot = dict[Key, tuple[Role, float]]   # CPU seconds (user + system) so far, by process


# ---- the pure part: roles, differences, the table ----

def gateway_kind(cmdline: list[str], root: bool) -> str:
    """The kind of one process of a gateway's tree, from its command line."""
    if root:
        return GATEWAY
    line = " ".join(cmdline)
    if "--worker" in cmdline and "serve" in cmdline:
        return GATEWAY_WORKERS
    if "multiprocessing" in line and "resource_tracker" not in line and (
            "spawn_main" in line or "--multiprocessing-fork" in cmdline):
        return WORKERS
    return CHILDREN


def _listener_like(query: str) -> bool:
    """What a gateway that names no connection sends on its listening one only: LISTEN, the probe, the lease."""
    query = query.strip()
    return query.upper().startswith("LISTEN ") or query == "SELECT 1" or "pg_try_advisory_lock" in query


def backend_role(row: Mapping, databases: Collection[str], owners: Mapping[int, str], lone: str | None = None,
                 leader: Role | None = None) -> Role | None:
    """The role of one pg_stat_activity row: `databases` are the bench's, `owners` maps a client port to the server
    whose process holds it; `lone`: the only gateway, which owns the bench databases' backends with no TCP port (a
    Unix socket); `leader`: the role of a parallel worker's leader. None: not counted (another database's
    client)."""
    kind = row["backend_type"]
    if kind == "walsender":
        return SHARED, WALSENDER
    if kind in ("client backend", "parallel worker"):
        if row["datname"] not in databases:
            return None
        if kind == "parallel worker" and leader is not None:
            return leader
        port = row["client_port"]
        owner = owners.get(port) if port is not None and port >= 0 else lone
        if owner is None:
            return SHARED, UNATTRIBUTED
        name = row["application_name"] or ""
        if name == "hapta-listener" or (not name.startswith("hapta-") and _listener_like(row["query"] or "")):
            return owner, LISTENER
        return owner, POOL
    return SHARED, CLUSTER


_CLIENT_TITLE = re.compile(r"\(\d+\)|\[local\]")   # a client backend's process title names its client


def postmaster_child_role(cmdline: list[str]) -> Role | None:
    """A postmaster child pg_stat_activity did not list (it had not registered yet, or never does): a client
    backend by its title is left out (its database is not known yet); anything else is the cluster's."""
    return None if _CLIENT_TITLE.search(" ".join(cmdline)) else (SHARED, CLUSTER)


def spent(start: Snapshot, *later: Snapshot) -> dict[Role, float]:
    """CPU seconds by role from `start` to the last of `later`: each process from its value in `start` (zero if it
    started after it) to the last value seen of it (the last snapshot's, or an earlier one's if it ended
    meanwhile), under the last role seen of it."""
    last: Snapshot = {}
    for snapshot in later:
        last.update(snapshot)
    out: dict[Role, float] = {}
    for key, (role, cpu) in last.items():
        before = start[key][1] if key in start else 0.0
        out[role] = out.get(role, 0.0) + max(0.0, cpu - before)
    return out


def add(*many: Mapping[Role, float]) -> dict[Role, float]:
    """The sum of several windows' spent() (rounds of one row)."""
    out: dict[Role, float] = {}
    for one in many:
        for role, seconds in one.items():
            out[role] = out.get(role, 0.0) + seconds
    return out


def columns(by_role: Mapping[Role, float], subject: str) -> dict[str, float]:
    """One row's CPU seconds by column, `subject` being the server measured: its own kinds, the shared roles, and
    every other server's processes (idle meanwhile) summed as `idle servers`."""
    out: dict[str, float] = {}
    for (owner, kind), seconds in by_role.items():
        column = kind if owner in (subject, SHARED) else IDLE
        out[column] = out.get(column, 0.0) + seconds
    return out


def total(cols: Mapping[str, float]) -> float:
    """The server's CPU: its own processes and backends and any walsender; not the idle servers, nor the backends
    no server holds, nor the cluster-wide processes."""
    return sum(seconds for column, seconds in cols.items() if column not in NOT_IN_TOTAL)


@dataclass
class Row:
    labels: tuple[str, ...]       # e.g. case, VUs, server
    rate: float                   # ops/s
    ops: int                      # operations k6 counted in the measured windows (all rounds)
    cpu: dict[str, float]         # CPU seconds by column over those windows (columns())

    def micros(self, column: str | None = None) -> float:
        """CPU µs per operation: of one column, or the total."""
        seconds = total(self.cpu) if column is None else self.cpu.get(column, 0.0)
        return seconds / self.ops * 1e6 if self.ops else float("nan")


def _order(rows: Iterable[Row]) -> list[str]:
    seen = {column for row in rows for column in row.cpu}
    own = [c for c in ORDER if c in seen or c in ALWAYS]
    extra = sorted(seen - set(ORDER) - set(TAIL))
    return [*own, *extra, *[c for c in TAIL if c in seen or c == CLUSTER]]


def table(rows: list[Row], labels: tuple[str, ...]) -> str:
    """The markdown table: the row's labels, ops/s, total server CPU µs/op, then one column per role (µs/op; "–":
    no process of that role in the row's windows)."""
    rows = list(rows)
    order = _order(rows)
    head = [*labels, "ops/s", "total server CPU µs/op", *order]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "---|" * len(labels) + "---:|" * (len(head) - len(labels))]
    for row in rows:
        cells = [f"{row.micros(c):.0f}" if c in row.cpu else "–" for c in order]
        lines.append("| " + " | ".join([*row.labels, f"{row.rate:.0f}", f"{row.micros():.0f}", *cells]) + " |")
    return "\n".join(lines)


NOTES = (f"CPU (user + system) over the measured windows ÷ the operations k6 counted in them, µs. The total is the "
         f"server's own processes and its database backends: `{POOL}` (the gateway's asyncpg pool, numbering by "
         f"hapta.position_changes included: it runs on whichever pool connection is free), `{LISTENER}` (the "
         f"connection that LISTENs), `{WALSENDER}` (replication; none unless something replicates); not `{IDLE}` "
         f"(the bench's other servers, idle meanwhile, and their backends), "
         f"`{UNATTRIBUTED}` (held by no process of the bench) nor `{CLUSTER}` (the postmaster, checkpointer, "
         f"background writer, walwriter, autovacuum: shared by every database of the cluster, another tenant's "
         f"load included). `{WORKERS}`: the processes that run rules/ and functions/ (one command line for both).")


def census_note(processes: Mapping[str, Mapping[str, int]]) -> str:
    """Which processes each server had, by kind (counted at the end of its last window)."""
    parts = []
    for server, kinds in processes.items():
        parts.append(f"{server}: " + ", ".join(f"{kind} {count}" for kind, count in kinds.items()))
    return "Processes: " + "; ".join(parts) + "."


# ---- the part that reads the machine ----

@dataclass
class Window:
    spent: dict[Role, float]                 # CPU seconds by role
    seconds: float                           # from the first snapshot to the last
    processes: dict[Role, int] = field(default_factory=dict)   # processes by role in the last snapshot

    def columns(self, subject: str) -> dict[str, float]:
        return columns(self.spent, subject)

    def kinds(self, subject: str) -> dict[str, int]:
        """How many processes of each kind `subject` had (and the shared roles), at the end."""
        return {kind: n for (owner, kind), n in self.processes.items() if owner in (subject, SHARED)}


class Census:
    """Snapshots of every server process of a bench: `gateways` and `others` by label and pid, the PostgreSQL
    backends of `databases` (names or DSNs) through `admin` (a DSN on the same server; its own connection goes
    to that DSN's database, so it is none of the bench's backends). Synchronous: call it between the
    bench's asyncio.run()s, not inside a running loop. Close it after."""

    def __init__(self, admin: str, databases: Iterable[str], gateways: Mapping[str, int],
                 others: Mapping[str, int] | None = None):
        import asyncpg
        import psutil
        self.psutil = psutil
        self.databases = {database.split("?")[0].rsplit("/", 1)[-1] for database in databases}
        self.gateways = dict(gateways)
        self.others = dict(others or {})
        self.loop = asyncio.new_event_loop()
        self.conn = self.loop.run_until_complete(asyncpg.connect(admin))
        own = self.loop.run_until_complete(self.conn.fetchval("SELECT pg_backend_pid()"))
        self.postmaster = psutil.Process(own).ppid()
        self.pg_port = int(self.loop.run_until_complete(self.conn.fetchval("SHOW port")))
        self.procs: dict[int, object] = {}      # pid -> psutil.Process
        self.owners: dict[Key, str] = {}        # a backend's owner, once known (by its client port)

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()

    def __enter__(self) -> "Census":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _process(self, pid: int):
        process = self.procs.get(pid)
        if process is None or not process.is_running():   # new, or its pid reused
            process = self.procs[pid] = self.psutil.Process(pid)
        return process

    def _read(self, process) -> tuple[Key, float] | None:
        try:
            times = process.cpu_times()
            return (process.pid, process.create_time()), times.user + times.system
        except (self.psutil.NoSuchProcess, self.psutil.ZombieProcess, self.psutil.AccessDenied):
            return None

    def _tree(self, pid: int) -> list:
        try:
            root = self._process(pid)
            return [root, *root.children(recursive=True)]
        except self.psutil.NoSuchProcess:
            return []

    def _ports(self) -> dict[int, str]:
        """The local port of every TCP connection to PostgreSQL held by a gateway's processes -> that gateway."""
        ports: dict[int, str] = {}
        for label, pid in self.gateways.items():
            for process in self._tree(pid):
                try:
                    for conn in process.net_connections(kind="tcp"):
                        if conn.raddr and conn.raddr.port == self.pg_port:
                            ports[conn.laddr.port] = label
                except (self.psutil.NoSuchProcess, self.psutil.AccessDenied):
                    pass
        return ports

    def snapshot(self) -> Snapshot:
        rows = self.loop.run_until_complete(self.conn.fetch(
            "SELECT pid, datname, backend_type, application_name, client_port, leader_pid, query "
            "FROM pg_stat_activity WHERE pid <> pg_backend_pid()"))
        out: Snapshot = {}
        for label, pid in self.gateways.items():
            tree = self._tree(pid)
            for process in tree:
                read = self._read(process)
                if read is not None:
                    try:
                        cmdline = process.cmdline()
                    except self.psutil.Error:
                        cmdline = []
                    out[read[0]] = ((label, gateway_kind(cmdline, process is tree[0])), read[1])
        for label, pid in self.others.items():
            for process in self._tree(pid):
                read = self._read(process)
                if read is not None:
                    out[read[0]] = ((label, label), read[1])
        lone = next(iter(self.gateways)) if len(self.gateways) == 1 else None
        listed = {row["pid"]: row for row in rows}
        ports: dict[int, str] | None = None
        roles: dict[int, Role] = {}
        for row in sorted(rows, key=lambda r: r["backend_type"] == "parallel worker"):   # leaders first
            pid = row["pid"]
            try:
                read = self._read(self._process(pid))
            except self.psutil.NoSuchProcess:
                continue
            if read is None:
                continue
            key, cpu = read
            owners: dict[int, str] = {}
            if row["backend_type"] == "client backend" and row["datname"] in self.databases:
                if key not in self.owners:   # a new backend: who holds its other end
                    ports = self._ports() if ports is None else ports
                    if row["client_port"] in ports:
                        self.owners[key] = ports[row["client_port"]]
                if key in self.owners:
                    owners = {row["client_port"]: self.owners[key]}
            role = backend_role(dict(row), self.databases, owners, lone, roles.get(row["leader_pid"]))
            if role is not None:
                roles[pid] = role
                out[key] = (role, cpu)
        for process in self._tree(self.postmaster):
            if process.pid in listed:
                continue
            read = self._read(process)
            if read is None:
                continue
            try:
                role = (SHARED, CLUSTER) if process.pid == self.postmaster else \
                    postmaster_child_role(process.cmdline())
            except self.psutil.Error:
                continue
            if role is not None:
                out[read[0]] = (role, read[1])
        return out

    def measure(self, seconds: float, every: float = 0.5) -> Window:
        """The CPU by role over the next `seconds`: a snapshot now, every `every` s, and at the end."""
        start = self.snapshot()
        began = time.monotonic()
        samples: list[Snapshot] = []
        while (left := began + seconds - time.monotonic()) > 0:
            time.sleep(min(every, left))
            samples.append(self.snapshot())
        elapsed = time.monotonic() - began
        counts: dict[Role, int] = {}
        for role, _cpu in samples[-1].values():
            counts[role] = counts.get(role, 0) + 1
        return Window(spent(start, *samples), elapsed, counts)


def wait_for_load(pid: int, port: int, timeout: float = 30.0) -> bool:
    """Wait until the load process `pid` (k6) holds an established TCP connection to `port`: its clients are up, its
    warm-up has begun. False if it did not within `timeout` s (or ended)."""
    import psutil
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if any(c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
                   for c in psutil.Process(pid).net_connections(kind="tcp")):
                return True
        except psutil.NoSuchProcess:
            return False
        time.sleep(0.02)
    return False

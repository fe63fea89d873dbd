"""bench/processes.py without servers: which role a process or a backend has, the difference of two snapshots (a
backend that came mid-window counted from zero, one that went keeping its last value, a reused pid another
process) and the table."""
from __future__ import annotations

from bench.processes import (CHILDREN, CLUSTER, GATEWAY, GATEWAY_WORKERS, IDLE, LISTENER, POOL, SHARED,
                             UNATTRIBUTED, WALSENDER, WORKERS, Row, backend_role, columns, gateway_kind,
                             postmaster_child_role, spent, table, total)

DB = {"bench_db", "bench_db_2"}


def activity(backend_type="client backend", datname="bench_db", application_name="", client_port=40000, query=""):
    return {"backend_type": backend_type, "datname": datname, "application_name": application_name,
            "client_port": client_port, "leader_pid": None, "query": query}


def test_a_gateways_processes_by_command_line():
    python = ["/venv/bin/python"]
    assert gateway_kind([*python, "-m", "hapta", "serve", "--port", "0"], root=True) == GATEWAY
    assert gateway_kind([*python, "-m", "hapta", "serve", "--port", "8080", "--worker"], root=False) == GATEWAY_WORKERS
    assert gateway_kind([*python, "-c", "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, "
                                        "pipe_handle=7)", "--multiprocessing-fork"], root=False) == WORKERS
    assert gateway_kind([*python, "-c", "from multiprocessing.resource_tracker import main;main(4)"],
                        root=False) == CHILDREN


def test_backends_by_name_owner_and_type():
    owners = {40000: "Hapta", 40001: "Hapta unflushed"}
    assert backend_role(activity(application_name="hapta-pool"), DB, owners) == ("Hapta", POOL)
    assert backend_role(activity(application_name="hapta-listener", client_port=40001), DB, owners) == \
        ("Hapta unflushed", LISTENER)
    # a gateway that names no connection: the listener by what only it sends
    for query in ('LISTEN "hapta_changes"', "SELECT 1", "SELECT pg_try_advisory_lock($1)"):
        assert backend_role(activity(query=query), DB, owners) == ("Hapta", LISTENER)
    assert backend_role(activity(query="SELECT * FROM hapta.position_changes($1)"), DB, owners) == ("Hapta", POOL)
    # a name says more than the query: a pool connection may run anything
    assert backend_role(activity(application_name="hapta-pool", query="SELECT 1"), DB, owners) == ("Hapta", POOL)
    # held by no process of the bench; a Unix socket with one gateway; another database's client is not counted
    assert backend_role(activity(client_port=41234), DB, owners) == (SHARED, UNATTRIBUTED)
    assert backend_role(activity(client_port=-1), DB, {}, lone="Hapta") == ("Hapta", POOL)
    assert backend_role(activity(datname="someone_else"), DB, owners) is None
    # a parallel worker is its leader's; replication and the cluster's own processes are shared
    assert backend_role(activity(backend_type="parallel worker"), DB, owners, leader=("Hapta", POOL)) == \
        ("Hapta", POOL)
    assert backend_role(activity(backend_type="walsender", datname=None), DB, owners) == (SHARED, WALSENDER)
    for kind in ("checkpointer", "background writer", "walwriter", "autovacuum launcher", "autovacuum worker",
                 "logical replication launcher"):
        assert backend_role(activity(backend_type=kind, datname=None), DB, owners) == (SHARED, CLUSTER)
    # a postmaster child not (yet) in pg_stat_activity: a client by its title is left out
    assert postmaster_child_role(["postgres: 15/main: postgres bench_db 127.0.0.1(5000) idle"]) is None
    assert postmaster_child_role(["postgres: 15/main: postgres bench_db [local] idle"]) is None
    assert postmaster_child_role(["postgres: 15/main: checkpointer "]) == (SHARED, CLUSTER)


def test_the_difference_of_snapshots_counts_every_process_once_from_when_it_was_there():
    gateway, pool, listener = ("Hapta", GATEWAY), ("Hapta", POOL), ("Hapta", LISTENER)
    start = {(10, 1.0): (gateway, 5.0), (20, 1.0): (pool, 2.0), (21, 1.0): (listener, 0.5),
             (30, 1.0): (pool, 1.0)}
    middle = {(10, 1.0): (gateway, 6.0), (20, 1.0): (pool, 2.5), (21, 1.0): (listener, 0.6),
              (30, 1.0): (pool, 1.4),   # seen here, gone by the end: its last value counts
              (40, 5.0): (pool, 0.1)}   # opened mid-window: counted from zero
    end = {(10, 1.0): (gateway, 7.0), (20, 1.0): (pool, 3.0), (21, 1.0): (listener, 0.7),
           (40, 5.0): (pool, 0.3),
           (20, 9.0): (pool, 0.2)}      # pid 20 again, but started later: another process, from zero
    by_role = spent(start, middle, end)
    assert by_role[gateway] == 2.0
    assert abs(by_role[pool] - (1.0 + 0.4 + 0.3 + 0.2)) < 1e-9
    assert abs(by_role[listener] - 0.2) < 1e-9
    assert spent(start, start) == {gateway: 0.0, pool: 0.0, listener: 0.0}


def test_a_rows_columns_and_total():
    by_role = {("Hapta", GATEWAY): 0.4, ("Hapta", POOL): 0.5, ("Hapta", LISTENER): 0.05,
               ("Hapta unflushed", GATEWAY): 0.02, ("Hapta unflushed", LISTENER): 0.03,
               ("PocketBase", "PocketBase"): 0.01,
               (SHARED, CLUSTER): 0.2, (SHARED, UNATTRIBUTED): 0.1}
    cols = columns(by_role, "Hapta")
    assert cols == {GATEWAY: 0.4, POOL: 0.5, LISTENER: 0.05, IDLE: 0.02 + 0.03 + 0.01, CLUSTER: 0.2,
                    UNATTRIBUTED: 0.1}
    assert abs(total(cols) - 0.95) < 1e-9   # neither the idle servers, the unattributed nor the cluster's
    theirs = columns(by_role, "PocketBase")
    assert theirs["PocketBase"] == 0.01 and abs(total(theirs) - 0.01) < 1e-9


def test_the_table_has_a_column_per_role_and_a_dash_where_a_row_had_none():
    rows = [Row(("create", "50", "Hapta"), 1000.0, 1000, {GATEWAY: 0.4, POOL: 0.5, LISTENER: 0.05, CLUSTER: 0.1}),
            Row(("create", "50", "PocketBase"), 1500.0, 2000, {"PocketBase": 1.2, IDLE: 0.02, CLUSTER: 0.2})]
    lines = table(rows, ("case", "VUs", "server")).splitlines()
    assert lines[0] == ("| case | VUs | server | ops/s | total server CPU µs/op | gateway | pool | listener | "
                        "walsender | PocketBase | idle servers | other PostgreSQL (cluster-wide) |")
    assert lines[1] == "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    assert lines[2] == "| create | 50 | Hapta | 1000 | 950 | 400 | 500 | 50 | – | – | – | 100 |"
    assert lines[3] == "| create | 50 | PocketBase | 1500 | 600 | – | – | – | – | 600 | 10 | 100 |"

"""Soak: many small jobs through two workers on PostgreSQL + Redis, and what it costs over time.

    python benchmarks/bench_soak.py [--jobs 2000] [--workers 2] [--in-flight 4] [--pg-admin-url URL]

Starts a private Redis and (as root) a private PostgreSQL cluster, both on
127.0.0.1 with their own ports and data directories; with ``--pg-admin-url``
(or when a private cluster cannot be started) it uses a fresh database on that
server instead, dropped at the end.  The API (``convlab serve``) and the
workers (``convlab worker``) are the real commands, with the product's default
heartbeat and flush intervals.  The submitter keeps ``--in-flight`` jobs queued
or running, so the workers never wait for work and the queue never grows.

Prints, asserting nothing:
- jobs per second (first submit to last finish), and how the jobs ended;
- submit -> running (the job's ``created_at`` -> ``started_at``), p50 and p99:
  with more jobs in flight than workers this includes waiting behind at most
  ``in-flight - workers`` jobs;
- database size per job (``pg_database_size`` after - before, / jobs) and the
  biggest tables;
- resident memory (RSS) of the API and of each worker, all their processes
  (gunicorn's, Celery's pool), when idle at the start, after the first 5 % of
  the jobs (warm), and at the end.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, make_url, select  # noqa: E402

import store  # noqa: E402
from store.models import Job  # noqa: E402
from tests.cluster import Cluster  # noqa: E402
from tests.private_servers import PrivatePostgres, PrivateRedis, private_postgres_impossible  # noqa: E402

SHARED_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
STALL_S = 300  # no job finished for this long: something is stuck, stop measuring

# One epoch of a small CNN on the built-in synthetic set: milliseconds of compute, so what is
# measured is the service around the job (claim, progress, metrics, checkpoint, weights, finish).
SPEC = {
    "type": "train",
    "name": "soak",
    "model": {
        "input_shape": [1, 12, 12],
        "layers": [
            {"type": "conv", "filters": 6, "kernel": 3, "activation": "relu"},
            {"type": "maxpool", "size": 2},
            {"type": "dense", "units": 4, "activation": "softmax"},
        ],
        "loss": "cross_entropy",
    },
    "data": {"dataset": "synthetic"},
    "train": {"epochs": 1, "batch_size": 32, "seed": 0, "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9}},
}

# The product's defaults (convlab/config.py), not the tests' short intervals: this is a soak.
DEFAULT_INTERVALS = {
    "CONVLAB_HEARTBEAT_S": "2",
    "CONVLAB_STALE_AFTER_S": "30",
    "CONVLAB_WORKER_ALIVE_S": "15",
    "CONVLAB_METRICS_FLUSH_S": "0.5",
}


# --- processes and their memory -------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(stat.parent.name))
    return kids


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> dict[int, int]:
    """RSS in KiB of ``pid`` and every descendant, by pid."""
    kids, todo, out = _children(), [pid], {}
    while todo:
        p = todo.pop()
        out[p] = _rss_kib(p)
        todo.extend(kids.get(p, []))
    return out


def memory(cluster: Cluster) -> dict[str, dict[int, int]]:
    roles = {"api": cluster.api.pid}
    roles.update({f"worker{i + 1}": p.pid for i, p in enumerate(cluster.workers)})
    return {role: tree_rss(pid) for role, pid in roles.items()}


# --- databases --------------------------------------------------------------------------------


def database_size(st: store.Store) -> int:
    with st.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()


def biggest_tables(st: store.Store, n: int = 4) -> list[tuple[str, int]]:
    with st.engine.connect() as conn:
        return conn.exec_driver_sql(
            f"SELECT relname, pg_total_relation_size(relid) FROM pg_stat_user_tables ORDER BY 2 DESC LIMIT {int(n)}"
        ).all()


class SharedDatabase:
    """A fresh database on an existing server, dropped at the end."""

    def __init__(self, admin_url: str):
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.name = f"convlab_soak_{os.getpid()}_{secrets.token_hex(3)}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
        self.url = make_url(admin_url).set(database=self.name).render_as_string(hide_password=False)

    def remove(self) -> None:
        """Drop the database."""
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.admin.dispose()


# --- the run ----------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def soak(cluster: Cluster, jobs: int, in_flight: int) -> dict:
    client = cluster.client()
    st = cluster.store
    mem = {"start (idle)": memory(cluster)}
    size_before = database_size(st)
    warm_at = max(1, jobs // 20)
    submitted = finished = 0
    warm = False
    t0 = last_progress = time.perf_counter()
    while finished < jobs:
        counts = store.count_by_status(st)
        now = time.perf_counter()
        done = sum(counts[s] for s in store.TERMINAL_STATUSES)
        if done > finished:
            finished, last_progress = done, now
        elif now - last_progress > STALL_S:
            raise RuntimeError(f"no job finished for {STALL_S} s: {counts}")
        if not warm and finished >= warm_at:
            mem[f"warm ({finished} jobs)"] = memory(cluster)
            warm = True
        while submitted < jobs and submitted - finished < in_flight:
            client.request("POST", "/jobs", SPEC)
            submitted += 1
        if finished < jobs:
            time.sleep(0.02)  # polling interval of the submitter
    elapsed = time.perf_counter() - t0
    mem["end"] = memory(cluster)
    with st.session() as s:
        rows = s.execute(select(Job.status, Job.attempts, Job.created_at, Job.started_at, Job.finished_at)).all()
    return {
        "elapsed": elapsed,
        "rows": rows,
        "memory": mem,
        "size_before": size_before,
        "size_after": database_size(st),
        "tables": biggest_tables(st),
    }


def report(out: dict, jobs: int, workers: int, in_flight: int, database: str) -> None:
    rows = out["rows"]
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    waits = [(r.started_at - r.created_at).total_seconds() for r in rows if r.started_at]
    runs = [(r.finished_at - r.started_at).total_seconds() for r in rows if r.started_at and r.finished_at]
    print(
        f"soak: {jobs} jobs, {workers} workers (1 process each), {in_flight} in flight, PostgreSQL ({database}) + Redis"
    )
    print(
        f"  throughput       {jobs / out['elapsed']:.1f} jobs/s ({out['elapsed']:.1f} s); "
        f"ended: {statuses}; retried: {sum(1 for r in rows if r.attempts > 1)}"
    )
    print(f"  submit->running  p50 {statistics.median(waits) * 1e3:.0f} ms, p99 {_pct(waits, 0.99) * 1e3:.0f} ms")
    print(f"  running->done    p50 {statistics.median(runs) * 1e3:.0f} ms, p99 {_pct(runs, 0.99) * 1e3:.0f} ms")
    grown = out["size_after"] - out["size_before"]
    print(
        f"  database         {out['size_before'] / 2**20:.1f} MiB -> {out['size_after'] / 2**20:.1f} MiB: "
        f"{grown / jobs / 1024:.1f} KiB per job; biggest: "
        + ", ".join(f"{name} {size / 2**20:.1f} MiB" for name, size in out["tables"])
    )
    print("  RSS (MiB, all processes of each)  " + "  ".join(f"{when:>16}" for when in out["memory"]))
    roles = next(iter(out["memory"].values())).keys()
    for role in roles:
        cells = []
        for snapshot in out["memory"].values():
            procs = snapshot.get(role, {})
            cells.append(f"{sum(procs.values()) / 1024:7.1f} ({len(procs)} pr)")
        print(f"    {role:<32}" + "  ".join(f"{c:>16}" for c in cells))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--in-flight", type=int, default=None, help="jobs queued or running at once (2 x workers)")
    ap.add_argument("--pg-admin-url", help="use a fresh database on this server instead of a private one")
    args = ap.parse_args(argv)
    in_flight = args.in_flight or 2 * args.workers

    admin_url = args.pg_admin_url
    if admin_url is None and (why := private_postgres_impossible()):
        print(f"(no private PostgreSQL: {why}; using {SHARED_PG})")
        admin_url = SHARED_PG
    servers = []
    with tempfile.TemporaryDirectory(prefix="convlab-soak-") as tmp:
        try:
            if admin_url:
                db = SharedDatabase(admin_url)
                servers.append(db)
                url, where = db.url, "a fresh database on " + make_url(admin_url).render_as_string()
            else:
                pg = PrivatePostgres("127.0.0.1")
                servers.append(pg)
                pg.start()
                url, where = pg.create_database("convlab"), f"private, port {pg.port}"
            redis = PrivateRedis()
            servers.append(redis)
            redis.start()
            cluster = Cluster(Path(tmp), url, redis.url, **DEFAULT_INTERVALS)
            try:
                cluster.start(workers=args.workers)
                out = soak(cluster, args.jobs, in_flight)
            finally:
                for proc in cluster.workers:  # SIGKILL: an idle worker's SIGTERM is not measured here
                    Cluster.kill(proc)
                cluster.stop()
        finally:
            for server in reversed(servers):
                server.remove()
    report(out, args.jobs, args.workers, in_flight, where)
    return 0


if __name__ == "__main__":
    sys.exit(main())

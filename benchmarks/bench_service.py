"""What the service costs on top of the engine, measured in the same run.

1. Overhead: wall time of a train job through the service (submit over HTTP →
   succeeded, one warm worker) divided by the same spec through `convlab run`
   in a fresh process, interleaved, median of repeats.  Target ≤ 1.05.
2. Latency submit → running (the job's own `created_at` → `started_at`), p50 and
   p99, on the embedded default (SQLite + filesystem broker) and on
   PostgreSQL + Redis.

    python benchmarks/bench_service.py [--repeats 3] [--jobs 40]

Needs PostgreSQL and Redis on their local default ports for the second half
(skipped with a note when they are not there).  Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cluster import Cluster  # noqa: E402

SPEC = json.loads((ROOT / "convlab" / "examples" / "cnn-digits.json").read_text())
PING = json.loads((ROOT / "convlab" / "examples" / "gradcheck.json").read_text())


def _ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def overhead(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        spec_path = home / "spec.json"
        spec_path.write_text(json.dumps(SPEC))
        cluster = Cluster(home, f"sqlite:///{home / 'convlab.db'}", CONVLAB_BLAS_THREADS=str(os.cpu_count()))
        try:
            cluster.start(workers=1)
            client = cluster.client()
            cluster.wait_status(client, client.request("POST", "/jobs", PING)["id"])  # warm the worker
            service, local = [], []
            for _ in range(repeats):
                t = time.perf_counter()
                job = client.request("POST", "/jobs", SPEC)
                done = cluster.wait_status(client, job["id"], timeout=600)
                service.append(time.perf_counter() - t)
                assert done["status"] == "succeeded", done["error"]
                t = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "convlab.cli", "run", str(spec_path)],
                    check=True,
                    capture_output=True,
                    cwd=ROOT,
                )
                local.append(time.perf_counter() - t)
        finally:
            cluster.stop()
    s, l_ = statistics.median(service), statistics.median(local)
    print(f"train job '{SPEC['name']}': service {s:.2f}s, convlab run {l_:.2f}s, overhead ratio {s / l_:.3f}")


def latency(name: str, database_url: str, broker_url: str | None, jobs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp), database_url(Path(tmp)), broker_url)
        try:
            cluster.start(workers=2)
            client = cluster.client()
            lat = []
            for _ in range(jobs):
                job = client.request("POST", "/jobs", PING)
                done = cluster.wait_status(client, job["id"])
                lat.append(_ts(done["started_at"]) - _ts(done["created_at"]))
        finally:
            cluster.stop()
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
    print(f"submit→running on {name}: p50 {statistics.median(lat) * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms ({jobs} jobs)")


def _pg_url(_tmp: Path) -> str:
    from sqlalchemy import create_engine

    admin = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    name = f"convlab_bench_{os.getpid()}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=40)
    args = ap.parse_args(argv)
    overhead(args.repeats)
    latency("embedded (SQLite + filesystem broker)", lambda tmp: f"sqlite:///{tmp / 'convlab.db'}", None, args.jobs)
    try:
        latency("PostgreSQL + Redis", _pg_url, "redis://127.0.0.1:6379/12", args.jobs)
    except Exception as exc:  # noqa: BLE001 - a benchmark reports what it could not measure
        print(f"PostgreSQL + Redis: not measured ({exc})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

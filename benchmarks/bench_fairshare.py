"""Fair share's cost and effect: dispatch latency (submit → running) and throughput with 2 users and
2 workers, on the embedded default (SQLite + filesystem broker).

Load: user ``batch`` submits ``--batch`` small jobs at once; then, while that backlog runs, user
``single`` submits one job at a time, each when their previous one has finished (``--singles``).
Two runs, same load and order:

- ``fair``: as deployed: the two users' jobs are in two lines and fair share chooses between them;
- ``fifo``: every job submitted with ONE user's token (one line, equal priority: dispatch in
  submission order, which is what the queue did before fair share).

It prints, per run, the latency of each user's jobs (the job's own ``created_at`` →
``started_at``, p50 / max) and the throughput (jobs finished per second from the first start to
the last finish, while the workers had work).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_fairshare.py [--batch 30] [--singles 5]

Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cluster import Cluster  # noqa: E402
from tests.helpers import tiny_train_spec  # noqa: E402


def _ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def run(mode: str, batch: int, singles: int, epochs: int) -> dict:
    """One run of the load; the latencies per user and the throughput."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        cluster = Cluster(home, f"sqlite:///{home / 'convlab.db'}", CONVLAB_HEARTBEAT_S="2", CONVLAB_STALE_AFTER_S="30")
        try:
            cluster.start(workers=2)
            big = cluster.client(cluster.token("batch"))
            small = big if mode == "fifo" else cluster.client(cluster.token("single"))
            t0 = time.perf_counter()
            ids = {"batch": [big.submit(tiny_train_spec(epochs=epochs))["id"] for _ in range(batch)], "single": []}
            for _ in range(singles):
                job = small.submit(tiny_train_spec(epochs=1))
                ids["single"].append(job["id"])
                cluster.wait_status(small, job["id"], timeout=900)
            done = [cluster.wait_status(big, j, timeout=1800) for j in ids["batch"]]
            elapsed = time.perf_counter() - t0
            clients = {"batch": big, "single": small}
            jobs = {who: [clients[who].request("GET", f"/jobs/{j}") for j in js] for who, js in ids.items()}
        finally:
            cluster.stop()
    latency = {who: [_ts(j["started_at"]) - _ts(j["created_at"]) for j in js] for who, js in jobs.items()}
    assert all(j["status"] == "succeeded" for j in done)
    every = [j for js in jobs.values() for j in js]
    # While the workers had work: first start to last finish (the wall time also holds the singles'
    # round trips, which differ between the modes).
    busy = max(_ts(j["finished_at"]) for j in every) - min(_ts(j["started_at"]) for j in every)
    return {"latency": latency, "throughput": len(every) / busy, "elapsed": elapsed}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=30, help="jobs of the user with the backlog")
    p.add_argument("--singles", type=int, default=5, help="jobs of the other user, one after another")
    p.add_argument("--epochs", type=int, default=3, help="epochs of each batch job (its run time)")
    a = p.parse_args()
    print(
        f"2 workers, embedded (SQLite + filesystem broker); batch user: {a.batch} jobs of {a.epochs} epochs; "
        f"single user: {a.singles} jobs of 1 epoch, one after another"
    )
    print(
        f"{'mode':6} {'single p50 s':>13} {'single max s':>13} {'batch p50 s':>12} {'batch max s':>12} "
        f"{'jobs/s busy':>12} {'wall s':>7}"
    )
    for mode in ("fifo", "fair"):
        r = run(mode, a.batch, a.singles, a.epochs)
        s, b = r["latency"]["single"], r["latency"]["batch"]
        print(
            f"{mode:6} {statistics.median(s):13.2f} {max(s):13.2f} {statistics.median(b):12.2f} {max(b):12.2f} "
            f"{r['throughput']:12.2f} {r['elapsed']:7.1f}"
        )


if __name__ == "__main__":
    main()

"""A study's throughput on real processes: trials per minute with 1 and with 2 worker processes, the
share of worker time spent inside the engine, and the idle gap between one trial's end and the next
one's start on the same worker (p50, p95).  Prints; asserts nothing.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_study.py [--trials 40] [--epochs 2] [--workers 1,2]

Embedded configuration (SQLite + the filesystem broker) by default; ``--database-url`` and
``--broker-url`` for PostgreSQL + Redis.  Small digits models (8×8 inputs), a random study
with ``max_concurrent`` = the number of workers.  "Inside the engine" is the trainer's own
time (``result.train_seconds``: batches and per-epoch validation), so everything else a worker
does (claim, dataset load and split, test evaluation, metric and checkpoint writes, top-up,
waiting for the next wake-up) counts as outside.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from store.models import Job
from tests.cluster import Cluster, wait_for


def study(trials: int, epochs: int, concurrent: int) -> dict:
    base = {
        "type": "train",
        "name": "bench",
        "model": {
            "input_shape": [1, 8, 8],
            "layers": [
                {"type": "conv", "filters": 8, "kernel": 3, "activation": "relu"},
                {"type": "maxpool", "size": 2},
                {"type": "dense", "units": 10, "activation": "softmax"},
            ],
            "loss": "cross_entropy",
        },
        "data": {"dataset": "digits", "validation_fraction": 0.1, "test_fraction": 0.2},
        "train": {"epochs": epochs, "batch_size": 32, "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9}},
    }
    return {
        "name": "bench",
        "base": base,
        "algorithm": "random",
        "max_trials": trials,
        "max_concurrent": concurrent,
        "space": {
            "train.optimizer.lr": {"type": "log_uniform", "low": 0.01, "high": 0.3},
            "model.layers[0].filters": {"type": "int_uniform", "low": 4, "high": 12},
        },
    }


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


def run(workers: int, trials: int, epochs: int, database_url: str | None, broker_url: str | None) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"bench-study-{workers}-"))
    cluster = Cluster(home, database_url or f"sqlite:///{home / 'convlab.db'}", broker_url)
    try:
        cluster.start(workers=workers)
        client = cluster.client()
        created = client.request("POST", "/studies", study(trials, epochs, workers))
        wait_for(
            lambda: client.request("GET", f"/studies/{created['id']}")["status"] != "running",
            3600,
            "the study to finish",
            interval=0.5,
        )
        with cluster.store.session() as s:
            rows = s.execute(
                select(Job.worker, Job.started_at, Job.finished_at, Job.result, Job.status).where(
                    Job.study_id == created["id"]
                )
            ).all()
    finally:
        cluster.stop()
    start = min(r.started_at for r in rows)
    end = max(r.finished_at for r in rows)
    span = (end - start).total_seconds()
    engine = sum((r.result or {}).get("train_seconds", 0.0) for r in rows)
    gaps = []
    by_worker: dict[str, list] = {}
    for r in rows:
        by_worker.setdefault(r.worker, []).append(r)
    for runs in by_worker.values():
        runs.sort(key=lambda r: r.started_at)
        gaps += [(b.started_at - a.finished_at).total_seconds() for a, b in zip(runs, runs[1:], strict=False)]
    return {
        "workers": workers,
        "trials": len(rows),
        "succeeded": sum(r.status == "succeeded" for r in rows),
        "span_s": span,
        "per_min": len(rows) / span * 60,
        "inside": engine / (span * workers),
        "gap_p50_ms": percentile(gaps, 0.5) * 1000,
        "gap_p95_ms": percentile(gaps, 0.95) * 1000,
        "trial_s": statistics.fmean((r.finished_at - r.started_at).total_seconds() for r in rows),
    }


def main() -> None:
    """Run the study once per worker count and print a table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--database-url")
    p.add_argument("--broker-url")
    a = p.parse_args()
    results = []
    for n in (int(x) for x in a.workers.split(",")):
        t = time.perf_counter()
        results.append(run(n, a.trials, a.epochs, a.database_url, a.broker_url))
        print(f"  ({n} worker(s): {time.perf_counter() - t:.0f} s with start-up)", flush=True)
    print(
        f"{'workers':>7} {'trials':>6} {'ok':>4} {'span s':>7} {'trials/min':>10} {'in engine':>9} "
        f"{'trial s':>7} {'gap p50 ms':>10} {'gap p95 ms':>10}"
    )
    for r in results:
        print(
            f"{r['workers']:>7} {r['trials']:>6} {r['succeeded']:>4} {r['span_s']:>7.1f} {r['per_min']:>10.1f} "
            f"{r['inside']:>9.1%} {r['trial_s']:>7.2f} {r['gap_p50_ms']:>10.0f} {r['gap_p95_ms']:>10.0f}"
        )
    if len(results) > 1:
        print(
            f"speed-up {results[-1]['workers']} vs {results[0]['workers']} worker(s): "
            f"{results[-1]['per_min'] / results[0]['per_min']:.2f}x"
        )


if __name__ == "__main__":
    main()

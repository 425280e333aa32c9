"""A study's throughput on real processes: trials per minute with 1 and with 2 worker processes, the
share of worker time spent inside the engine, the idle gap between one trial's end and the next one's
start on the same worker (p50, p95), and where the rest of a worker's time goes.  Prints; asserts nothing.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_study.py [--trials 40] [--sizes short,realistic]
        [--workers 1,2] [--repeat 1] [--database-url URL --broker-url URL]

Two trial sizes of small digits models (8×8 inputs), each a random study of ``--trials`` trials with
``max_concurrent`` = the number of workers:

- ``short``: one conv layer of 4–12 filters, 2 epochs: ~0.03 s of engine per trial, a toy that
  shows the fixed per-trial cost at its worst;
- ``realistic``: two padded conv layers (24–48 and 64 filters) and 12 epochs: ~1–2 s of engine per
  trial on one BLAS thread, what a sweep over a small digits CNN looks like.

Embedded configuration (SQLite + the filesystem broker) by default; ``--database-url`` and
``--broker-url`` for PostgreSQL + Redis.  The workers run with the deployment's default intervals
(heartbeat, metric flush, checkpoint interval) and one BLAS thread each (checked from the
environment each trial records).

"In engine" is the engine's own work on a worker, from the phases each worker logs per job
(``workers/phases.py``: ``run_job``'s wall time less the time its hooks spent writing to the
database), over the workers' wall time from the first trial's start to the last one's end; the
trainer's loop alone (``result.train_seconds``) is printed beside it.  The breakdown below each
table is the mean per trial of every phase.  Beside the speed-up it prints the CPU each worker process
got (this machine is shared) and the engine alone in 1 and in N processes (no database, no Celery):
the speed-up this machine allows at that moment, before convlab adds anything.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

import store
from store.models import Job
from tests.cluster import Cluster, wait_for
from workers.phases import ORDER, parse

# The deployment's defaults, not the short intervals the fault tests use (tests/cluster.py).
DEFAULTS = {
    "CONVLAB_HEARTBEAT_S": "2",
    "CONVLAB_STALE_AFTER_S": "30",
    "CONVLAB_WORKER_ALIVE_S": "15",
    "CONVLAB_METRICS_FLUSH_S": "0.5",
    "CONVLAB_CHECKPOINT_S": "5",
    "CONVLAB_BLAS_THREADS": "1",
}


def base_spec(size: str) -> dict:
    conv = {"type": "conv", "filters": 8, "kernel": 3, "activation": "relu"}
    if size == "short":
        layers = [conv, {"type": "maxpool", "size": 2}]
        epochs = 2
    else:
        layers = [
            {**conv, "padding": 1},
            {"type": "maxpool", "size": 2},
            {**conv, "filters": 64, "padding": 1},
            {"type": "maxpool", "size": 2},
        ]
        epochs = 12
    return {
        "type": "train",
        "name": f"bench-{size}",
        "model": {
            "input_shape": [1, 8, 8],
            "layers": [*layers, {"type": "dense", "units": 10, "activation": "softmax"}],
            "loss": "cross_entropy",
        },
        "data": {"dataset": "digits", "validation_fraction": 0.1, "test_fraction": 0.2},
        "train": {"epochs": epochs, "batch_size": 32, "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9}},
    }


def study(size: str, trials: int, concurrent: int) -> dict:
    filters = {"short": (4, 12), "realistic": (24, 48)}[size]
    return {
        "name": f"bench-{size}",
        "base": base_spec(size),
        "algorithm": "random",
        "max_trials": trials,
        "max_concurrent": concurrent,
        "space": {
            "train.optimizer.lr": {"type": "log_uniform", "low": 0.01, "high": 0.3},
            "model.layers[0].filters": {"type": "int_uniform", "low": filters[0], "high": filters[1]},
        },
    }


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


PHASES = re.compile(r"job (\w+) phases: (.*)$")


def phases_from_logs(logs: Path, job_ids: set[str]) -> dict[str, dict[str, float]]:
    """The phases each worker logged for the study's jobs (``workers.runner``), by job id."""
    out: dict[str, dict[str, float]] = {}
    for path in logs.glob("worker*.log"):
        for line in path.read_text(errors="replace").splitlines():
            m = PHASES.search(line)
            if m and m.group(1) in job_ids:
                out[m.group(1)] = parse(m.group(2))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += [c for c, parent in parents.items() if parent == p]
    return out


def total_cpu(pids: list[int]) -> float:
    total = 0.0
    for p in pids:
        try:
            total += cpu_seconds(p)
        except OSError:
            pass  # gone
    return total


def run(size: str, workers: int, trials: int, database_url: str | None, broker_url: str | None) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"bench-study-{size}-{workers}-"))
    cluster = Cluster(home, database_url or f"sqlite:///{home / 'convlab.db'}", broker_url, **DEFAULTS)
    try:
        cluster.start(workers=workers)
        # The pool processes that run the trials ("host:pid"): how much CPU they got while the study ran.
        pids = [int(w["name"].rsplit(":", 1)[1]) for w in store.live_workers(cluster.store, 15)]
        # Everything else of ours: the API (gunicorn and its workers) and the Celery main processes.
        infra = [d for top in [cluster.api, *cluster.workers] for d in descendants(top.pid) if d not in pids]
        client = cluster.client()
        cpu0, t0 = [cpu_seconds(p) for p in pids], time.monotonic()
        infra0 = total_cpu(infra)
        created = client.request("POST", "/studies", study(size, trials, workers))
        wait_for(
            lambda: client.request("GET", f"/studies/{created['id']}")["status"] != "running",
            3600,
            "the study to finish",
            interval=0.5,
        )
        cpu = [cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
        infra_cpu = total_cpu(infra) - infra0
        wall = time.monotonic() - t0
        load = os.getloadavg()[0]
        with cluster.store.session() as s:
            rows = s.execute(
                select(
                    Job.id, Job.worker, Job.started_at, Job.finished_at, Job.result, Job.status, Job.environment
                ).where(Job.study_id == created["id"])
            ).all()
    finally:
        cluster.stop()
    phases = phases_from_logs(cluster.logs, {r.id for r in rows})
    start = min(r.started_at for r in rows)
    end = max(r.finished_at for r in rows)
    span = (end - start).total_seconds()
    wall_ms = span * workers * 1000
    gaps = []
    by_worker: dict[str, list] = {}
    for r in rows:
        by_worker.setdefault(r.worker, []).append(r)
    for runs in by_worker.values():
        runs.sort(key=lambda r: r.started_at)
        gaps += [(b.started_at - a.finished_at).total_seconds() for a, b in zip(runs, runs[1:], strict=False)]
    mean_phase = {p: sum(ph.get(p, 0.0) for ph in phases.values()) / max(1, len(phases)) for p in ORDER}
    return {
        "size": size,
        "workers": workers,
        "trials": len(rows),
        "succeeded": sum(r.status == "succeeded" for r in rows),
        "span_s": span,
        "per_min": len(rows) / span * 60,
        "inside": sum(ph.get("engine", 0.0) for ph in phases.values()) / wall_ms,
        "loop": sum((r.result or {}).get("train_seconds", 0.0) for r in rows) * 1000 / wall_ms,
        "gap_p50_ms": percentile(gaps, 0.5) * 1000,
        "gap_p95_ms": percentile(gaps, 0.95) * 1000,
        "trial_s": statistics.fmean((r.finished_at - r.started_at).total_seconds() for r in rows),
        "phases": mean_phase,
        "logged": len(phases),
        "blas": sorted({(r.environment or {}).get("blas_threads") for r in rows}, key=str),
        "engine_s": statistics.fmean(ph.get("engine", 0.0) for ph in phases.values()) / 1000,
        "cpu_share": sum(cpu) / (wall * len(pids)),
        "infra_share": infra_cpu / wall,
        "load": load,
    }


def _engine_alone(size: str, trials: int, ready, out) -> None:
    """One process of :func:`engine_ceiling`: run ``trials`` trials with the engine alone, report their mean."""
    import numpy  # noqa: F401 - loaded before the BLAS limit is set (threadpoolctl limits loaded libraries)
    from threadpoolctl import threadpool_limits

    from engine.jobs import run_job
    from engine.spec import validate_job_spec

    threadpool_limits(limits=1)
    spec = base_spec(size)
    low, high = {"short": (4, 12), "realistic": (24, 48)}[size]
    spec["model"]["layers"][0]["filters"] = (low + high) // 2
    spec = validate_job_spec(spec)
    run_job(spec)  # warm up (imports, caches)
    ready.wait()  # every process starts timing together
    t = time.perf_counter()
    for _ in range(trials):
        run_job(spec)
    out.put((time.perf_counter() - t) / trials)


def _engine_time(size: str, processes: int, trials: int) -> float:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    ready, out = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_engine_alone, args=(size, trials, ready, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    times = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return statistics.fmean(times)


def engine_ceiling(size: str, few: int, many: int, rounds: int = 3) -> float:
    """The speed-up of ``many`` over ``few`` processes of the engine alone (no database, no Celery, one BLAS
    thread each): what this machine allows now, before convlab adds anything.  Timed in alternating
    rounds (the machine's other load changes from minute to minute); the median of the rounds' ratios."""
    trials = {"short": 40, "realistic": 4}[size]
    ratios = []
    for _ in range(rounds):
        one, more = _engine_time(size, few, trials), _engine_time(size, many, trials)
        ratios.append(many / few * one / more)
    return statistics.median(ratios)


def show(results: list[dict]) -> None:
    print(
        f"{'size':>9} {'workers':>7} {'trials':>6} {'ok':>4} {'span s':>7} {'trials/min':>10} {'in engine':>9} "
        f"{'loop':>6} {'trial s':>7} {'engine s':>8} {'gap p50 ms':>10} {'gap p95 ms':>10} {'BLAS':>5} "
        f"{'cpu/worker':>10} {'cpu other':>9} {'load':>5}"
    )
    for r in results:
        print(
            f"{r['size']:>9} {r['workers']:>7} {r['trials']:>6} {r['succeeded']:>4} {r['span_s']:>7.1f} "
            f"{r['per_min']:>10.1f} {r['inside']:>9.1%} {r['loop']:>6.1%} {r['trial_s']:>7.2f} {r['engine_s']:>8.3f} "
            f"{r['gap_p50_ms']:>10.0f} {r['gap_p95_ms']:>10.0f} {','.join(map(str, r['blas'])):>5} "
            f"{r['cpu_share']:>10.2f} {r['infra_share']:>9.2f} {r['load']:>5.2f}"
        )
    print(
        "in engine: the engine's share of the workers' wall time (phases); loop: the trainer's loop alone "
        "(result.train_seconds); engine s: the engine's time per trial; cpu/worker: the share of a core each "
        "worker process got while the study ran; cpu other: the cores the rest of convlab used meanwhile "
        "(API, Celery main processes); the machine's other load takes the rest; load: the 1-minute load "
        "average at the end"
    )
    print("mean ms per trial by phase (workers/phases.py):")
    print(f"{'size':>9} {'workers':>7} " + " ".join(f"{p:>10}" for p in ORDER))
    for r in results:
        print(f"{r['size']:>9} {r['workers']:>7} " + " ".join(f"{r['phases'][p]:>10.1f}" for p in ORDER))


def main() -> None:
    """Run the study once per size, worker count and repeat; print the medians."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--sizes", default="short,realistic")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--repeat", type=int, default=1, help="runs of each configuration (medians are printed)")
    p.add_argument(
        "--no-ceiling",
        dest="ceiling",
        action="store_false",
        help="skip timing the engine alone in 1 and in N processes (the machine's own ceiling for the speed-up)",
    )
    p.add_argument("--database-url")
    p.add_argument("--broker-url")
    a = p.parse_args()
    counts = [int(x) for x in a.workers.split(",")]
    results = []
    for size in a.sizes.split(","):
        for n in counts:
            runs = []
            for _ in range(a.repeat):
                t = time.perf_counter()
                runs.append(run(size, n, a.trials, a.database_url, a.broker_url))
                print(
                    f"  ({size}, {n} worker(s): {time.perf_counter() - t:.0f} s with start-up; "
                    f"load average {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
            results.append(median_of(runs))
    ceilings = {}
    if a.ceiling and len(counts) > 1:
        for size in a.sizes.split(","):
            ceilings[size] = engine_ceiling(size, counts[0], counts[-1])
    show(results)
    for size in a.sizes.split(","):
        mine = [r for r in results if r["size"] == size]
        if len(mine) > 1:
            a_, b = mine[0], mine[-1]
            print(
                f"{size}: speed-up {b['workers']} vs {a_['workers']} worker(s): {b['per_min'] / a_['per_min']:.2f}x "
                f"(the engine's time per trial {b['engine_s'] / a_['engine_s']:.2f}x that of {a_['workers']}; "
                f"CPU the workers got: {b['cpu_share'] * b['workers'] / (a_['cpu_share'] * a_['workers']):.2f}x"
                + (f"; the engine alone, no convlab, scales {ceilings[size]:.2f}x here now" if size in ceilings else "")
                + ")"
            )


def median_of(runs: list[dict]) -> dict:
    """Each number as the median over repeated runs of one configuration."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float):
            out[key] = statistics.median(r[key] for r in runs)
    out["phases"] = {p: statistics.median(r["phases"][p] for r in runs) for p in ORDER}
    out["blas"] = sorted({b for r in runs for b in r["blas"]}, key=str)
    return out


if __name__ == "__main__":
    main()

"""Where a worker's time goes, per job: the phases of one run, logged as one line when the job ends.

A study of short trials is the workload that makes a fixed per-job cost
visible (docs/studies.md, "Throughput"); this is what measures it, on every
worker, at the cost of a few clock reads.  ``benchmarks/bench_study.py``
reads the lines back from the workers' logs and prints the breakdown.

Phases (milliseconds):
``wait``   from the end of this process's previous job to the start of this claim: the
           broker's round trip and any time without work (nothing when the task claims
           the next job at once);
``claim``  the claim; ``setup`` watching the job, its environment, loading a checkpoint;
``engine`` the engine's own work: ``run_job``'s wall time less the hooks below;
``metrics``, ``progress``, ``checkpoint``, ``prune``, ``dataset``: the hooks' database work;
``finish`` the terminal write; ``topup`` the study's top-up after a trial.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

ORDER = (
    "wait",
    "claim",
    "setup",
    "engine",
    "metrics",
    "progress",
    "checkpoint",
    "prune",
    "dataset",
    "finish",
    "topup",
)
# The hooks' database work, which runs inside ``run_job`` and is not the engine's.
HOOKS = ("metrics", "progress", "checkpoint", "prune", "dataset")


class PhaseTimes:
    """The time spent in each phase of one job on this worker (milliseconds, summed over repeats)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        self.ms[phase] = self.ms.get(phase, 0.0) + seconds * 1000.0

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - started)

    def run(self, seconds: float) -> None:
        """``run_job`` took ``seconds``: what its hooks did not take was the engine's."""
        hooks = sum(self.ms.get(p, 0.0) for p in HOOKS)
        self.ms["engine"] = self.ms.get("engine", 0.0) + max(0.0, seconds * 1000.0 - hooks)

    def line(self) -> str:
        """``phase=ms`` pairs in a fixed order (the benchmark parses them)."""
        return " ".join(f"{p}={self.ms[p]:.1f}" for p in ORDER if p in self.ms)


def parse(line: str) -> dict[str, float]:
    """The phases of a :meth:`PhaseTimes.line` back as a dict."""
    out = {}
    for pair in line.split():
        name, _, value = pair.partition("=")
        if name in ORDER:
            out[name] = float(value)
    return out

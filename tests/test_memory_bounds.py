"""Every phase of a job stays within the memory its spec was admitted with (issue: a valid spec must
not make a worker allocate more than the bound in evaluation or prediction).

The spec's estimate (``engine.shapes.estimate_batch_memory``) bounds one training batch; evaluation
and prediction therefore run in chunks of that batch.  Measured with ``tracemalloc``, which sees
NumPy's allocations.
"""

from __future__ import annotations

import tracemalloc

import numpy as np

from engine import Network, validate_job_spec
from engine.datasets import load_builtin
from engine.jobs import run_job
from engine.shapes import estimate_batch_memory

MIB = 2**20


def _wide_spec(batch_size: int) -> dict:
    """Wide convolutions on 8×8 digits: about 0.4 MB of activations a sample, so a whole test split
    (360 samples) at once would take over 100 MB where one batch of 4 takes under 2 MB."""
    return validate_job_spec(
        {
            "type": "train",
            "model": {
                "input_shape": [1, 8, 8],
                "layers": [
                    {"type": "conv", "filters": 64, "kernel": 3, "padding": 1, "activation": "relu"},
                    {"type": "conv", "filters": 64, "kernel": 3, "padding": 1, "activation": "relu"},
                    {"type": "dense", "units": 10, "activation": "softmax"},
                ],
                "loss": "cross_entropy",
            },
            "data": {"dataset": "digits", "test_fraction": 0.2, "validation_fraction": 0.1},
            "train": {
                "epochs": 1,
                "batch_size": batch_size,
                "seed": 0,
                "dtype": "float64",
                "optimizer": {"type": "sgd", "lr": 0.05},
            },
        }
    )


def _peak_bytes(fn) -> int:
    """Peak bytes traced while ``fn()`` runs, above what was allocated before it."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_evaluation_runs_in_admitted_chunks():
    spec = _wide_spec(batch_size=4)
    admitted = estimate_batch_memory(spec["model"], 4, "float64")
    net = Network.from_spec(spec["model"], seed=0, dtype="float64")
    x = np.random.default_rng(0).random((720, 1, 8, 8))
    y = np.arange(720) % 10
    whole = _peak_bytes(lambda: net.evaluate(x, y, 720))
    chunked = _peak_bytes(lambda: net.evaluate(x, y, 4))
    assert whole > 20 * admitted  # the split at once would break the bound by far: the test can fail
    assert chunked <= admitted


def test_a_whole_job_stays_within_its_admitted_batch_memory():
    spec = _wide_spec(batch_size=4)
    admitted = estimate_batch_memory(spec["model"], 4, "float64")
    load_builtin("digits")  # the built-in arrays are cached once per process: not the job's to count
    # The job also holds its dataset splits (1,797 digits in float64, under 1 MiB) and its checkpoints.
    slack = 4 * MIB
    peak = _peak_bytes(lambda: run_job(spec))
    assert peak <= admitted + slack, (peak / MIB, admitted / MIB)

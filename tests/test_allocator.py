"""engine/allocator.py: after the first steps, a small training step faults in no fresh pages.

Run in a fresh interpreter (the settings are process-wide and applied at import), without any
``MALLOC_*`` variable, on glibc.  Page faults are counted by the kernel (``ru_minflt``), so the
assertion is on work done, not on time.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

from tests.helpers import skip_or_fail

ROOT = Path(__file__).resolve().parents[1]

STEPS = """
import copy, resource, sys
import numpy as np
from engine import Network, allocator
from engine.optimizers import SGD
model = {
    "input_shape": [1, 28, 28],
    "layers": [
        {"type": "conv", "filters": 20, "kernel": 5, "activation": "relu"},
        {"type": "maxpool", "size": 2},
        {"type": "conv", "filters": 40, "kernel": 5, "activation": "relu"},
        {"type": "maxpool", "size": 2},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ],
    "loss": "cross_entropy",
}
net = Network.from_spec(model, seed=0, dtype="float64")
opt = SGD(net.params, lr=0.01, momentum=0.9)
rng = np.random.default_rng(1)
x, y = rng.random((10, 1, 28, 28)), rng.integers(0, 10, 10)
def step():
    opt.step(net.loss_and_gradients(x, y, training=True)[1])
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(allocator.keep_freed_memory(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(extra_env: dict) -> tuple[bool, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    env.update(extra_env, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", STEPS], env=env, capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied == "True", int(faults)


def _require_glibc():
    if platform.libc_ver()[0] != "glibc":
        skip_or_fail("glibc's mallopt is what engine/allocator.py sets")


def test_small_steps_reuse_their_memory():
    _require_glibc()
    applied, faults = _run({})
    assert applied
    # Each batch-10 step allocates ≈ 1.5 MB in arrays above glibc's default threshold (hundreds
    # of pages); with the settings they come back from the heap.
    assert faults < 50, f"{faults} page faults in 10 steps"


def test_the_process_own_malloc_settings_win():
    _require_glibc()
    applied, faults = _run({"MALLOC_TRIM_THRESHOLD_": str(128 << 10), "MALLOC_MMAP_THRESHOLD_": str(128 << 10)})
    assert not applied
    assert faults > 500, "the test's step no longer allocates enough to tell the settings apart"

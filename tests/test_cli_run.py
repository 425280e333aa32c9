"""`convlab run`: a job in one process, result on stdout, weights in --out, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine import Network
from engine.jobs import weights_from_bytes
from tests.helpers import EXAMPLES, tiny_train_spec

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.processes  # `convlab run` as a child process


def convlab(*args, stdin: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "convlab.cli", *args], input=stdin, capture_output=True, text=True, timeout=600
    )


def test_run_train_writes_result_and_weights(tmp_path):
    spec = tiny_train_spec(epochs=2)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    proc = convlab("run", str(path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "succeeded"
    assert out["result"]["epochs_completed"] == 2
    assert "epoch 2" in proc.stderr  # the progress bar went to stderr
    weights = weights_from_bytes((tmp_path / "out" / "weights.npz").read_bytes())
    net = Network.from_spec(spec["model"])
    net.load_params(weights)  # same keys and shapes as net.params
    assert set(weights) == {"layers.0.W", "layers.0.b", "layers.3.W", "layers.3.b"}


def test_run_gradcheck_and_its_ablation():
    ok = convlab("run", str(EXAMPLES / "gradcheck.json"))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["result"]["passed"] is True
    bad = convlab("run", str(EXAMPLES / "gradcheck-ablation.json"))
    assert bad.returncode == 1
    report = json.loads(bad.stdout)["result"]
    assert report["passed"] is False and report["max_relative_error"] >= 1e-2
    assert "gradcheck failed" in bad.stderr


def test_invalid_spec_gives_field_path_not_traceback():
    spec = tiny_train_spec()
    spec["model"]["input_shape"] = [1, 5, 5]
    spec["data"]["dataset"] = "digits"
    spec["model"]["layers"][0]["kernel"] = 7
    proc = convlab("run", "-", stdin=json.dumps(spec))
    assert proc.returncode == 2
    assert "model.layers[0].kernel: 7 is larger than the 5×5 input" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_malformed_json_is_a_clear_error():
    proc = convlab("run", "-", stdin="{not json")
    assert proc.returncode == 2
    assert "not valid JSON" in proc.stderr and "Traceback" not in proc.stderr


def test_run_on_a_local_npz(tmp_path):
    """An .npz path as data.dataset goes through the safe loader."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (80, 12, 12), dtype=np.uint8)
    y = np.repeat(np.arange(4), 20)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    spec = tiny_train_spec(epochs=1, dataset=str(tmp_path / "d.npz"))
    proc = convlab("run", "-", stdin=json.dumps(spec))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"]["epochs_completed"] == 1


def test_pickled_npz_is_refused(tmp_path):
    np.savez(tmp_path / "evil.npz", X=np.array([object()], dtype=object), y=np.array([0]))
    spec = tiny_train_spec(epochs=1, dataset=str(tmp_path / "evil.npz"))
    proc = convlab("run", "-", stdin=json.dumps(spec))
    assert proc.returncode == 2
    assert "pickled" in proc.stderr and "Traceback" not in proc.stderr


# The real `convlab run` in a child, which then reports what threadpoolctl sees in that same process.
_RUN_THEN_REPORT = """
import json, sys
from threadpoolctl import threadpool_info
from convlab.cli import main
code = main(["run", sys.argv[1]])
print("BLAS=" + json.dumps([lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]),
      file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize("threads", ["1", "2"])
def test_run_applies_the_workers_blas_thread_setting(tmp_path, threads):
    """`convlab run` limits BLAS to CONVLAB_BLAS_THREADS, through the same function as the workers."""
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(tiny_train_spec(epochs=1)))
    env = dict(os.environ, CONVLAB_BLAS_THREADS=threads, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_THEN_REPORT, str(path)], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    reported = json.loads(proc.stderr.rsplit("BLAS=", 1)[1].splitlines()[0])
    assert reported and set(reported) == {int(threads)}

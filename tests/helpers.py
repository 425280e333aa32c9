"""Small helpers shared by the tests (imported explicitly)."""

from __future__ import annotations

import copy
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest
from sqlalchemy import update

from convlab.config import Settings
from store import Store, UserInfo, authenticate, create_token
from store.models import utcnow

EXAMPLES = Path(__file__).resolve().parents[1] / "convlab" / "examples"


def example(name: str) -> dict:
    """A fresh copy of one of the example specs in convlab/examples/ (the dashboard's templates)."""
    return copy.deepcopy(json.loads((EXAMPLES / f"{name}.json").read_text()))


def tiny_train_spec(epochs: int = 2, dataset: str = "synthetic", **train) -> dict:
    """A small, quick training job on the synthetic dataset."""
    spec = {
        "type": "train",
        "name": "tiny",
        "model": {
            "input_shape": [1, 12, 12],
            "layers": [
                {"type": "conv", "filters": 6, "kernel": 3, "activation": "relu"},
                {"type": "maxpool", "size": 2},
                {"type": "dropout", "rate": 0.2},
                {"type": "dense", "units": 4, "activation": "softmax"},
            ],
            "loss": "cross_entropy",
        },
        "data": {"dataset": dataset},
        "train": {
            "epochs": epochs,
            "batch_size": 32,
            "seed": 0,
            "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9},
        },
    }
    spec["train"].update(train)
    return spec


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test (or module) because a real part it needs is missing; under ``CI=true``, fail instead.

    A developer without Redis or Chromium still gets a useful run; CI must never
    pass by skipping the tests that use real processes and services.
    """
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: required, not skipped)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def rel_err(a, b) -> float:
    """``max|a − b| / max(max(|a| + |b|), 1e-300)``: the error relative to the arrays' scale."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shape {a.shape} != {b.shape}"
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a) + np.abs(b))), 1e-300))


# ---------------------------------------------------------------- data layer


def make_user(db: Store, name: str, admin: bool = False) -> UserInfo:
    """A user (created with a token) as the API would see it."""
    return authenticate(db, create_token(db, name, admin=admin))


def job_spec(name: str = "job", type: str = "train", tags: tuple[str, ...] = ()) -> dict:
    """A normalised-looking job spec; the store does not validate specs, it stores them."""
    spec = {
        "type": type,
        "name": name,
        "tags": list(tags),
        "model": {
            "input_shape": [1, 8, 8],
            "layers": [{"type": "dense", "units": 10, "activation": "softmax"}],
            "loss": "cross_entropy",
        },
    }
    if type == "train":
        spec["data"] = {"dataset": "digits", "test_fraction": 0.2, "validation_fraction": 0.1}
        spec["train"] = {
            "epochs": 1,
            "batch_size": 32,
            "seed": 0,
            "dtype": "float32",
            "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.0},
            "weight_decay": 0.0,
        }
    else:
        spec["gradcheck"] = {"batch_size": 2, "eps": 1e-6, "seed": 0, "rotate_kernels": True}
    return spec


def parse_ts(ts: str) -> datetime:
    """An API timestamp back to an aware datetime."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def age(db: Store, model, where, seconds: float) -> None:
    """Move a row's heartbeat ``seconds`` into the past (as if its owner went silent)."""
    with db.session() as s:
        s.execute(update(model).where(where).values(heartbeat_at=utcnow() - timedelta(seconds=seconds)))


def race(n: int, fn):
    """Run ``fn(i)`` in ``n`` threads released together; return their results."""
    barrier = threading.Barrier(n)

    def go(i):
        barrier.wait(timeout=10)
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


def mnist_cnn_spec(name: str, epochs: int = 8, seed: int = 3) -> dict:
    """A small CNN on the real MNIST digits: about a second an epoch, checkpointed after each, so a test
    can interrupt it between checkpoints (fault, chaos and two-host tests)."""
    return {
        "type": "train",
        "name": name,
        "model": {
            "input_shape": [1, 28, 28],
            "layers": [
                {"type": "conv", "filters": 8, "kernel": 5, "activation": "relu"},
                {"type": "maxpool", "size": 2},
                {"type": "dense", "units": 10, "activation": "softmax"},
            ],
            "loss": "cross_entropy",
        },
        "data": {"dataset": "mnist-5k"},
        "train": {
            "epochs": epochs,
            "batch_size": 32,
            "seed": seed,
            "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9},
        },
    }


def run_in_process(spec: dict, blas_threads: int, hooks=None):
    """The engine's outcome of ``spec`` run here, with the BLAS thread count the workers use: the
    uninterrupted run an interrupted job's numbers must equal bit for bit."""
    from threadpoolctl import threadpool_limits

    from engine.jobs import run_job
    from engine.spec import validate_job_spec

    with threadpool_limits(limits=blas_threads):
        return run_job(validate_job_spec(spec), hooks) if hooks is not None else run_job(validate_job_spec(spec))


def sse_events(text: str) -> list[tuple[str, dict]]:
    """The ``(event, data)`` pairs of a Server-Sent Events body (comments and keep-alives left out)."""
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":") and ": " in line)
        if "event" in fields:
            out.append((fields["event"], json.loads(fields["data"])))
    return out


def local_worker_env(tmp_path: Path, **settings) -> tuple[Store, Settings, UserInfo]:
    """A migrated SQLite store under ``tmp_path``, Settings for it with the embedded broker
    (``settings`` override the defaults) and the user alice: what a JobRunner needs in-process."""
    from migrations.runner import upgrade

    url = f"sqlite:///{tmp_path / 'convlab.db'}"
    upgrade(url)
    st = Store.from_url(url)
    config = Settings(home=tmp_path, database_url=url, broker_url="filesystem://", secret_key="k", **settings)
    return st, config, authenticate(st, create_token(st, "alice"))

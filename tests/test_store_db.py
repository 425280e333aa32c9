"""Tests of store/db.py: the engine and JSON encoding of stored values.

Each test runs on SQLite and on PostgreSQL (the ``db`` fixture).
"""

from __future__ import annotations

import numpy as np

from store import claim_job, create_job, finish_job, get_job
from tests.helpers import job_spec, make_user


def test_results_hold_no_nan(db):
    """JSON has no NaN: a diverged loss in a result is stored as null, on both databases; NumPy values
    (what the engine hands back) are stored as plain numbers and lists."""
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    claim_job(db, job["id"], "w1")
    result = {
        "test_loss": float("nan"),
        "curve": [1.0, float("inf")],
        "test_accuracy": np.float64(0.1),
        "confusion_matrix": np.array([[1, 2], [3, 4]]),
        "epochs_completed": np.int64(1),
    }
    assert finish_job(db, job["id"], "failed", result=result, error="diverged")
    assert get_job(db, job["id"], None)["result"] == {
        "test_loss": None,
        "curve": [1.0, None],
        "test_accuracy": 0.1,
        "confusion_matrix": [[1, 2], [3, 4]],
        "epochs_completed": 1,
    }

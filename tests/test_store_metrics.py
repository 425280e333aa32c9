"""Tests of store/metrics.py: metric points, idempotent writes and downsampled reads.

Each test runs on SQLite and on PostgreSQL (the ``db`` fixture).
"""

from __future__ import annotations

import math

import pytest
from sqlalchemy import func, select

from store import create_job, get_metrics, record_metrics
from store.models import MetricPoint
from tests.helpers import job_spec, make_user


def test_metrics_are_idempotent(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    batch = [("train_loss", step, 1.0 / (step + 1)) for step in range(1000)] + [("val_loss", 0, 0.5)]
    assert record_metrics(db, job["id"], batch) == 1001
    assert record_metrics(db, job["id"], batch) == 0  # a replay writes nothing
    assert record_metrics(db, job["id"], [("val_loss", 0, 9.0), ("val_loss", 1, float("nan"))]) == 1
    assert record_metrics(db, job["id"], []) == 0
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(MetricPoint)) == 1002
    series = get_metrics(db, job["id"])
    assert series["val_loss"] == [[0, 0.5], [1, None]]  # first write wins; NaN is null
    assert series["train_loss"][:2] == [[0, 1.0], [1, 0.5]] and len(series["train_loss"]) == 1000
    assert list(get_metrics(db, job["id"], names=["val_loss"])) == ["val_loss"]
    assert get_metrics(db, job["id"], names=["nothing"]) == {}


@pytest.mark.slow  # writes 100,000 points
def test_downsampling_keeps_a_single_spike(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    n, spike, dip = 100_000, 54_321, 77_777
    values = [1.0 + 0.1 * math.sin(i / 500) for i in range(n)]
    values[spike], values[dip] = 1000.0, -50.0
    record_metrics(db, job["id"], [("train_loss", i, v) for i, v in enumerate(values)])
    record_metrics(db, job["id"], [("val_loss", i, float(i)) for i in range(10)])

    series = get_metrics(db, job["id"], max_points=500)
    loss = series["train_loss"]
    assert 2 < len(loss) <= 500
    steps = [s for s, _ in loss]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert [spike, 1000.0] in loss and [dip, -50.0] in loss
    assert all(values[s] == v for s, v in loss)  # real points, not averages
    assert steps[0] < 200 and steps[-1] > n - 200  # the whole range is covered
    assert series["val_loss"] == [[i, float(i)] for i in range(10)]  # short series untouched
    with pytest.raises(ValueError):
        get_metrics(db, job["id"], max_points=1)

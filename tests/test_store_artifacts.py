"""Tests of store/artifacts.py: job artifacts.

Each test runs on SQLite and on PostgreSQL (the ``db`` fixture).
"""

from __future__ import annotations

from store import create_job, load_artifact, save_artifact
from tests.helpers import job_spec, make_user


def test_artifacts_upsert(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    assert load_artifact(db, job["id"], "weights.npz") is None
    save_artifact(db, job["id"], "weights.npz", b"one")
    save_artifact(db, job["id"], "checkpoint.npz", b"\x00" * 1000)
    save_artifact(db, job["id"], "weights.npz", b"two!")
    assert load_artifact(db, job["id"], "weights.npz") == b"two!"
    assert load_artifact(db, job["id"], "checkpoint.npz") == b"\x00" * 1000

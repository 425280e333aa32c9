"""Tests of store/workers.py: worker heartbeats and liveness.

Each test runs on SQLite and on PostgreSQL (the ``db`` fixture).
"""
from __future__ import annotations

from store import live_workers, remove_stale_workers, remove_worker, worker_heartbeat
from store.models import Worker
from tests.helpers import age


def test_workers_heartbeat_and_liveness(db):
    worker_heartbeat(db, "host:1", "host", 1, None)
    worker_heartbeat(db, "host:2", "host", 2, None)
    worker_heartbeat(db, "host:1", "host", 1, "a" * 32)                  # upsert, not a second row
    live = live_workers(db, 30)
    assert [(w["name"], w["job_id"]) for w in live] == [("host:1", "a" * 32), ("host:2", None)]
    assert all(set(w) == {"name", "heartbeat_age_s", "job_id"} and 0 <= w["heartbeat_age_s"] < 30 for w in live)
    age(db, Worker, Worker.name == "host:2", 120)
    assert [w["name"] for w in live_workers(db, 30)] == ["host:1"]
    assert remove_stale_workers(db, 60) == 1
    remove_worker(db, "host:1")
    assert live_workers(db, 3600) == []

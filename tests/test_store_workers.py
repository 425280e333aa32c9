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
    worker_heartbeat(db, "host:1", "host", 1, "a" * 32)  # upsert, not a second row
    live = live_workers(db, 30)
    assert [(w["name"], w["job_id"]) for w in live] == [("host:1", "a" * 32), ("host:2", None)]
    assert all(set(w) == {"name", "heartbeat_age_s", "busy", "job_id"} and 0 <= w["heartbeat_age_s"] < 30 for w in live)
    age(db, Worker, Worker.name == "host:2", 120)
    assert [w["name"] for w in live_workers(db, 30)] == ["host:1"]
    assert remove_stale_workers(db, 60) == 1
    remove_worker(db, "host:1")
    assert live_workers(db, 3600) == []


def test_only_admins_and_the_owner_see_a_workers_job_id(db):
    from store import create_job
    from tests.helpers import job_spec, make_user

    alice, bob, root = make_user(db, "alice"), make_user(db, "bob"), make_user(db, "root", admin=True)
    job = create_job(db, alice.id, job_spec())
    worker_heartbeat(db, "host:1", "host", 1, job["id"])
    worker_heartbeat(db, "host:2", "host", 2, None)
    seen = {v.name: [(w["busy"], w["job_id"]) for w in live_workers(db, 30, viewer=v)] for v in (alice, bob, root)}
    assert seen == {
        "alice": [(True, job["id"]), (False, None)],
        "bob": [(True, None), (False, None)],
        "root": [(True, job["id"]), (False, None)],
    }

"""Tests of store/jobs.py: the job lifecycle (create, list, claim, finish, cancel, reap, republish) and the queue.

Each test runs on SQLite and on PostgreSQL (the ``db`` fixture).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from store import (
    claim_job,
    count_by_status,
    create_job,
    finish_job,
    get_job,
    heartbeat,
    job_durations,
    list_jobs,
    load_artifact,
    queue_position,
    reap_stale_jobs,
    release_job,
    request_cancel,
    requeue_job,
    save_artifact,
    update_progress,
)
from store.models import Job, utcnow
from tests.helpers import age, job_spec, make_user, parse_ts, race

JOB_FIELDS = {
    "id",
    "type",
    "name",
    "tags",
    "status",
    "spec",
    "result",
    "error",
    "attempts",
    "progress",
    "created_at",
    "started_at",
    "finished_at",
    "user",
    "cancel_requested",
    "study_id",
    "trial_number",
    "params",
    "environment",
    "triage",
    "reproduces",
    "certificate",
    "worker",
}  # docs/trust.md


def test_create_and_get_job(db):
    alice, bob = make_user(db, "alice"), make_user(db, "bob")
    admin = make_user(db, "root", admin=True)
    job = create_job(db, alice.id, job_spec("lenet", tags=("baseline", "mnist")))
    assert set(job) == JOB_FIELDS
    assert len(job["id"]) == 32 and job["status"] == "queued" and job["attempts"] == 0
    assert (job["type"], job["name"], job["tags"], job["user"]) == ("train", "lenet", ["baseline", "mnist"], "alice")
    assert job["progress"] == {"epoch": 0, "step": 0, "total_steps": 0}
    assert job["result"] is None and job["error"] is None and job["cancel_requested"] is False
    assert job["created_at"].endswith("Z") and abs(utcnow() - parse_ts(job["created_at"])) < timedelta(minutes=1)
    assert job["started_at"] is None and job["finished_at"] is None
    assert job["spec"] == job_spec("lenet", tags=("baseline", "mnist"))

    assert get_job(db, job["id"], alice) == job
    assert get_job(db, job["id"], bob) is None  # not bob's
    assert get_job(db, job["id"], admin) == job  # admins see all
    assert get_job(db, job["id"], None) == job  # internal callers too
    assert get_job(db, "0" * 32, alice) is None


def test_list_filters_pagination_and_visibility(db):
    alice, bob = make_user(db, "alice"), make_user(db, "bob")
    admin = make_user(db, "root", admin=True)
    a1 = create_job(db, alice.id, job_spec("LeNet-small-mnist", tags=("baseline",)))
    a2 = create_job(db, alice.id, job_spec("grad 100%", type="gradcheck", tags=("baseline", "check")))
    a3 = create_job(db, alice.id, job_spec("lenet_small"))
    b1 = create_job(db, bob.id, job_spec("bob-lenet", tags=("baseline",)))
    claim_job(db, a3["id"], "w1")

    def ids(**kw):
        jobs, total = list_jobs(db, kw.pop("user", alice), **kw)
        assert total >= len(jobs)
        return [j["id"] for j in jobs], total

    assert ids() == ([a3["id"], a2["id"], a1["id"]], 3)  # newest first, own jobs only
    assert ids(user=bob) == ([b1["id"]], 1)
    assert ids(user=admin)[1] == 4
    assert ids(status="running") == ([a3["id"]], 1)
    assert ids(status="queued") == ([a2["id"], a1["id"]], 2)
    assert ids(type="gradcheck") == ([a2["id"]], 1)
    assert ids(tag="baseline") == ([a2["id"], a1["id"]], 2)
    assert ids(tag="check", type="train") == ([], 0)
    assert ids(tag="nope") == ([], 0)
    assert ids(search="LENET") == ([a3["id"], a1["id"]], 2)  # case-insensitive substring
    assert ids(search="%") == ([a2["id"]], 1)  # wildcards are literal
    assert ids(search="t_s") == ([a3["id"]], 1)
    assert ids(search=a1["id"][:8]) == ([a1["id"]], 1)  # id prefix
    assert ids(user=admin, search="lenet", tag="baseline") == ([b1["id"], a1["id"]], 2)
    assert ids(limit=2) == ([a3["id"], a2["id"]], 3)
    assert ids(limit=2, offset=2) == ([a1["id"]], 3)
    assert ids(limit=2, offset=5) == ([], 3)
    with pytest.raises(ValueError):
        list_jobs(db, alice, limit=-1)


def test_claim_sets_running_once(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    claimed = claim_job(db, job["id"], "host:1")
    assert claimed["status"] == "running" and claimed["attempts"] == 1
    assert claimed["started_at"].endswith("Z")
    assert claim_job(db, job["id"], "host:2") is None
    assert claim_job(db, "0" * 32, "host:2") is None
    assert get_job(db, job["id"], None) == claimed


def test_claim_race_has_exactly_one_winner(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    results = race(8, lambda i: claim_job(db, job["id"], f"host:{i}"))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    after = get_job(db, job["id"], None)
    assert after["attempts"] == 1 and after["status"] == "running"
    with db.session() as s:
        assert s.scalar(select(Job.worker)) == f"host:{results.index(winners[0])}"


def test_finish_only_from_running_and_only_once(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    assert not finish_job(db, job["id"], "succeeded")  # still queued
    claim_job(db, job["id"], "w1")
    assert not finish_job(db, job["id"], "succeeded", worker="w2")  # not that worker's
    with pytest.raises(ValueError):
        finish_job(db, job["id"], "running")
    assert finish_job(db, job["id"], "succeeded", result={"test_accuracy": 0.9}, worker="w1")
    assert not finish_job(db, job["id"], "failed", error="late")
    done = get_job(db, job["id"], None)
    assert done["status"] == "succeeded" and done["result"] == {"test_accuracy": 0.9} and done["error"] is None
    assert parse_ts(done["finished_at"]) >= parse_ts(done["started_at"])


def test_finish_race_has_exactly_one_winner(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    claim_job(db, job["id"], "w1")
    statuses = ["succeeded", "failed", "cancelled", "succeeded", "failed", "cancelled"]
    results = race(len(statuses), lambda i: finish_job(db, job["id"], statuses[i], error=str(i)))
    assert results.count(True) == 1
    winner = results.index(True)
    done = get_job(db, job["id"], None)
    assert (done["status"], done["error"]) == (statuses[winner], str(winner))


def test_progress_and_heartbeat_only_while_running_on_that_worker(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    assert not update_progress(db, job["id"], 1, 10, 100)
    assert heartbeat(db, job["id"], "w1") == "lost"
    claim_job(db, job["id"], "w1")
    assert update_progress(db, job["id"], 1, 10, 100, worker="w1")
    assert not update_progress(db, job["id"], 2, 20, 100, worker="w2")
    assert get_job(db, job["id"], None)["progress"] == {"epoch": 1, "step": 10, "total_steps": 100}
    assert heartbeat(db, job["id"], "w1") == "ok"
    assert heartbeat(db, job["id"], "w2") == "lost"
    finish_job(db, job["id"], "succeeded")
    assert heartbeat(db, job["id"], "w1") == "lost"


def test_cancel_queued_running_and_finished(db):
    alice, bob = make_user(db, "alice"), make_user(db, "bob")
    queued = create_job(db, alice.id, job_spec("q"))
    running = create_job(db, alice.id, job_spec("r"))
    claim_job(db, running["id"], "w1")

    assert request_cancel(db, queued["id"], bob) is None  # not visible to bob
    assert request_cancel(db, "0" * 32, alice) is None
    assert request_cancel(db, queued["id"], alice) == "cancelled"
    q = get_job(db, queued["id"], None)
    assert q["status"] == "cancelled" and q["finished_at"] is not None
    assert claim_job(db, queued["id"], "w2") is None  # a late message is dropped

    assert request_cancel(db, running["id"], alice) == "requested"
    r = get_job(db, running["id"], None)
    assert r["status"] == "running" and r["cancel_requested"] and r["finished_at"] is None
    assert heartbeat(db, running["id"], "w1") == "cancel"
    assert finish_job(db, running["id"], "cancelled", worker="w1")

    assert request_cancel(db, running["id"], alice) == "finished"
    assert request_cancel(db, queued["id"], alice) == "finished"
    assert get_job(db, queued["id"], None)["status"] == "cancelled"


def test_reap_requeues_then_fails_after_max_attempts(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    fresh = create_job(db, alice.id, job_spec("fresh"))
    claim_job(db, fresh["id"], "w-alive")
    jid = job["id"]
    for attempt in (1, 2):
        assert claim_job(db, jid, f"w{attempt}")["attempts"] == attempt
        assert reap_stale_jobs(db, 60) == []  # heartbeat is recent
        age(db, Job, Job.id == jid, 120)
        assert reap_stale_jobs(db, 60) == [(jid, "queued")]
        j = get_job(db, jid, None)
        assert j["status"] == "queued" and j["finished_at"] is None and j["error"] is None
        assert heartbeat(db, jid, f"w{attempt}") == "lost"  # the old worker must stop
    claim_job(db, jid, "w3")
    age(db, Job, Job.id == jid, 120)
    assert reap_stale_jobs(db, 60) == [(jid, "failed")]
    j = get_job(db, jid, None)
    assert (j["status"], j["error"], j["attempts"]) == ("failed", "worker lost (3 attempts)", 3)
    assert j["finished_at"] is not None
    assert reap_stale_jobs(db, 60) == []
    assert get_job(db, fresh["id"], None)["status"] == "running"


def test_reaping_a_job_with_a_pending_cancel_cancels_it(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    claim_job(db, job["id"], "w1")
    request_cancel(db, job["id"], alice)
    age(db, Job, Job.id == job["id"], 120)
    assert reap_stale_jobs(db, 60) == [(job["id"], "cancelled")]


def test_release_job_hands_back_without_counting_the_attempt(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    claim_job(db, job["id"], "w1")
    assert release_job(db, job["id"], "w2") is None  # not its worker
    assert release_job(db, job["id"], "w1") == "queued"
    j = get_job(db, job["id"], None)
    assert (j["status"], j["attempts"]) == ("queued", 0)
    claim_job(db, job["id"], "w3")
    request_cancel(db, job["id"], alice)
    assert release_job(db, job["id"], "w3") == "cancelled"


def test_artifacts_and_finish_are_written_only_by_the_owner(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    claim_job(db, job["id"], "w1")
    assert save_artifact(db, job["id"], "checkpoint.npz", b"a", worker="w1")
    assert not save_artifact(db, job["id"], "checkpoint.npz", b"b", worker="w2")
    assert load_artifact(db, job["id"], "checkpoint.npz") == b"a"
    assert not finish_job(db, job["id"], "succeeded", worker="w2", artifacts={"weights.npz": b"w"})
    assert load_artifact(db, job["id"], "weights.npz") is None
    assert finish_job(db, job["id"], "succeeded", worker="w1", artifacts={"weights.npz": b"w"})
    assert load_artifact(db, job["id"], "weights.npz") == b"w"


def test_requeue_job(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    assert requeue_job(db, job["id"]) is None  # not running
    claim_job(db, job["id"], "w1")
    assert requeue_job(db, job["id"], worker="w2") is None
    assert requeue_job(db, job["id"], worker="w1") == "queued"
    again = claim_job(db, job["id"], "w2")
    assert again["attempts"] == 2 and again["started_at"] is not None


def test_queue_position_counts_and_durations(db):
    alice = make_user(db, "alice")
    jobs = [create_job(db, alice.id, job_spec(f"j{i}")) for i in range(4)]
    assert [queue_position(db, j["id"]) for j in jobs] == [1, 2, 3, 4]
    claim_job(db, jobs[0]["id"], "w1")
    request_cancel(db, jobs[2]["id"], alice)
    assert [queue_position(db, j["id"]) for j in jobs] == [None, 1, None, 2]
    finish_job(db, jobs[0]["id"], "succeeded")
    assert count_by_status(db) == {"queued": 2, "running": 0, "succeeded": 1, "failed": 0, "cancelled": 1, "pruned": 0}
    durations = job_durations(db)
    assert len(durations) == 1 and 0 <= durations[0] < 60  # the never-started cancel is left out

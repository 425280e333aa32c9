"""The database as the queue of record (store.claim_next_job), on SQLite and on PostgreSQL.

Claim order is the order of submission, a job handed back or reaped keeps its
place, concurrent claimers never share a job, and a worker whose job was taken
away cannot write its metrics any more.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from store import (
    claim_next_job,
    count_queued,
    create_job,
    finish_job,
    get_job,
    get_metrics,
    queue_position,
    reap_stale_jobs,
    record_metrics,
    release_job,
    request_cancel,
)
from store.models import Job, utcnow
from tests.helpers import job_spec, make_user, race


def _submitted(db, n: int, prefix: str = "job") -> list[str]:
    """``n`` queued jobs, submitted one second apart (so their order never depends on the clock's resolution)."""
    alice = make_user(db, "alice")
    ids = [create_job(db, alice.id, job_spec(f"{prefix}{i}"))["id"] for i in range(n)]
    start = utcnow() - timedelta(hours=1)
    with db.session() as s:
        for i, job_id in enumerate(ids):
            s.execute(update(Job).where(Job.id == job_id).values(created_at=start + timedelta(seconds=i)))
    return ids


def test_jobs_are_claimed_in_submission_order(db):
    ids = _submitted(db, 4)
    assert count_queued(db) == 4
    claimed = [claim_next_job(db, f"w{i}")["id"] for i in range(4)]
    assert claimed == ids
    assert claim_next_job(db, "w9") is None  # a wake-up that finds nothing
    assert count_queued(db) == 0


def test_handed_back_and_reaped_jobs_keep_their_place(db):
    first, second, third = _submitted(db, 3)
    assert claim_next_job(db, "w1")["id"] == first
    assert claim_next_job(db, "w2")["id"] == second
    assert release_job(db, first, "w1") == "queued"  # a worker shutting down
    with db.session() as s:  # w2 went silent
        s.execute(update(Job).where(Job.id == second).values(heartbeat_at=utcnow() - timedelta(seconds=120)))
    assert reap_stale_jobs(db, 60) == [(second, "queued")]
    assert [queue_position(db, j) for j in (first, second, third)] == [1, 2, 3]
    assert [claim_next_job(db, f"w{i}")["id"] for i in (3, 4, 5)] == [first, second, third]


def test_cancelled_jobs_are_skipped(db):
    first, second = _submitted(db, 2)
    assert request_cancel(db, first, None) == "cancelled"
    assert claim_next_job(db, "w1")["id"] == second


def test_concurrent_claimers_share_no_job_and_leave_none(db):
    """Twelve claimers, eight jobs: each job is claimed exactly once, by one claimer, one attempt."""
    ids = _submitted(db, 8)
    results = race(12, lambda i: claim_next_job(db, f"host:{i}"))
    won = [r["id"] for r in results if r is not None]
    assert sorted(won) == sorted(ids)
    assert results.count(None) == 4
    for job_id in ids:
        job = get_job(db, job_id, None)
        assert job["status"] == "running" and job["attempts"] == 1


def test_a_claim_whose_answer_was_lost_is_found_again(db):
    """A claim can commit and its connection drop before the answer: retried with resume_own,
    the worker gets that same job back (attempt counted once), not a second one."""
    first, second = _submitted(db, 2)
    assert claim_next_job(db, "host:1")["id"] == first
    again = claim_next_job(db, "host:1", resume_own=True)
    assert again["id"] == first and again["attempts"] == 1
    assert get_job(db, second, None)["status"] == "queued"
    assert claim_next_job(db, "host:2", resume_own=True)["id"] == second  # nothing of its own: next job


def test_metrics_of_a_worker_that_lost_its_job_are_refused(db):
    (job_id,) = _submitted(db, 1)
    claim_next_job(db, "w1")
    assert record_metrics(db, job_id, [("train_loss", 1, 0.5)], worker="w1") == 1
    with db.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=120)))
    reap_stale_jobs(db, 60)
    assert claim_next_job(db, "w2")["id"] == job_id
    assert record_metrics(db, job_id, [("train_loss", 2, 9.9)], worker="w1") is None  # fenced
    assert record_metrics(db, job_id, [("train_loss", 1, 0.5), ("train_loss", 2, 0.4)], worker="w2") == 1
    assert get_metrics(db, job_id)["train_loss"] == [[1, 0.5], [2, 0.4]]
    assert finish_job(db, job_id, "succeeded", worker="w2")

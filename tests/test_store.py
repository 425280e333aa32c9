"""Tests of the data layer (store/), each on SQLite and on PostgreSQL."""
from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import func, select, update
from store_fixtures import db, job_spec, make_user, pg_databases, pg_store_url  # noqa: F401

from store import (
    UserInfo, authenticate, claim_job, get_user, count_by_status, create_job, create_token, finish_job, get_dataset, get_job,
    get_metrics, heartbeat, job_durations, list_datasets, list_jobs, live_workers, load_artifact,
    load_dataset_bytes, queue_position, reap_stale_jobs, release_job, record_metrics, remove_stale_workers,
    remove_worker, request_cancel, requeue_job, save_artifact, save_dataset, update_progress,
    worker_heartbeat,
)
from store.models import ApiToken, Job, MetricPoint, Worker, utcnow

JOB_FIELDS = {"id", "type", "name", "tags", "status", "spec", "result", "error", "attempts", "progress",
              "created_at", "started_at", "finished_at", "user", "cancel_requested"}


def _parse(ts: str) -> datetime:
    """An API timestamp back to an aware datetime."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _age(db, model, where, seconds: float) -> None:
    """Move a row's heartbeat ``seconds`` into the past (as if its owner went silent)."""
    with db.session() as s:
        s.execute(update(model).where(where).values(heartbeat_at=utcnow() - timedelta(seconds=seconds)))


def _race(n: int, fn):
    """Run ``fn(i)`` in ``n`` threads released together; return their results."""
    barrier = threading.Barrier(n)

    def go(i):
        barrier.wait(timeout=10)
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


# ---------------------------------------------------------------- tokens

def test_token_authenticates_its_user_only(db):
    token = create_token(db, "alice")
    assert token.startswith("cl_") and len(token) > 40
    user = authenticate(db, token)
    assert user is not None and user.name == "alice" and not user.is_admin
    assert authenticate(db, token + "x") is None
    assert authenticate(db, "") is None and authenticate(db, None) is None

    # A second token belongs to the same user; admin=True promotes, admin=False never demotes.
    assert authenticate(db, create_token(db, "alice", admin=True)) == UserInfo(user.id, "alice", True)
    assert authenticate(db, create_token(db, "alice")).is_admin
    with db.session() as s:
        tokens = s.scalars(select(ApiToken)).all()
    assert len(tokens) == 3
    assert all(len(t.token_hash) == 64 and token not in t.token_hash for t in tokens)
    assert token[:12] in {t.prefix for t in tokens}


def test_last_used_is_written_at_most_once_a_minute(db):
    token = create_token(db, "alice")
    with db.session() as s:
        assert s.scalar(select(ApiToken.last_used_at)) is None
    authenticate(db, token)
    with db.session() as s:
        first = s.scalar(select(ApiToken.last_used_at))
    authenticate(db, token)
    with db.session() as s:
        assert s.scalar(select(ApiToken.last_used_at)) == first
        assert first.tzinfo is not None and abs(utcnow() - first) < timedelta(minutes=1)


# ---------------------------------------------------------------- create / get / list

def test_create_and_get_job(db):
    alice, bob = make_user(db, "alice"), make_user(db, "bob")
    admin = make_user(db, "root", admin=True)
    job = create_job(db, alice.id, job_spec("lenet", tags=("baseline", "mnist")))
    assert set(job) == JOB_FIELDS
    assert len(job["id"]) == 32 and job["status"] == "queued" and job["attempts"] == 0
    assert (job["type"], job["name"], job["tags"], job["user"]) == ("train", "lenet", ["baseline", "mnist"], "alice")
    assert job["progress"] == {"epoch": 0, "step": 0, "total_steps": 0}
    assert job["result"] is None and job["error"] is None and job["cancel_requested"] is False
    assert job["created_at"].endswith("Z") and abs(utcnow() - _parse(job["created_at"])) < timedelta(minutes=1)
    assert job["started_at"] is None and job["finished_at"] is None
    assert job["spec"] == job_spec("lenet", tags=("baseline", "mnist"))

    assert get_job(db, job["id"], alice) == job
    assert get_job(db, job["id"], bob) is None          # not bob's
    assert get_job(db, job["id"], admin) == job         # admins see all
    assert get_job(db, job["id"], None) == job          # internal callers too
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

    assert ids() == ([a3["id"], a2["id"], a1["id"]], 3)                 # newest first, own jobs only
    assert ids(user=bob) == ([b1["id"]], 1)
    assert ids(user=admin)[1] == 4
    assert ids(status="running") == ([a3["id"]], 1)
    assert ids(status="queued") == ([a2["id"], a1["id"]], 2)
    assert ids(type="gradcheck") == ([a2["id"]], 1)
    assert ids(tag="baseline") == ([a2["id"], a1["id"]], 2)
    assert ids(tag="check", type="train") == ([], 0)
    assert ids(tag="nope") == ([], 0)
    assert ids(search="LENET") == ([a3["id"], a1["id"]], 2)             # case-insensitive substring
    assert ids(search="%") == ([a2["id"]], 1)                            # wildcards are literal
    assert ids(search="t_s") == ([a3["id"]], 1)
    assert ids(search=a1["id"][:8]) == ([a1["id"]], 1)                   # id prefix
    assert ids(user=admin, search="lenet", tag="baseline") == ([b1["id"], a1["id"]], 2)
    assert ids(limit=2) == ([a3["id"], a2["id"]], 3)
    assert ids(limit=2, offset=2) == ([a1["id"]], 3)
    assert ids(limit=2, offset=5) == ([], 3)
    with pytest.raises(ValueError):
        list_jobs(db, alice, limit=-1)


# ---------------------------------------------------------------- claim / finish

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
    results = _race(8, lambda i: claim_job(db, job["id"], f"host:{i}"))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    after = get_job(db, job["id"], None)
    assert after["attempts"] == 1 and after["status"] == "running"
    with db.session() as s:
        assert s.scalar(select(Job.worker)) == f"host:{results.index(winners[0])}"


def test_finish_only_from_running_and_only_once(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    assert not finish_job(db, job["id"], "succeeded")                    # still queued
    claim_job(db, job["id"], "w1")
    assert not finish_job(db, job["id"], "succeeded", worker="w2")       # not that worker's
    with pytest.raises(ValueError):
        finish_job(db, job["id"], "running")
    assert finish_job(db, job["id"], "succeeded", result={"test_accuracy": 0.9}, worker="w1")
    assert not finish_job(db, job["id"], "failed", error="late")
    done = get_job(db, job["id"], None)
    assert done["status"] == "succeeded" and done["result"] == {"test_accuracy": 0.9} and done["error"] is None
    assert _parse(done["finished_at"]) >= _parse(done["started_at"])


def test_results_hold_no_nan(db):
    """JSON has no NaN: a diverged loss in a result is stored as null, on both databases; NumPy values
    (what the engine hands back) are stored as plain numbers and lists."""
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    claim_job(db, job["id"], "w1")
    result = {"test_loss": float("nan"), "curve": [1.0, float("inf")], "test_accuracy": np.float64(0.1),
              "confusion_matrix": np.array([[1, 2], [3, 4]]), "epochs_completed": np.int64(1)}
    assert finish_job(db, job["id"], "failed", result=result, error="diverged")
    assert get_job(db, job["id"], None)["result"] == {"test_loss": None, "curve": [1.0, None], "test_accuracy": 0.1,
                                                      "confusion_matrix": [[1, 2], [3, 4]], "epochs_completed": 1}


def test_finish_race_has_exactly_one_winner(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    claim_job(db, job["id"], "w1")
    statuses = ["succeeded", "failed", "cancelled", "succeeded", "failed", "cancelled"]
    results = _race(len(statuses), lambda i: finish_job(db, job["id"], statuses[i], error=str(i)))
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


# ---------------------------------------------------------------- cancel

def test_cancel_queued_running_and_finished(db):
    alice, bob = make_user(db, "alice"), make_user(db, "bob")
    queued = create_job(db, alice.id, job_spec("q"))
    running = create_job(db, alice.id, job_spec("r"))
    claim_job(db, running["id"], "w1")

    assert request_cancel(db, queued["id"], bob) is None                 # not visible to bob
    assert request_cancel(db, "0" * 32, alice) is None
    assert request_cancel(db, queued["id"], alice) == "cancelled"
    q = get_job(db, queued["id"], None)
    assert q["status"] == "cancelled" and q["finished_at"] is not None
    assert claim_job(db, queued["id"], "w2") is None                     # a late message is dropped

    assert request_cancel(db, running["id"], alice) == "requested"
    r = get_job(db, running["id"], None)
    assert r["status"] == "running" and r["cancel_requested"] and r["finished_at"] is None
    assert heartbeat(db, running["id"], "w1") == "cancel"
    assert finish_job(db, running["id"], "cancelled", worker="w1")

    assert request_cancel(db, running["id"], alice) == "finished"
    assert request_cancel(db, queued["id"], alice) == "finished"
    assert get_job(db, queued["id"], None)["status"] == "cancelled"


# ---------------------------------------------------------------- stale jobs

def test_reap_requeues_then_fails_after_max_attempts(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    fresh = create_job(db, alice.id, job_spec("fresh"))
    claim_job(db, fresh["id"], "w-alive")
    jid = job["id"]
    for attempt in (1, 2):
        assert claim_job(db, jid, f"w{attempt}")["attempts"] == attempt
        assert reap_stale_jobs(db, 60) == []                             # heartbeat is recent
        _age(db, Job, Job.id == jid, 120)
        assert reap_stale_jobs(db, 60) == [(jid, "queued")]
        j = get_job(db, jid, None)
        assert j["status"] == "queued" and j["finished_at"] is None and j["error"] is None
        assert heartbeat(db, jid, f"w{attempt}") == "lost"              # the old worker must stop
    claim_job(db, jid, "w3")
    _age(db, Job, Job.id == jid, 120)
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
    _age(db, Job, Job.id == job["id"], 120)
    assert reap_stale_jobs(db, 60) == [(job["id"], "cancelled")]


def test_release_job_hands_back_without_counting_the_attempt(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    claim_job(db, job["id"], "w1")
    assert release_job(db, job["id"], "w2") is None                  # not its worker
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
    assert requeue_job(db, job["id"]) is None                            # not running
    claim_job(db, job["id"], "w1")
    assert requeue_job(db, job["id"], worker="w2") is None
    assert requeue_job(db, job["id"], worker="w1") == "queued"
    again = claim_job(db, job["id"], "w2")
    assert again["attempts"] == 2 and again["started_at"] is not None


# ---------------------------------------------------------------- metrics

def test_metrics_are_idempotent(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    batch = [("train_loss", step, 1.0 / (step + 1)) for step in range(1000)] + [("val_loss", 0, 0.5)]
    assert record_metrics(db, job["id"], batch) == 1001
    assert record_metrics(db, job["id"], batch) == 0                     # a replay writes nothing
    assert record_metrics(db, job["id"], [("val_loss", 0, 9.0), ("val_loss", 1, float("nan"))]) == 1
    assert record_metrics(db, job["id"], []) == 0
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(MetricPoint)) == 1002
    series = get_metrics(db, job["id"])
    assert series["val_loss"] == [[0, 0.5], [1, None]]                   # first write wins; NaN is null
    assert series["train_loss"][:2] == [[0, 1.0], [1, 0.5]] and len(series["train_loss"]) == 1000
    assert list(get_metrics(db, job["id"], names=["val_loss"])) == ["val_loss"]
    assert get_metrics(db, job["id"], names=["nothing"]) == {}


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
    assert all(values[s] == v for s, v in loss)                           # real points, not averages
    assert steps[0] < 200 and steps[-1] > n - 200                         # the whole range is covered
    assert series["val_loss"] == [[i, float(i)] for i in range(10)]      # short series untouched
    with pytest.raises(ValueError):
        get_metrics(db, job["id"], max_points=1)


# ---------------------------------------------------------------- queue and statistics

def test_queue_position_counts_and_durations(db):
    alice = make_user(db, "alice")
    jobs = [create_job(db, alice.id, job_spec(f"j{i}")) for i in range(4)]
    assert [queue_position(db, j["id"]) for j in jobs] == [1, 2, 3, 4]
    claim_job(db, jobs[0]["id"], "w1")
    request_cancel(db, jobs[2]["id"], alice)
    assert [queue_position(db, j["id"]) for j in jobs] == [None, 1, None, 2]
    finish_job(db, jobs[0]["id"], "succeeded")
    assert count_by_status(db) == {"queued": 2, "running": 0, "succeeded": 1, "failed": 0, "cancelled": 1}
    durations = job_durations(db)
    assert len(durations) == 1 and 0 <= durations[0] < 60                # the never-started cancel is left out


# ---------------------------------------------------------------- artifacts, datasets, workers

def test_artifacts_upsert(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    assert load_artifact(db, job["id"], "weights.npz") is None
    save_artifact(db, job["id"], "weights.npz", b"one")
    save_artifact(db, job["id"], "checkpoint.npz", b"\x00" * 1000)
    save_artifact(db, job["id"], "weights.npz", b"two!")
    assert load_artifact(db, job["id"], "weights.npz") == b"two!"
    assert load_artifact(db, job["id"], "checkpoint.npz") == b"\x00" * 1000


def test_datasets(db):
    alice, bob = make_user(db, "alice"), make_user(db, "bob")
    admin = make_user(db, "root", admin=True)
    blob = bytes(range(256)) * 10
    ds = save_dataset(db, alice.id, "my digits", blob, samples=100, shape=(1, 8, 8), classes=10)
    assert len(ds["id"]) == 32 and ds["created_at"].endswith("Z")
    assert {k: ds[k] for k in ("name", "samples", "shape", "classes", "size_bytes", "user")} == {
        "name": "my digits", "samples": 100, "shape": [1, 8, 8], "classes": 10, "size_bytes": 2560,
        "user": "alice"}
    assert get_dataset(db, ds["id"], alice) == ds
    assert get_dataset(db, ds["id"], bob) is None
    assert get_dataset(db, ds["id"], admin) == ds
    assert load_dataset_bytes(db, ds["id"]) == blob
    assert load_dataset_bytes(db, "0" * 32) is None
    ds2 = save_dataset(db, alice.id, "second", b"x", samples=1, shape=[3, 4, 4], classes=2)
    assert [d["id"] for d in list_datasets(db, alice)] == [ds2["id"], ds["id"]]
    assert list_datasets(db, bob) == []
    assert len(list_datasets(db, admin)) == 2


def test_workers_heartbeat_and_liveness(db):
    worker_heartbeat(db, "host:1", "host", 1, None)
    worker_heartbeat(db, "host:2", "host", 2, None)
    worker_heartbeat(db, "host:1", "host", 1, "a" * 32)                  # upsert, not a second row
    live = live_workers(db, 30)
    assert [(w["name"], w["job_id"]) for w in live] == [("host:1", "a" * 32), ("host:2", None)]
    assert all(set(w) == {"name", "heartbeat_age_s", "job_id"} and 0 <= w["heartbeat_age_s"] < 30 for w in live)
    _age(db, Worker, Worker.name == "host:2", 120)
    assert [w["name"] for w in live_workers(db, 30)] == ["host:1"]
    assert remove_stale_workers(db, 60) == 1
    remove_worker(db, "host:1")
    assert live_workers(db, 3600) == []


# ---------------------------------------------------------------- timestamps

def test_timestamps_are_aware_utc_and_naive_ones_are_refused(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    claim_job(db, job["id"], "w1")
    with db.session() as s:
        row = s.get(Job, job["id"])
        assert row.created_at.tzinfo == timezone.utc and row.heartbeat_at.tzinfo == timezone.utc
        assert abs(utcnow() - row.heartbeat_at) < timedelta(minutes=1)
    with pytest.raises(Exception, match="naive datetime"):
        with db.session() as s:
            s.execute(update(Job).values(heartbeat_at=datetime(2024, 1, 1)))


def test_get_user_by_id(db):
    alice = make_user(db, "alice", admin=True)
    assert get_user(db, alice.id) == alice
    assert get_user(db, alice.id + 1000) is None

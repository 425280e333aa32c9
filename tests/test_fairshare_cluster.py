"""Fair share with real workers: the API under gunicorn and two Celery workers, on the embedded
configuration (SQLite + filesystem broker) and the distributed one (PostgreSQL + a private Redis).

Assertions read the order of claims from the database (each job's ``started_at``, written by the
claim), never the wall clock: one user's 30-job batch must not delay another user's single job
past the next free worker, a user's own jobs start by priority, and a running limit set by an
admin is never exceeded.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from store.models import Job, User
from tests.cluster import wait_for
from tests.helpers import tiny_train_spec
from tests.private_servers import cluster_on

pytestmark = pytest.mark.processes  # gunicorn and Celery workers

BATCH = 30


@pytest.fixture(scope="module", params=["embedded", "distributed"])
def cluster(request, tmp_path_factory):
    home = tmp_path_factory.mktemp(f"fairshare-{request.param}")
    with cluster_on(request.param, home, lambda: request.getfixturevalue("pg_databases")()) as c:
        yield c


def _claims(cluster) -> list[tuple[str, str, object, object, int]]:
    """Every started job as (id, user, started_at, finished_at, priority), in the order of their claims."""
    with cluster.store.session() as s:
        rows = s.execute(
            select(Job.id, User.name, Job.started_at, Job.finished_at, Job.priority)
            .join(User, User.id == Job.user_id)
            .where(Job.started_at.is_not(None))
            .order_by(Job.started_at)
        ).all()
    return [tuple(r) for r in rows]


def _queued(cluster, user: str) -> int:
    with cluster.store.session() as s:
        return len(
            s.scalars(
                select(Job.id).join(User, User.id == Job.user_id).where(User.name == user, Job.status == "queued")
            ).all()
        )


def test_one_users_batch_does_not_hold_up_another_users_job(cluster):
    alice = cluster.client(cluster.token("alice"))
    bob = cluster.client(cluster.token("bob"))
    carol = cluster.client(cluster.token("carol"))
    root = cluster.client(cluster.token("root", admin=True))
    dave_token = cluster.token("dave")
    for _ in range(BATCH):
        # Long enough that a backlog is left when bob submits: workers go from job to job without a
        # broker round trip (docs/architecture.md), so short jobs drain while the batch is still submitted.
        alice.submit(tiny_train_spec(epochs=12))
    wait_for(lambda: len(_claims(cluster)) >= 2, 120, "both workers to run alice's jobs")

    b = bob.submit(tiny_train_spec(epochs=1))
    assert _queued(cluster, "alice") >= BATCH // 2
    cluster.wait_status(bob, b["id"], timeout=180)
    claims = _claims(cluster)
    bob_at = [c[0] for c in claims].index(b["id"])
    # Claims of alice's jobs made after bob's job was stored and before it was claimed: at most one (a
    # worker may have been claiming while bob's submit committed), never a queue's worth.
    stored = _created(cluster, b["id"])
    overtaking = [c for c in claims[:bob_at] if c[1] == "alice" and c[2] >= stored]
    assert len(overtaking) <= 1, overtaking
    assert len([c for c in claims if c[1] == "alice"]) < BATCH  # and alice's backlog was still there

    # carol's own jobs start by priority (higher first), whatever their order of submission.  An admin holds
    # her at zero running jobs while she submits (else a worker that frees up between two submits takes the
    # first one, rightly: it is her only queued job then), and then lets her go.
    root.request("PUT", "/users/carol/limits", {"max_running": 0})
    jobs = {p: carol.submit({**tiny_train_spec(epochs=1), "priority": p})["id"] for p in (0, 5, -5)}
    root.request("PUT", "/users/carol/limits", {"max_running": None})
    for job_id in jobs.values():
        cluster.wait_status(carol, job_id, timeout=180)
    carols = [c[4] for c in _claims(cluster) if c[1] == "carol"]
    assert carols == [5, 0, -5]

    # dave, limited by an admin to one running job, never has two at once, though both workers free up in turn.
    root.request("PUT", "/users/dave/limits", {"max_running": 1})
    dave = [cluster.client(dave_token).submit(tiny_train_spec(epochs=1))["id"] for _ in range(4)]
    for job_id in dave:
        cluster.wait_status(cluster.client(dave_token), job_id, timeout=180)
    mine = [c for c in _claims(cluster) if c[1] == "dave"]
    for i, (job_id, _, started, _, _) in enumerate(mine):
        late = [c for c in mine[:i] if c[3] is None or c[3] > started]
        assert not late, f"dave's job {job_id} started at {started} while {late} ran"


def _created(cluster, job_id: str):
    with cluster.store.session() as s:
        return s.scalar(select(Job.created_at).where(Job.id == job_id))

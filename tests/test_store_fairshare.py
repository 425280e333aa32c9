"""Fair share and the per-user limits in the data layer (store.queue_order, claim_next_job,
create_jobs' quota), on SQLite and on PostgreSQL.

The queue positions must be the real dispatch order: each test that ranks the queue then claims
it job by job (no job finishing meanwhile) and compares.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from store import (
    Quota,
    QuotaExceeded,
    claim_next_job,
    count_claimable,
    create_job,
    create_jobs,
    finish_job,
    queue_positions,
    release_job,
    set_limits_by_name,
)
from store.models import Job, User, utcnow
from tests.helpers import job_spec, make_user, race


def _spec(name: str, priority: int = 0) -> dict:
    return {**job_spec(name), "priority": priority}


def _submit(db, user, names, priority: int = 0, start=None) -> list[str]:
    """Queued jobs of ``user``, one second apart (their order never depends on the clock's resolution)."""
    ids = [create_job(db, user.id, _spec(n, priority))["id"] for n in names]
    start = start or utcnow() - timedelta(hours=1)
    with db.session() as s:
        for i, job_id in enumerate(ids):
            s.execute(update(Job).where(Job.id == job_id).values(created_at=start + timedelta(seconds=i)))
    return ids


def _predicted(db, max_running=None) -> list[str]:
    """Every queued job in the order queue_positions gives."""
    with db.session() as s:
        queued = list(s.scalars(select(Job.id).where(Job.status == "queued")))
    places = queue_positions(db, queued, max_running)
    assert sorted(places.values()) == list(range(1, len(queued) + 1))
    return sorted(places, key=places.get)


def _claim_all(db, max_running=None) -> list[str]:
    """Claim until nothing is claimable; the ids in claim order."""
    out = []
    while (job := claim_next_job(db, f"w{len(out)}", max_running=max_running)) is not None:
        out.append(job["id"])
    return out


def test_a_single_job_of_a_second_user_goes_before_the_first_users_backlog(db):
    alice, bob = make_user(db, "alice"), make_user(db, "bob")
    a = _submit(db, alice, [f"a{i}" for i in range(30)])
    (b,) = _submit(db, bob, ["b"], start=utcnow())  # submitted after all of alice's
    first = claim_next_job(db, "w1")["id"]
    second = claim_next_job(db, "w2")["id"]
    assert (first, second) == (a[0], b)  # alice has one running, bob none: bob's job is next
    assert finish_job(db, first, "succeeded", worker="w1")
    assert claim_next_job(db, "w1")["id"] == a[1]


def test_fewest_running_first_then_least_recently_served(db):
    alice, bob, carol = (make_user(db, n) for n in ("alice", "bob", "carol"))
    a = _submit(db, alice, ["a0", "a1", "a2"])
    b = _submit(db, bob, ["b0", "b1"])
    c = _submit(db, carol, ["c0"])
    now = utcnow()
    with db.session() as s:  # bob was served long ago, alice recently, carol never
        s.execute(update(User).where(User.id == alice.id).values(last_claim_at=now - timedelta(minutes=1)))
        s.execute(update(User).where(User.id == bob.id).values(last_claim_at=now - timedelta(hours=1)))
    predicted = _predicted(db)
    assert predicted == [c[0], b[0], a[0], b[1], a[1], a[2]]
    assert _claim_all(db) == predicted


def test_priority_orders_one_users_jobs_only(db):
    alice, bob = make_user(db, "alice"), make_user(db, "bob")
    low = _submit(db, alice, ["low"], priority=-5)
    plain = _submit(db, alice, ["plain"])
    urgent = _submit(db, alice, ["urgent1", "urgent2"], priority=10)
    b = _submit(db, bob, ["b0", "b1"], priority=-10)
    order = _claim_all(db)
    alice_order = [j for j in order if j not in b]
    assert alice_order == urgent + plain + low  # higher first, then older
    assert order[:2] in ([urgent[0], b[0]], [b[0], urgent[0]])  # bob's low priority does not demote him


def test_positions_are_the_dispatch_order_on_random_queues(db):
    users = [make_user(db, f"user{i}") for i in range(4)]
    rng = random.Random(7)
    start = utcnow() - timedelta(hours=2)
    for n in range(40):
        user = rng.choice(users)
        job_id = create_job(db, user.id, _spec(f"j{n}", rng.choice([-1, 0, 0, 2])))["id"]
        with db.session() as s:
            created = start + timedelta(seconds=rng.randrange(600))
            s.execute(update(Job).where(Job.id == job_id).values(created_at=created))
    for i in range(5):  # some already run, unevenly
        claim_next_job(db, f"busy{i}")
    set_limits_by_name(db, "user1", {"max_running": 3}, Quota())
    predicted = _predicted(db)
    claimed = _claim_all(db)
    assert claimed == predicted[: len(claimed)]
    assert count_claimable(db) == 0
    user1_running = _count(db, Job.user_id == users[1].id, Job.status == "running")
    assert user1_running <= 3


def _count(db, *where) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Job).where(*where))


def test_a_user_at_their_running_limit_is_skipped(db):
    alice, bob = make_user(db, "alice"), make_user(db, "bob")
    a = _submit(db, alice, ["a0", "a1", "a2"])
    set_limits_by_name(db, "alice", {"max_running": 1}, Quota())
    assert claim_next_job(db, "w1")["id"] == a[0]
    assert count_claimable(db) == 0
    assert claim_next_job(db, "w2") is None  # alice is at her limit
    (b,) = _submit(db, bob, ["b"])
    assert count_claimable(db) == 1
    assert claim_next_job(db, "w2")["id"] == b
    assert finish_job(db, a[0], "succeeded", worker="w1")
    assert claim_next_job(db, "w1")["id"] == a[1]
    # The deployment's default applies to users without an override; an override wins.
    carol = make_user(db, "carol")
    c = _submit(db, carol, ["c0", "c1"])
    assert claim_next_job(db, "w3", max_running=1)["id"] == c[0]
    assert claim_next_job(db, "w4", max_running=1) is None
    set_limits_by_name(db, "carol", {"max_running": 5}, Quota())
    assert claim_next_job(db, "w4", max_running=1)["id"] == c[1]


def test_concurrent_claimers_never_pass_a_running_limit(db):
    alice, bob = make_user(db, "alice"), make_user(db, "bob")
    a = _submit(db, alice, [f"a{i}" for i in range(6)])
    b = _submit(db, bob, [f"b{i}" for i in range(6)])
    set_limits_by_name(db, "alice", {"max_running": 2}, Quota())
    results = race(8, lambda i: claim_next_job(db, f"host:{i}"))
    won = [r["id"] for r in results if r is not None]
    assert len(won) == len(set(won))
    assert len([j for j in won if j in a]) == 2
    assert len([j for j in won if j in b]) == len(won) - 2
    assert _count(db, Job.status == "running", Job.attempts == 1) == len(won)


def test_handed_back_job_keeps_its_place_in_its_users_line(db):
    alice, bob = make_user(db, "alice"), make_user(db, "bob")
    a = _submit(db, alice, ["a0", "a1"])
    b = _submit(db, bob, ["b0"])
    assert claim_next_job(db, "w1")["id"] == a[0]
    assert release_job(db, a[0], "w1") == "queued"
    # alice was served just now, bob never: bob goes first; alice's handed-back job is still her next.
    assert _claim_all(db) == [b[0], a[0], a[1]]


def test_queued_limit_refuses_the_whole_batch_and_stores_nothing(db):
    alice = make_user(db, "alice")
    quota = Quota(max_queued=3)
    create_jobs(db, alice.id, [_spec("a0"), _spec("a1")], quota=quota)
    with pytest.raises(QuotaExceeded) as e:
        create_jobs(db, alice.id, [_spec("a2"), _spec("a3")], quota=quota)
    assert e.value.limit == "max_queued" and "limit is 3" in e.value.message and e.value.retry_after_s
    assert _count(db) == 2
    create_jobs(db, alice.id, [_spec("a2")], quota=quota)
    set_limits_by_name(db, "alice", {"max_queued": 4}, quota)
    create_jobs(db, alice.id, [_spec("a3")], quota=quota)
    with pytest.raises(QuotaExceeded):
        create_jobs(db, alice.id, [_spec("a4")], quota=quota)
    assert _count(db) == 4


def test_concurrent_submits_never_pass_the_queued_limit(db):
    alice = make_user(db, "alice")
    quota = Quota(max_queued=5)

    def submit(i):
        try:
            return create_jobs(db, alice.id, [_spec(f"a{i}")], quota=quota)
        except QuotaExceeded:
            return None

    results = race(10, submit)
    assert sum(r is not None for r in results) == 5
    assert _count(db) == 5

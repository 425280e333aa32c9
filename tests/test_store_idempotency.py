"""store.idempotency on SQLite and PostgreSQL: the key lives and dies with what it created."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

import store
from store.models import IdempotencyKey, utcnow
from tests.helpers import job_spec, make_user


def _request(user, key="k", fingerprint="f" * 64, ttl_s=3600.0):
    return store.IdempotentRequest(
        user_id=user.id, key=key, operation="jobs.submit", fingerprint=fingerprint, ttl_s=ttl_s
    )


def test_the_key_is_committed_with_the_jobs(db):
    alice = make_user(db, "alice")
    jobs = store.create_jobs(db, alice.id, [job_spec("a"), job_spec("b")], idempotency=_request(alice))
    found = store.find_idempotency_key(db, _request(alice))
    assert found == {"operation": "jobs.submit", "fingerprint": "f" * 64, "resources": [j["id"] for j in jobs]}
    assert store.find_idempotency_key(db, _request(make_user(db, "bob"))) is None  # per user


def test_a_second_insert_of_a_live_key_rolls_back_its_job(db):
    alice = make_user(db, "alice")
    store.create_job(db, alice.id, job_spec("first"), idempotency=_request(alice))
    with pytest.raises(IntegrityError):
        store.create_job(db, alice.id, job_spec("second"), idempotency=_request(alice))
    assert [j["name"] for j in store.list_jobs(db, None)[0]] == ["first"]


def test_expired_keys_are_ignored_replaced_and_swept(db):
    alice = make_user(db, "alice")
    store.create_job(db, alice.id, job_spec("old"), idempotency=_request(alice, key="a"))
    store.create_job(db, alice.id, job_spec("old"), idempotency=_request(alice, key="b"))
    with db.session() as s:
        s.execute(update(IdempotencyKey).values(created_at=utcnow() - timedelta(hours=2)))
    assert store.find_idempotency_key(db, _request(alice, key="a")) is None
    new = store.create_job(db, alice.id, job_spec("new"), idempotency=_request(alice, key="a"))
    assert store.find_idempotency_key(db, _request(alice, key="a"))["resources"] == [new["id"]]
    assert store.sweep_idempotency_keys(db, 3600) == 1  # "b"; "a" is live again
    assert store.find_idempotency_key(db, _request(alice, key="a")) is not None

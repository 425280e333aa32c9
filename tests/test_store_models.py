"""Tests of store/models.py: column types (timestamps are aware UTC).

Each test runs on SQLite and on PostgreSQL (the ``db`` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from store import claim_job, create_job
from store.models import Job, utcnow
from tests.helpers import job_spec, make_user


def test_timestamps_are_aware_utc_and_naive_ones_are_refused(db):
    alice = make_user(db, "alice")
    job = create_job(db, alice.id, job_spec())
    claim_job(db, job["id"], "w1")
    with db.session() as s:
        row = s.get(Job, job["id"])
        assert row.created_at.tzinfo == UTC and row.heartbeat_at.tzinfo == UTC
        assert abs(utcnow() - row.heartbeat_at) < timedelta(minutes=1)
    with pytest.raises(Exception, match="naive datetime"), db.session() as s:
        s.execute(update(Job).values(heartbeat_at=datetime(2024, 1, 1)))

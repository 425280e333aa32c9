"""Tests of store/auth.py: API tokens and users.

Each test runs on SQLite and on PostgreSQL (the ``db`` fixture).
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from store import UserInfo, authenticate, create_token, get_user
from store.models import ApiToken, utcnow
from tests.helpers import make_user


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


def test_get_user_by_id(db):
    alice = make_user(db, "alice", admin=True)
    assert get_user(db, alice.id) == alice
    assert get_user(db, alice.id + 1000) is None

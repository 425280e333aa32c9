"""Tests of store/auth.py: API tokens and users.

Each test runs on SQLite and on PostgreSQL (the ``db`` fixture).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from store import UserInfo, authenticate, create_token, get_user
from store.models import ApiToken, WebSession, utcnow
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


def test_revoked_and_expired_tokens_stop_at_once_and_end_their_sessions(db):
    from store import end_session, list_tokens, revoke_tokens, session_user, start_session

    token = create_token(db, "alice")
    alice = authenticate(db, token)
    session_id = start_session(db, alice.token_id)
    assert session_user(db, session_id) == alice
    assert [t["id"] for t in revoke_tokens(db, alice.token_id)] == [alice.token_id]
    assert authenticate(db, token) is None
    assert session_user(db, session_id) is None
    assert revoke_tokens(db, alice.token_id) == []  # already revoked: nothing more
    assert [t["state"] for t in list_tokens(db)] == ["revoked"]

    short = create_token(db, "bob", expires_in=timedelta(hours=1))
    bob = authenticate(db, short)
    bob_session = start_session(db, bob.token_id)
    with db.session() as s:  # an hour later
        s.get(ApiToken, bob.token_id).expires_at = utcnow() - timedelta(seconds=1)
    assert authenticate(db, short) is None
    assert session_user(db, bob_session) is None
    assert {t["user"]: t["state"] for t in list_tokens(db)} == {"alice": "revoked", "bob": "expired"}
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(WebSession)) == 1  # bob's, dead but still there

    carol = make_user(db, "carol")
    carol_session = start_session(db, carol.token_id)
    with db.session() as s:  # the next sign-in swept bob's away
        assert list(s.scalars(select(WebSession.token_id))) == [carol.token_id]
    end_session(db, carol_session)
    assert session_user(db, carol_session) is None


def test_revoke_by_prefix_or_user_name_and_only_ones_own_tokens(db):
    from store import list_tokens, revoke_tokens

    first, second = create_token(db, "dave"), create_token(db, "dave")
    erin = make_user(db, "erin")
    dave = authenticate(db, first)
    assert revoke_tokens(db, erin.token_id, viewer=dave) == []  # not his
    assert authenticate(db, erin_token := create_token(db, "erin")) is not None
    assert [t["prefix"] for t in revoke_tokens(db, first[:12])] == [first[:12]]
    assert authenticate(db, second) is not None
    assert len(revoke_tokens(db, "erin")) == 2
    assert authenticate(db, erin_token) is None
    assert {t["user"] for t in list_tokens(db, viewer=dave)} == {"dave"}
    assert revoke_tokens(db, "9" * 30) == []  # an id no database column holds names nothing


def test_rotate_token_replaces_the_previous_one(db):
    from store import list_tokens, rotate_token

    kept = create_token(db, "admin", admin=True)
    old = rotate_token(db, "admin", label="convlab up")
    new = rotate_token(db, "admin", label="convlab up")
    assert authenticate(db, old) is None and authenticate(db, new).is_admin
    assert authenticate(db, kept) is not None  # tokens made by hand are left alone
    assert [t["label"] for t in list_tokens(db)] == [None, "convlab up"]


def test_expiry_must_be_positive_and_bounded(db):
    import pytest

    for bad in (timedelta(0), timedelta(days=-1), timedelta(days=4000)):
        with pytest.raises(ValueError):
            create_token(db, "frank", expires_in=bad)

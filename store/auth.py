"""Users, API tokens and dashboard sessions: tokens are shown once; only their sha256 is stored.

A token is valid until it is revoked or expires; a dashboard session is a row
naming the token it was signed in with, so it ends with that token, or when
the user signs out, for every copy of its cookie.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, false, or_, select, update

from .db import Store, upsert_insert
from .models import ApiToken, User, WebSession, iso, utcnow

TOKEN_PREFIX = "cl_"
# last_used_at is for people ("used 3 days ago"): writing it on every request would
# turn each authenticated read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# The longest --expires-in: far enough for any real use, near enough that the date is representable.
MAX_EXPIRES_IN = timedelta(days=3650)


@dataclass(frozen=True)
class UserInfo:
    """Who is calling: what the API and the visibility rules need (``token_id``: the token used, if any)."""

    id: int
    name: str
    is_admin: bool
    # Which token authenticated this request (not part of who the user is: equality ignores it).
    token_id: int | None = field(default=None, compare=False)


def hash_token(token: str) -> str:
    """The sha256 hex digest stored for ``token`` (and for a session id)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _valid(now: datetime) -> ColumnElement[bool]:
    """The condition on ``api_tokens`` of a token that still works at ``now``."""
    return and_(ApiToken.revoked_at.is_(None), or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now))


def create_token(
    store: Store, name: str, admin: bool = False, *, expires_in: timedelta | None = None, label: str | None = None
) -> str:
    """Create a new API token for user ``name`` and return it (the only time it is visible).

    The user is created if missing; ``admin=True`` makes an existing user an
    admin, ``admin=False`` never takes that away.  ``expires_in`` (at most
    :data:`MAX_EXPIRES_IN`) makes it stop working after that long.
    """
    if expires_in is not None and not timedelta(0) < expires_in <= MAX_EXPIRES_IN:
        raise ValueError(f"expires_in must be positive and at most {MAX_EXPIRES_IN.days} days")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store.session() as s:
        # ON CONFLICT: two processes creating the same new user at once both succeed.
        s.execute(
            upsert_insert(store, User)
            .values(name=name, is_admin=admin)
            .on_conflict_do_nothing(index_elements=[User.name])
        )
        if admin:
            s.execute(update(User).where(User.name == name).values(is_admin=True))
        user_id = s.scalar(select(User.id).where(User.name == name))
        s.add(
            ApiToken(
                user_id=user_id,
                token_hash=hash_token(token),
                prefix=token[:12],
                label=label,
                expires_at=None if expires_in is None else utcnow() + expires_in,
            )
        )
    return token


def rotate_token(store: Store, name: str, label: str) -> str:
    """A new admin token for ``name`` labelled ``label``, deleting the earlier ones of that label
    (and their sessions): ``convlab up`` prints a fresh token on every start without piling them up."""
    with store.session() as s:
        user_id = s.scalar(select(User.id).where(User.name == name))
        if user_id is not None:
            s.execute(delete(ApiToken).where(ApiToken.user_id == user_id, ApiToken.label == label))
    return create_token(store, name, admin=True, label=label)


def authenticate(store: Store, token: str | None) -> UserInfo | None:
    """The user holding ``token``, or None for a missing, unknown, revoked or expired token."""
    if not token:
        return None
    digest = hash_token(token)
    now = utcnow()
    with store.session() as s:
        row = s.execute(
            select(ApiToken.id, ApiToken.last_used_at, User.id, User.name, User.is_admin)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == digest, _valid(now))
        ).first()
        if row is None:
            return None
        token_id, last_used, user_id, user_name, is_admin = row
        if last_used is None or now - last_used >= LAST_USED_RESOLUTION:
            # Conditional, so concurrent requests of one client write it once.
            cutoff = now - LAST_USED_RESOLUTION
            s.execute(
                update(ApiToken)
                .where(ApiToken.id == token_id, or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= cutoff))
                .values(last_used_at=now)
            )
    return UserInfo(id=user_id, name=user_name, is_admin=bool(is_admin), token_id=token_id)


def get_user(store: Store, user_id: int) -> UserInfo | None:
    """The user with id ``user_id``, None if there is none any more."""
    with store.session() as s:
        row = s.execute(select(User.id, User.name, User.is_admin).where(User.id == user_id)).first()
    return None if row is None else UserInfo(id=row.id, name=row.name, is_admin=bool(row.is_admin))


def _token_json(row: Any, now: datetime) -> dict[str, Any]:
    """A token as ``token list`` and ``GET /tokens`` show it (never its hash)."""
    state = (
        "revoked"
        if row.revoked_at is not None
        else "expired"
        if row.expires_at is not None and row.expires_at <= now
        else "active"
    )
    return {
        "id": row.id,
        "user": row.user,
        "prefix": row.prefix,
        "label": row.label,
        "state": state,
        "created_at": iso(row.created_at),
        "last_used_at": iso(row.last_used_at),
        "expires_at": iso(row.expires_at),
        "revoked_at": iso(row.revoked_at),
    }


def _token_rows():
    return (
        select(
            ApiToken.id,
            User.name.label("user"),
            ApiToken.prefix,
            ApiToken.label,
            ApiToken.created_at,
            ApiToken.last_used_at,
            ApiToken.expires_at,
            ApiToken.revoked_at,
        )
        .join(User, User.id == ApiToken.user_id)
        .order_by(ApiToken.id)
    )


def list_tokens(store: Store, viewer: UserInfo | None = None) -> list[dict[str, Any]]:
    """Every token (``viewer`` None: the command line on the server; an admin: all; others: their own)."""
    query = _token_rows()
    if viewer is not None and not viewer.is_admin:
        query = query.where(ApiToken.user_id == viewer.id)
    now = utcnow()
    with store.session() as s:
        return [_token_json(r, now) for r in s.execute(query)]


def revoke_tokens(store: Store, which: str | int, viewer: UserInfo | None = None) -> list[dict[str, Any]]:
    """Revoke tokens at once, ending their dashboard sessions; returns the tokens revoked.

    ``which``: a token id (int), or from the command line a string: a token id,
    a token's prefix (``cl_...``) or a user name (all of that user's tokens).
    ``viewer`` (the API): a non-admin may revoke only their own tokens. A token
    already revoked is not returned again.
    """
    if isinstance(which, int):
        cond = ApiToken.id == which
    elif which.isdigit():
        # An id past 32 bits names no token (and SQLite cannot compare one past 64 bits).
        cond = ApiToken.id == int(which) if len(which) <= 10 else false()
    elif which.startswith(TOKEN_PREFIX):
        cond = ApiToken.prefix == which[:12]
    else:
        cond = ApiToken.user_id.in_(select(User.id).where(User.name == which))
    if viewer is not None and not viewer.is_admin:
        cond = and_(cond, ApiToken.user_id == viewer.id)
    now = utcnow()
    with store.session() as s:
        ids = list(s.scalars(select(ApiToken.id).where(cond, ApiToken.revoked_at.is_(None))))
        if not ids:
            return []
        s.execute(update(ApiToken).where(ApiToken.id.in_(ids)).values(revoked_at=now))
        s.execute(delete(WebSession).where(WebSession.token_id.in_(ids)))
        return [_token_json(r, now) for r in s.execute(_token_rows().where(ApiToken.id.in_(ids)))]


def start_session(store: Store, token_id: int) -> str:
    """A new dashboard session signed in with token ``token_id``; returns its id (for the cookie only)."""
    session_id = secrets.token_urlsafe(32)
    with store.session() as s:
        # Sessions of expired tokens can never be used again; each sign-in clears them away.
        s.execute(
            delete(WebSession).where(
                WebSession.token_id.in_(
                    select(ApiToken.id).where(ApiToken.expires_at.is_not(None), ApiToken.expires_at <= utcnow())
                )
            )
        )
        s.add(WebSession(id_hash=hash_token(session_id), token_id=token_id))
    return session_id


def session_user(store: Store, session_id: str) -> UserInfo | None:
    """The user of dashboard session ``session_id``; None once it ended or its token stopped working."""
    with store.session() as s:
        row = s.execute(
            select(User.id, User.name, User.is_admin, ApiToken.id.label("token_id"))
            .select_from(WebSession)
            .join(ApiToken, ApiToken.id == WebSession.token_id)
            .join(User, User.id == ApiToken.user_id)
            .where(WebSession.id_hash == hash_token(session_id), _valid(utcnow()))
        ).first()
    return (
        None if row is None else UserInfo(id=row.id, name=row.name, is_admin=bool(row.is_admin), token_id=row.token_id)
    )


def end_session(store: Store, session_id: str) -> None:
    """Sign out: the session's row goes, so the cookie (and any copy of it) no longer works."""
    with store.session() as s:
        s.execute(delete(WebSession).where(WebSession.id_hash == hash_token(session_id)))

"""Users and API tokens: tokens are shown once; only their sha256 is stored."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update

from .db import Store, upsert_insert
from .models import ApiToken, User, utcnow

TOKEN_PREFIX = "cl_"
# last_used_at is for people ("used 3 days ago"): writing it on every request would
# turn each authenticated read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class UserInfo:
    """Who is calling: what the API and the visibility rules need."""

    id: int
    name: str
    is_admin: bool


def hash_token(token: str) -> str:
    """The sha256 hex digest stored for ``token``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(store: Store, name: str, admin: bool = False) -> str:
    """Create a new API token for user ``name`` and return it (the only time it is visible).

    The user is created if missing; ``admin=True`` makes an existing user an
    admin, ``admin=False`` never takes that away.
    """
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store.session() as s:
        # ON CONFLICT: two processes creating the same new user at once both succeed.
        s.execute(upsert_insert(store, User).values(name=name, is_admin=admin)
                  .on_conflict_do_nothing(index_elements=[User.name]))
        if admin:
            s.execute(update(User).where(User.name == name).values(is_admin=True))
        user_id = s.scalar(select(User.id).where(User.name == name))
        s.add(ApiToken(user_id=user_id, token_hash=hash_token(token), prefix=token[:12]))
    return token


def authenticate(store: Store, token: str | None) -> UserInfo | None:
    """The user holding ``token``, or None for a missing or unknown token."""
    if not token:
        return None
    digest = hash_token(token)
    with store.session() as s:
        row = s.execute(
            select(ApiToken.id, ApiToken.last_used_at, User.id, User.name, User.is_admin)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == digest)
        ).first()
        if row is None:
            return None
        token_id, last_used, user_id, user_name, is_admin = row
        now = utcnow()
        if last_used is None or now - last_used >= LAST_USED_RESOLUTION:
            # Conditional, so concurrent requests of one client write it once.
            cutoff = now - LAST_USED_RESOLUTION
            s.execute(update(ApiToken)
                      .where(ApiToken.id == token_id,
                             or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= cutoff))
                      .values(last_used_at=now))
    return UserInfo(id=user_id, name=user_name, is_admin=bool(is_admin))


def get_user(store: Store, user_id: int) -> UserInfo | None:
    """The user with id ``user_id`` (a signed session names it), None if there is none any more."""
    with store.session() as s:
        row = s.execute(select(User.id, User.name, User.is_admin).where(User.id == user_id)).first()
    return None if row is None else UserInfo(id=row.id, name=row.name, is_admin=bool(row.is_admin))

"""Uploaded datasets: the ``.npz`` bytes in the database plus what a spec check needs."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, true

from .auth import UserInfo
from .db import Store
from .idempotency import IdempotentRequest, record_idempotency_key
from .models import Dataset, User, iso
from .quotas import Quota, check_storage, effective_limits, lock_user

# Everything but the bytes: listing must not read every upload.
_INFO = (
    Dataset.id,
    Dataset.name,
    Dataset.samples,
    Dataset.shape,
    Dataset.classes,
    Dataset.size_bytes,
    Dataset.created_at,
    User.name.label("user"),
)


def _dataset_dict(row) -> dict[str, Any]:
    """A dataset row as the API shows it."""
    return {
        "id": row.id,
        "name": row.name,
        "samples": row.samples,
        "shape": list(row.shape),
        "classes": row.classes,
        "size_bytes": row.size_bytes,
        "created_at": iso(row.created_at),
        "user": row.user,
    }


def _info(user: UserInfo | None):
    """SELECT of dataset info visible to ``user`` (own ones; admins and internal callers: all)."""
    q = select(*_INFO).join(User, User.id == Dataset.user_id)
    return q.where(true() if user is None or user.is_admin else Dataset.user_id == user.id)


def save_dataset(
    store: Store,
    user_id: int,
    name: str,
    data: bytes,
    samples: int,
    shape: list[int] | tuple[int, ...],
    classes: int,
    idempotency: IdempotentRequest | None = None,
    quota: Quota | None = None,
) -> dict[str, Any]:
    """Store an uploaded (already checked) dataset; returns its info with the new ``id``.

    ``idempotency``: the request's key, recorded in the same transaction.  ``quota``: the
    deployment's default limits; the user's storage limit is then checked under their lock
    (:class:`~store.quotas.QuotaExceeded`, nothing stored).
    """
    ds = Dataset(
        id=uuid.uuid4().hex,
        user_id=user_id,
        name=name,
        samples=samples,
        shape=[int(x) for x in shape],
        classes=classes,
        size_bytes=len(data),
        data=data,
    )
    with store.session() as s:
        if quota is not None:
            lock_user(s, user_id)
            check_storage(s, user_id, effective_limits(s, user_id, quota), adding=len(data))
        s.add(ds)
        s.flush()
        if idempotency is not None:
            record_idempotency_key(s, idempotency, [ds.id])
        return _dataset_dict(s.execute(_info(None).where(Dataset.id == ds.id)).one())


def get_dataset(store: Store, dataset_id: str, user: UserInfo | None) -> dict[str, Any] | None:
    """The dataset's info (no bytes), or None if missing or not visible to ``user``."""
    with store.session() as s:
        row = s.execute(_info(user).where(Dataset.id == dataset_id)).first()
    return None if row is None else _dataset_dict(row)


def list_datasets(store: Store, user: UserInfo | None) -> list[dict[str, Any]]:
    """Info of the datasets ``user`` may see, newest first."""
    with store.session() as s:
        rows = s.execute(_info(user).order_by(Dataset.created_at.desc(), Dataset.id.desc())).all()
    return [_dataset_dict(r) for r in rows]


def dataset_exists(store: Store, dataset_id: str) -> bool:
    """Whether the upload ``dataset_id`` is stored (a worker that keeps it loaded asks before each use)."""
    with store.session() as s:
        return s.scalar(select(Dataset.id).where(Dataset.id == dataset_id)) is not None


def load_dataset_bytes(store: Store, dataset_id: str) -> bytes | None:
    """The uploaded ``.npz`` bytes (internal: workers), or None if there is no such dataset."""
    with store.session() as s:
        return s.scalar(select(Dataset.data).where(Dataset.id == dataset_id))

"""Deleting a job or an uploaded dataset, with everything that belongs to it, in one transaction.

A job's tags, metric points and artifacts (weights, checkpoints) go by their foreign keys'
``ON DELETE CASCADE``; what refers to it without a foreign key is removed explicitly in the same
transaction: the idempotency keys whose request created it (a retry of that request then finds
nothing to replay) and a worker row's stale mention of it.  Nothing is left that names it.
"""

from __future__ import annotations

from sqlalchemy import delete, select, true, update
from sqlalchemy.orm import Session

from .auth import UserInfo
from .db import Store
from .models import Dataset, IdempotencyKey, Job, Worker


def _visible(model, user: UserInfo | None):
    return true() if user is None or user.is_admin else model.user_id == user.id


def _forget_keys(s: Session, user_id: int, resource_id: str) -> None:
    """Delete the owner's idempotency keys that name ``resource_id`` (JSON lists: filtered here, a user
    holds at most a day's worth of keys)."""
    rows = s.execute(
        select(IdempotencyKey.key, IdempotencyKey.resources).where(IdempotencyKey.user_id == user_id)
    ).all()
    keys = [r.key for r in rows if resource_id in (r.resources or [])]
    if keys:
        s.execute(delete(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key.in_(keys)))


def delete_job(store: Store, job_id: str, user: UserInfo | None) -> str | None:
    """Delete a job that is not running: ``"deleted"``, ``"running"`` (it runs: cancel it first; nothing
    was deleted), or None (missing or not visible to ``user``; admins see every job).

    One conditional ``DELETE ... WHERE status <> 'running'``: a claim racing with it either comes first
    (the answer is ``"running"``) or finds no row to claim.
    """
    with store.session() as s:
        owner = s.scalar(select(Job.user_id).where(Job.id == job_id, _visible(Job, user)))
        if owner is None:
            return None
        gone = s.execute(
            delete(Job).where(Job.id == job_id, Job.status != "running").returning(Job.id),
            execution_options={"synchronize_session": False},
        ).first()
        if gone is None:
            return "running"
        _forget_keys(s, owner, job_id)
        s.execute(
            update(Worker).where(Worker.job_id == job_id).values(job_id=None),
            execution_options={"synchronize_session": False},
        )
    return "deleted"


def delete_dataset(store: Store, dataset_id: str, user: UserInfo | None) -> str | None:
    """Delete an uploaded dataset: ``"deleted"``, ``"in_use"`` (a queued or running job trains on it;
    nothing was deleted), or None (missing or not visible to ``user``)."""
    with store.session() as s:
        owner = s.scalar(select(Dataset.user_id).where(Dataset.id == dataset_id, _visible(Dataset, user)))
        if owner is None:
            return None
        users = s.scalar(
            select(Job.id)
            .where(Job.status.in_(("queued", "running")), Job.spec["data"]["dataset"].as_string() == dataset_id)
            .limit(1)
        )
        if users is not None:
            return "in_use"
        s.execute(delete(Dataset).where(Dataset.id == dataset_id))
        _forget_keys(s, owner, dataset_id)
    return "deleted"

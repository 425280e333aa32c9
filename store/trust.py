"""Trust (docs/trust.md): a job's environment, its reproductions, and their certificates."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from convlab.names import TERMINAL_STATUSES

from .auth import UserInfo
from .db import Store
from .idempotency import IdempotentRequest, record_idempotency_key
from .jobs import _load, _update, _visible
from .models import Job, JobTag


def set_environment(store: Store, job_id: str, environment: dict[str, Any], worker: str) -> bool:
    """Record where the job runs (``engine.environment``); only while it runs on ``worker``. True if written."""
    with store.session() as s:
        return (
            _update(s, Job.id == job_id, Job.status == "running", Job.worker == worker, environment=environment)
            is not None
        )


def create_reproduction(
    store: Store,
    job_id: str,
    user: UserInfo,
    tolerance: float | None = None,
    idempotency: IdempotentRequest | None = None,
) -> dict[str, Any] | None:
    """A queued copy of job ``job_id`` (same spec, so the same seed) that ``reproduces`` it; None if not visible.

    Owned by the caller.  Its ``not_worker`` hint is the worker that ran the
    original, so another live worker takes it when there is one.
    ``tolerance``: the certificate's, instead of the configured default.
    ``idempotency``: the request's key, recorded in the same transaction.
    """
    with store.session() as s:
        original = s.execute(select(Job).where(Job.id == job_id, _visible(user))).scalar_one_or_none()
        if original is None:
            return None
        copy = Job(
            id=uuid.uuid4().hex,
            user_id=user.id,
            type=original.type,
            name=original.name,
            status="queued",
            spec=original.spec,
            max_attempts=original.max_attempts,
            reproduces=original.id,
            not_worker=original.worker,
            certify_tolerance=tolerance,
        )
        s.add(copy)
        s.add_all(JobTag(job_id=copy.id, tag=t) for t in dict.fromkeys(copy.spec.get("tags", [])))
        s.flush()
        if idempotency is not None:
            record_idempotency_key(s, idempotency, [copy.id])
        return _load(s, copy.id)


def certify(
    store: Store, job: dict[str, Any], compare: Callable[..., dict], default_tolerance: float
) -> dict[str, Any] | None:
    """The certificate of reproduction ``job`` (a store job dict), made and stored once both runs are terminal.

    ``compare(original, reproduction, tolerance, load)`` makes it (service.trust
    passes ``engine.certificate``'s); ``load(job_id, name)`` reads artifacts.
    Two readers racing both compute it; the first stored wins and both answer it.
    """
    if job.get("certificate") is not None or not job.get("reproduces") or job["status"] not in TERMINAL_STATUSES:
        return job.get("certificate")
    original = _load_plain(store, job["reproduces"])
    if original is None or original["status"] not in TERMINAL_STATUSES:
        return None
    with store.session() as s:
        tolerance = s.scalar(select(Job.certify_tolerance).where(Job.id == job["id"]))
    cert = compare(original, job, default_tolerance if tolerance is None else tolerance)
    with store.session() as s:
        _update(s, Job.id == job["id"], Job.certificate.is_(None), certificate=cert)
        stored = s.scalar(select(Job.certificate).where(Job.id == job["id"]))
    return stored if stored is not None else cert


def _load_plain(store: Store, job_id: str) -> dict[str, Any] | None:
    with store.session() as s:
        return _load(s, job_id)

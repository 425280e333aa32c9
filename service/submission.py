"""Submitting a job, one way for the API and the dashboard: validate, store (commit), publish."""
from __future__ import annotations

from typing import Any

from flask import current_app, g

import store
from engine.spec import validate_job_spec

from .extension import convlab


def uploaded_shape(dataset_id: str) -> tuple[int, ...] | None:
    """Sample shape (C, H, W) of an uploaded dataset the signed-in user may use, None if unknown to them."""
    info = store.get_dataset(convlab().store, dataset_id, g.user)
    return None if info is None else tuple(info["shape"])


def validate(body: Any) -> dict[str, Any]:
    """The normalized spec, or SpecError with field paths; uploaded dataset ids resolve for ``g.user``."""
    return validate_job_spec(body, convlab().limits, datasets=uploaded_shape)


def enqueue(specs: list[dict[str, Any]], user: store.UserInfo,
            idempotency: store.IdempotentRequest | None = None) -> list[dict[str, Any]]:
    """Store validated specs as queued jobs (one transaction, with the request's idempotency key),
    then publish a wake-up for each.

    If publishing fails the job is still queued (the database is the queue);
    the workers' sweep publishes the missing wake-up within a heartbeat or two.
    The failure is logged.
    """
    ext = convlab()
    jobs = store.create_jobs(ext.store, user.id, specs, max_attempts=ext.settings.max_attempts,
                             idempotency=idempotency)
    for job in jobs:
        try:
            ext.publish(job["id"])          # only after the commit (docs/architecture.md)
        except Exception:
            current_app.logger.exception("publishing job %s failed; it stays queued", job["id"])
    return jobs

"""Submitting a job, one way for the API and the dashboard: validate, store (commit), publish."""

from __future__ import annotations

from typing import Any

from flask import current_app, g

import store
from engine.spec import validate_job_spec
from engine.work import dataset_samples, estimate_job_flops

from .errors import ApiError
from .extension import convlab


def uploaded_shape(dataset_id: str) -> tuple[int, ...] | None:
    """Sample shape (C, H, W) of an uploaded dataset the signed-in user may use, None if unknown to them."""
    info = store.get_dataset(convlab().store, dataset_id, g.user)
    return None if info is None else tuple(info["shape"])


def validate(body: Any) -> dict[str, Any]:
    """The normalized spec, or SpecError with field paths; uploaded dataset ids resolve for ``g.user``."""
    return validate_job_spec(body, convlab().limits, datasets=uploaded_shape)


def quota_error(e: store.QuotaExceeded, path: str = "") -> ApiError:
    """A limit the request would pass: 429 with the limit's name and numbers (and Retry-After when waiting helps)."""
    headers = {"Retry-After": str(e.retry_after_s)} if e.retry_after_s else None
    return ApiError(
        429,
        e.message,
        details=[{"path": path or e.limit, "message": e.message}],
        code="quota_exceeded",
        headers=headers,
    )


def job_flops(spec: dict[str, Any]) -> int:
    """The estimated operations of a validated spec (engine.work), its dataset's size looked up for ``g.user``."""
    dataset = (spec.get("data") or {}).get("dataset")
    uploaded = None
    if dataset is not None and dataset_samples(dataset) is None:
        info = store.get_dataset(convlab().store, dataset, g.user)
        uploaded = None if info is None else info["samples"]
    return estimate_job_flops(spec, dataset_samples(dataset, uploaded) if dataset else None)


def check_compute(specs: list[dict[str, Any]], user: store.UserInfo) -> None:
    """ApiError 429 if a spec's estimated work is over the user's compute limit (retrying cannot help:
    no Retry-After); ``[i].`` prefixes the path in a batch."""
    ext = convlab()
    limit = store.user_limits(ext.store, user.id, ext.quota).max_compute
    if limit is None:
        return
    for i, spec in enumerate(specs):
        flops = job_flops(spec)
        if flops > limit:
            section = spec["type"]  # "train" or "gradcheck": where the work is asked for
            prefix = f"[{i}]." if len(specs) > 1 else ""
            message = (
                f"the job would take an estimated {flops:.3g} floating-point operations, over your "
                f"compute limit of {limit:.3g} per job (fewer epochs, a smaller model or dataset)"
            )
            raise ApiError(
                429, message, code="quota_exceeded", details=[{"path": prefix + section, "message": message}]
            )


def enqueue(
    specs: list[dict[str, Any]], user: store.UserInfo, idempotency: store.IdempotentRequest | None = None
) -> list[dict[str, Any]]:
    """Store validated specs as queued jobs (one transaction, with the request's idempotency key),
    then publish a wake-up for each.

    The user's limits are checked first (compute per job here; queued jobs and storage inside
    the storing transaction): past one, ApiError 429 and nothing is stored.
    If publishing fails the job is still queued (the database is the queue);
    the workers' sweep publishes the missing wake-up within a heartbeat or two.
    The failure is logged.
    """
    ext = convlab()
    check_compute(specs, user)
    try:
        jobs = store.create_jobs(
            ext.store, user.id, specs, max_attempts=ext.settings.max_attempts, idempotency=idempotency, quota=ext.quota
        )
    except store.QuotaExceeded as e:
        raise quota_error(e) from None
    for job in jobs:
        try:
            ext.publish(job["id"])  # only after the commit (docs/architecture.md)
        except Exception:
            current_app.logger.exception("publishing job %s failed; it stays queued", job["id"])
    return jobs

"""``POST /api/v1/jobs/{id}/reproduce`` and the certificate of a reproduction (docs/trust.md)."""

from __future__ import annotations

import math

from flask import Blueprint, current_app, g, make_response, request, url_for

import store
from convlab.names import WEIGHTS
from engine.certificate import Run, certify
from engine.jobs import weights_from_bytes

from .errors import ApiError
from .extension import convlab
from .idempotency import canonical_json, once
from .params import json_object
from .schemas import job_json

bp = Blueprint("trust", __name__, url_prefix="/jobs")

MAX_TOLERANCE = 1.0


def _run(job: dict) -> Run:
    """Everything of a finished job that a certificate compares, read at full resolution."""
    db = convlab().store
    blob = store.load_artifact(db, job["id"], WEIGHTS) if job["type"] == "train" else None
    return Run(
        status=job["status"],
        metrics=store.get_metrics(db, job["id"]),
        nonfinite=store.get_nonfinite(db, job["id"]),
        result=job["result"],
        triage=job.get("triage"),
        weights=None if blob is None else weights_from_bytes(blob),
        environment=job.get("environment"),
    )


def with_certificate(job: dict) -> dict:
    """``job`` with its certificate, made (and stored) now if it reproduces a job and both are terminal."""
    if not job.get("reproduces") or job.get("certificate") is not None:
        return job
    ext = convlab()
    cert = store.certify(
        ext.store, job, lambda a, b, tol: certify(_run(a), _run(b), tol), ext.settings.certificate_tolerance
    )
    return {**job, "certificate": cert}


def _tolerance(body: dict) -> float | None:
    """The body's optional ``tolerance``: 422 naming the field unless a number in (0, 1]."""
    unknown = sorted(set(body) - {"tolerance"})
    if unknown:
        raise ApiError(
            422,
            "unknown fields",
            code="invalid_request",
            details=[{"path": k, "message": "unknown field"} for k in unknown],
        )
    tol = body.get("tolerance")
    if tol is None:
        return None
    if (
        isinstance(tol, bool)
        or not isinstance(tol, (int, float))
        or not math.isfinite(tol)
        or not 0 < tol <= MAX_TOLERANCE
    ):
        raise ApiError(
            422,
            "invalid tolerance",
            code="invalid_request",
            details=[{"path": "tolerance", "message": f"a number in (0, {MAX_TOLERANCE:g}]"}],
        )
    return float(tol)


def reproduce(job_id: str, body: dict, idempotency: store.IdempotentRequest | None = None):
    """Queue a reproduction of ``job_id`` for ``g.user`` and publish its wake-up: the API's and the
    dashboard's one path.  404 for a job the user may not see."""
    tolerance = _tolerance(body)
    ext = convlab()
    if store.get_job(ext.store, job_id, g.user) is None:
        raise ApiError(404, f"no job {job_id[:64]!r}")
    job = store.create_reproduction(ext.store, job_id, g.user, tolerance, idempotency)
    try:
        ext.publish(job["id"])
    except Exception:
        current_app.logger.exception("publishing job %s failed; it stays queued", job["id"])
    return job


@bp.post("/<job_id>/reproduce")
def reproduce_job(job_id: str):
    """Re-run the job's spec (so its seed) as a new job that ``reproduces`` it, on another worker when one is live.

    Optional body ``{"tolerance": x}`` (default ``CONVLAB_CERTIFICATE_TOLERANCE``).
    Answers 201 with the new job; once both jobs are terminal, ``GET`` of the
    new job carries its ``certificate`` (docs/trust.md).
    """
    body = json_object() if request.content_length else {}

    def answer(job: dict):
        return make_response((job_json(job), 201, {"Location": url_for("api.jobs.get_job", job_id=job["id"])}))

    def replay(ids):
        job = store.get_job(convlab().store, ids[0], g.user)
        if job is None:
            raise ApiError(404, f"no job {ids[0][:64]!r}")
        return answer(job)

    return once(
        "jobs.reproduce",
        job_id.encode() + b"\0" + canonical_json(body),
        create=lambda idem: answer(reproduce(job_id, body, idem)),
        replay=replay,
    )

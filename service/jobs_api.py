"""``/api/v1/jobs``: submit, list, read, cancel; a job's metric series and trained weights."""

from __future__ import annotations

from flask import Blueprint, Response, g, make_response, url_for

import store
from convlab.names import WEIGHTS
from engine.spec import JOB_TYPES

from .errors import ApiError
from .extension import convlab
from .idempotency import canonical_json, once
from .params import Query, json_object
from .queue_eta import queue_etas
from .schemas import job_json
from .submission import enqueue, validate
from .trust_api import with_certificate

bp = Blueprint("jobs", __name__, url_prefix="/jobs")

DEFAULT_LIMIT, MAX_LIMIT = 50, 500
MAX_OFFSET = 2**31 - 1
DEFAULT_POINTS, MAX_POINTS = 2000, 100_000


def _visible_job(job_id: str) -> dict:
    """The job if the caller may see it (their own; admins: any), else 404."""
    job = store.get_job(convlab().store, job_id, g.user)
    if job is None:
        raise ApiError(404, f"no job {job_id[:64]!r}")
    return job


def _shown(job: dict, positions: dict[str, int] | None = None, etas: dict[str, float] | None = None) -> dict:
    """The job as answered, with its queue position and start estimate while queued (``positions``,
    ``etas``: looked up for a page at once)."""
    if positions is None:
        positions = store.queue_positions(
            convlab().store, [job["id"]] if job["status"] == "queued" else [], convlab().settings.max_running_jobs
        )
        etas = queue_etas(convlab().store, convlab().settings.worker_alive_s, positions)
    return job_json(job, positions.get(job["id"]), (etas or {}).get(job["id"]))


@bp.post("")
def submit_job():
    """Submit a job spec (docs/reference/job-spec.md). It is validated, stored as queued (committed), then published.

    Answers 201 with the job and its ``Location``. ``data.dataset`` is a
    built-in name or the id of a dataset the caller uploaded. If publishing
    fails the job stays queued, and the workers' sweep publishes
    the missing wake-up; the failure is logged.
    With an ``Idempotency-Key`` header a retry returns the first answer
    (the job as it is now) and creates nothing.
    """
    body = json_object()

    def answer(job: dict):
        return make_response((_shown(job), 201, {"Location": url_for(".get_job", job_id=job["id"])}))

    return once(
        "jobs.submit",
        canonical_json(body),
        create=lambda idem: answer(enqueue([validate(body)], g.user, idem)[0]),
        replay=lambda ids: answer(_visible_job(ids[0])),
    )


@bp.get("")
def list_jobs():
    """List the caller's jobs (admins: everyone's), newest first, with filters and paging.

    ``status``, ``type``, ``tag`` filter exactly; ``search`` matches part of
    the name or the start of the id. ``total`` counts every matching job.
    """
    q = Query()
    status = q.choice("status", store.STATUSES)
    job_type = q.choice("type", JOB_TYPES)
    tag = q.text("tag", 64)
    search = q.text("search", 200)
    limit = q.integer("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = q.integer("offset", 0, 0, MAX_OFFSET)
    q.check()
    jobs, total = store.list_jobs(
        convlab().store, g.user, status=status, type=job_type, tag=tag, search=search, limit=limit, offset=offset
    )
    positions = store.queue_positions(
        convlab().store, [j["id"] for j in jobs if j["status"] == "queued"], convlab().settings.max_running_jobs
    )
    etas = queue_etas(convlab().store, convlab().settings.worker_alive_s, positions)
    return {"jobs": [_shown(j, positions, etas) for j in jobs], "total": total}


@bp.get("/<job_id>")
def get_job(job_id: str):
    """One job: spec, status, progress, result or error; a reproduction's certificate once both runs finished."""
    return _shown(with_certificate(_visible_job(job_id)))


@bp.get("/<job_id>/metrics")
def job_metrics(job_id: str):
    """The job's metric series as ``[step, value]`` points (``names``: comma-separated, default all).

    A series longer than ``max_points`` is downsampled by min/max buckets, so spikes stay visible.
    A non-finite value is null in ``series``; ``nonfinite`` lists every such point with its kind
    (``"nan"``, ``"inf"``, ``"-inf"``), never downsampled (docs/reference/results.md).
    """
    _visible_job(job_id)
    q = Query()
    names = q.text("names", 2000)
    max_points = q.integer("max_points", DEFAULT_POINTS, 2, MAX_POINTS)
    q.check()
    selected = None if names is None else [n.strip() for n in names.split(",") if n.strip()]
    db = convlab().store
    return {
        "series": store.get_metrics(db, job_id, selected, max_points),
        "nonfinite": store.get_nonfinite(db, job_id, selected),
    }


@bp.post("/<job_id>/cancel")
def cancel_job(job_id: str):
    """Cancel a job: 200 if it was queued (cancelled now), 202 if it runs (it stops at its next
    heartbeat), 409 if it had already finished."""
    outcome = store.request_cancel(convlab().store, job_id, g.user)
    if outcome is None:
        raise ApiError(404, f"no job {job_id[:64]!r}")
    job = _visible_job(job_id)
    if outcome == "finished":
        raise ApiError(409, f"the job has already finished: it is {job['status']}")
    return {"job": _shown(job)}, 200 if outcome == "cancelled" else 202


@bp.delete("/<job_id>")
def delete_job(job_id: str):
    """Delete a job with its metric points, checkpoints and weights (yours; admins: anyone's): 204.

    A running job is not deleted (409): cancel it first, and delete it once it
    has stopped.  A queued job is deleted at once and never runs.
    """
    outcome = store.delete_job(convlab().store, job_id, g.user)
    if outcome is None:
        raise ApiError(404, f"no job {job_id[:64]!r}")
    if outcome == "running":
        raise ApiError(
            409, "the job is running: cancel it first (POST /jobs/{id}/cancel), then delete it once it has stopped"
        )
    return Response(status=204)


@bp.get(f"/<job_id>/artifacts/{WEIGHTS}")
def job_weights(job_id: str):
    """The trained weights as ``.npz`` (docs/reference/weights.md: ``net.params`` keys); 404 until there are some."""
    _visible_job(job_id)
    data = store.load_artifact(convlab().store, job_id, WEIGHTS)
    if data is None:
        raise ApiError(404, "the job has no weights yet")
    return Response(
        data,
        mimetype="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{job_id}-{WEIGHTS}"', "Cache-Control": "no-store"},
    )

"""``GET /api/v1/jobs/{id}/events``: the job's Server-Sent Events, as the dashboard gets them, with token auth
(the Python client's ``Job.stream()``)."""

from __future__ import annotations

from flask import Blueprint, g

import store

from .dashboard.live import event_response
from .errors import ApiError
from .extension import convlab

bp = Blueprint("events", __name__, url_prefix="/jobs")


@bp.get("/<job_id>/events")
def job_events(job_id: str):
    """The job's Server-Sent Events until it ends: ``job`` (its state), ``series`` and ``points`` (metrics), ``end``.

    The same stream as the dashboard's (docs/reference/http-api.md#server-sent-events):
    ``max_points`` (2..20000, default 2000) bounds each series; a stream lives
    at most 600 s, then ends without ``end`` and the client reconnects.
    """
    job = store.get_job(convlab().store, job_id, g.user)
    if job is None:
        raise ApiError(404, f"no job {job_id[:64]!r}")
    return event_response(job)

"""The job page's trust cards (docs/trust.md): the reproduce button, and what the triage, certificate
and layer-health cards draw."""

from __future__ import annotations

from flask import abort, flash, g, redirect, url_for

import store

from ..errors import ApiError
from ..extension import convlab
from ..trust_api import reproduce as queue_reproduction
from ..trust_api import with_certificate
from . import bp
from .live import visible_job


@bp.post("/jobs/<job_id>/reproduce")
def reproduce(job_id: str):
    """Queue a reproduction of the job (another worker when one is live), then show the new job."""
    visible_job(job_id)
    try:
        job = queue_reproduction(job_id, {})
    except ApiError as exc:  # the job vanished in between
        abort(exc.status if exc.status < 500 else 500)
    flash("Reproduction queued: its certificate appears here once both runs have finished.", "info")
    return redirect(url_for("dashboard.job", job_id=job["id"]))


@bp.get("/jobs/<job_id>/trust.json")
def trust_json(job_id: str):
    """``{"environment", "triage", "reproduces", "certificate", "original": {id, name, environment} | null}``."""
    job = with_certificate(visible_job(job_id))
    original = None
    if job.get("reproduces"):
        other = store.get_job(convlab().store, job["reproduces"], g.user)
        if other is not None:
            original = {
                "id": other["id"],
                "name": other["name"],
                "status": other["status"],
                "environment": other.get("environment"),
                "series": url_for("dashboard.series_json", job_id=other["id"]),
            }
    return {
        "environment": job.get("environment"),
        "triage": job.get("triage"),
        "reproduces": job.get("reproduces"),
        "certificate": job.get("certificate"),
        "original": original,
    }

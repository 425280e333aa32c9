"""The dashboard's pages.  Each renders its frame and first data on the server; the page's
script keeps it live from ``live``'s JSON and event endpoints."""

from __future__ import annotations

import json
from typing import Any

from flask import flash, g, redirect, render_template, request, url_for

import store
from engine.spec import JOB_TYPES

from ..extension import convlab
from . import bp
from .live import job_filters, job_state, jobs_page, visible_job

MAX_COMPARED = 8


@bp.get("/")
def index():
    """The dashboard's home is the jobs table."""
    return redirect(url_for("dashboard.jobs"))


@bp.get("/jobs")
def jobs():
    """The jobs table: filters, search, pages; live while open."""
    data = jobs_page(job_filters(request.args))
    ext = convlab()
    usage = {**store.usage(ext.store, g.user.id), "limits": store.user_limits(ext.store, g.user.id, ext.quota)}
    return render_template("jobs.html", data=data, statuses=store.STATUSES, types=JOB_TYPES, usage=usage)


def ablation_partner(job: dict[str, Any]) -> dict[str, Any] | None:
    """For a gradient check: the newest visible one of the same model with ``rotate_kernels`` flipped."""
    if job["type"] != "gradcheck":
        return None
    candidates, _ = store.list_jobs(convlab().store, g.user, type="gradcheck", limit=200)
    rotate = job["spec"]["gradcheck"]["rotate_kernels"]
    return next(
        (
            c
            for c in candidates
            if c["id"] != job["id"]
            and c["spec"]["model"] == job["spec"]["model"]
            and c["spec"]["gradcheck"]["rotate_kernels"] != rotate
        ),
        None,
    )


@bp.get("/jobs/<job_id>")
def job(job_id: str):
    """One job: live curves, result, kernels or gradient-check report, actions, spec and error."""
    job = visible_job(job_id)
    state = job_state(convlab().store, job, convlab().settings)
    return render_template(
        "job.html", job=job, state=state, spec_json=json.dumps(job["spec"], indent=2), partner=ablation_partner(job)
    )


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str):
    """Cancel the job (queued: now; running: at its next heartbeat), then back to its page."""
    outcome = store.request_cancel(convlab().store, job_id, g.user)
    if outcome is None:
        visible_job(job_id)  # 404
    messages = {
        "cancelled": "Cancelled.",
        "requested": "Cancel requested: the job stops at its next heartbeat.",
        "finished": "The job had already finished.",
    }
    flash(messages[outcome], "warning" if outcome == "finished" else "info")
    return redirect(url_for("dashboard.job", job_id=job_id))


@bp.post("/jobs/<job_id>/delete")
def delete(job_id: str):
    """Delete the job with everything it holds (the page asks first), then back to the jobs table;
    a running job is not deleted: cancel it first."""
    outcome = store.delete_job(convlab().store, job_id, g.user)
    if outcome is None:
        visible_job(job_id)  # 404
    if outcome == "running":
        flash("The job is running: cancel it first, then delete it once it has stopped.", "warning")
        return redirect(url_for("dashboard.job", job_id=job_id))
    flash("Deleted.", "info")
    return redirect(url_for("dashboard.jobs"))


def _ids() -> list[str]:
    """The job ids of ``?ids=a,b`` or ``?ids=a&ids=b`` (as many as the page shows)."""
    raw = ",".join(request.args.getlist("ids")).split(",")
    return [i.strip() for i in dict.fromkeys(raw) if i.strip()][:MAX_COMPARED]


@bp.get("/gradcheck")
def gradcheck():
    """Gradient-check reports side by side (``?ids=a,b``: e.g. rotated and unrotated)."""
    jobs = [visible_job(i) for i in _ids()]
    return render_template("gradcheck.html", jobs=jobs)


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}``; list items as ``[i]`` (as the spec errors name them)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{path}.{key}" if path else key))
        return out
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{path}[{i}]"))
        return out
    return {path: value}


def spec_differences(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The spec fields whose values are not all equal: ``[{"path", "cells": [one per job]}]``."""
    flat = [flatten(s) for s in specs]
    paths = list(dict.fromkeys(p for f in flat for p in f))
    missing = object()
    rows = []
    for p in paths:
        values = [f.get(p, missing) for f in flat]
        if any(v != values[0] for v in values[1:]):
            rows.append({"path": p, "cells": ["–" if v is missing else json.dumps(v) for v in values]})
    return rows


@bp.get("/compare")
def compare():
    """The curves of the selected jobs overlaid, and how their specs differ."""
    jobs = [visible_job(i) for i in _ids()]
    return render_template("compare.html", jobs=jobs, differences=spec_differences([j["spec"] for j in jobs]))


@bp.get("/workers")
def workers():
    """Live workers: heartbeat age and current job."""
    ext = convlab()
    workers = store.live_workers(ext.store, ext.settings.worker_alive_s, viewer=g.user)
    return render_template("workers.html", workers=workers)

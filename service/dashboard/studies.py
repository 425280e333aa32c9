"""The dashboard's study pages: the list, one study (live trials table, best so far, parallel
coordinates, overlaid validation curves), and a form to start a study, e.g. "sweep this" from a job."""

from __future__ import annotations

import json

from flask import flash, g, make_response, redirect, render_template, request, url_for

import store
from convlab.studies.space import validate_study
from convlab.studies.trials import plan, spec_maker

from ..errors import ApiError
from ..extension import convlab
from ..idempotency import canonical_json, once
from ..studies_api import shown_study
from ..submission import validate
from . import bp
from .live import visible_job
from .submit import templates

# The space a "sweep this" starts from: the learning rate around the job's own (editable).
SWEEP_FIELDS = ("name", "tags")


def _study(study_id: str) -> tuple[dict, list[dict]]:
    found = store.get_study(convlab().store, study_id, g.user)
    if found is None:
        raise ApiError(404, f"no study {study_id[:64]!r}")
    return found


@bp.get("/studies")
def studies():
    """The caller's studies, newest first, with their counts and best value."""
    rows, total = store.list_studies(convlab().store, g.user, limit=100)
    shown = [shown_study(*_study(s["id"]), full=False) for s in rows]
    return render_template("studies.html", studies=shown, total=total)


@bp.get("/studies/<study_id>")
def study(study_id: str):
    """One study; the page's script keeps it live from ``study.json``."""
    data = shown_study(*_study(study_id))
    return render_template("study.html", study=data, study_json=json.dumps(data))


@bp.get("/studies/<study_id>/study.json")
def study_json(study_id: str):
    """The study as the API answers it (trials, configurations, best), for the page's polling."""
    return shown_study(*_study(study_id))


@bp.post("/studies/<study_id>/cancel")
def cancel_study(study_id: str):
    """Cancel the study (queued trials now, running ones at their next heartbeat), back to its page."""
    outcome = store.cancel_study(convlab().store, study_id, g.user)
    if outcome is None:
        _study(study_id)  # 404
    flash(
        "Study cancelled." if outcome == "cancelled" else "The study had already finished.",
        "info" if outcome == "cancelled" else "warning",
    )
    return redirect(url_for("dashboard.study", study_id=study_id))


def sweep_of(job: dict | None) -> dict:
    """A study to start from: the job's spec as the base (or a template) and a learning-rate space."""
    if job is None:
        base = next((t["spec"] for t in templates() if t["spec"].get("type") == "train"), {})
        name = "sweep"
    else:
        base = {k: v for k, v in job["spec"].items() if k not in SWEEP_FIELDS}
        name = f"sweep of {job['name']}"[:150]
    lr = ((base.get("train") or {}).get("optimizer") or {}).get("lr", 0.1)
    return {
        "name": name,
        "base": base,
        "algorithm": "grid",
        "space": {"train.optimizer.lr": {"type": "choice", "values": [round(lr / 3, 6), lr, round(lr * 3, 6)]}},
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "seeds": 1,
        "pruner": {"type": "none"},
    }


@bp.get("/studies/new")
def new_study():
    """The study form: ``?from=JOB`` fills it from that job ("sweep this"); the trial count updates as you type."""
    job_id = request.args.get("from")
    job = visible_job(job_id) if job_id else None
    return render_template("study_new.html", job=job, study_json=json.dumps(sweep_of(job), indent=2))


@bp.post("/studies/new")
def create_study():
    """Create the posted study (422 with field paths, as the API); 201 ``{"id", "location"}``."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object (a study spec)", code="malformed_json")
    ext = convlab()

    def answer(study_id: str):
        return make_response(({"id": study_id, "location": url_for("dashboard.study", study_id=study_id)}, 201))

    def create(idem):
        workers = len(store.live_workers(ext.store, ext.settings.worker_alive_s))
        spec = validate_study(body, validate, workers)
        created_study, created = store.create_study(
            ext.store, g.user.id, spec, plan, spec_maker(validate), ext.settings.max_attempts, idempotency=idem
        )
        for job_id in created:
            try:
                ext.publish(job_id)
            except Exception:  # noqa: BLE001 - the workers' sweep publishes what is missing
                break
        return answer(created_study["id"])

    return once("dashboard.study", canonical_json(body), create=create, replay=lambda ids: answer(ids[0]))

"""``/api/v1/studies``: create a study (every trial spec checked first), list, read with its trials and best,
download the trials as CSV or JSON, cancel (docs/reference/studies.md, docs/studies.md)."""

from __future__ import annotations

import csv
import io
import json

from flask import Blueprint, Response, current_app, g, make_response, url_for

import store
from convlab.studies.space import validate_study
from convlab.studies.trials import best, configurations, plan, spec_maker

from .errors import ApiError
from .extension import convlab
from .idempotency import canonical_json, once
from .params import Query, json_object
from .schemas import study_json, trial_json
from .submission import validate

bp = Blueprint("studies", __name__, url_prefix="/studies")

DEFAULT_LIMIT, MAX_LIMIT = 50, 500


def _visible_study(study_id: str) -> tuple[dict, list[dict]]:
    """The study and its trials if the caller may see it, else 404."""
    found = store.get_study(convlab().store, study_id, g.user)
    if found is None:
        raise ApiError(404, f"no study {study_id[:64]!r}")
    return found


def shown_study(study: dict, trials: list[dict], full: bool = True) -> dict:
    """The study as answered, with counts and ``best``; ``full``: its configurations and trials too."""
    counts: dict[str, int] = {}
    for t in trials:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    extra = {"counts": counts, "best": best(study["spec"], trials)}
    if full:
        extra.update(configurations=configurations(study["spec"], trials), trials=[trial_json(t) for t in trials])
    return study_json({**study, **extra})


def _publish(job_ids: list[str]) -> None:
    """Wake-ups for new trials; a failure is logged (the workers' sweep publishes what is missing)."""
    for job_id in job_ids:
        try:
            convlab().publish(job_id)
        except Exception:
            current_app.logger.exception("publishing trial %s failed; it stays queued", job_id)
            return


@bp.post("")
def create_study():
    """Create a study: 201 with the study; 422 with field paths if it, or any trial spec it can make, is invalid.

    Its first trials (up to ``max_concurrent``) are queued in the same transaction.
    """
    body = json_object()
    ext = convlab()

    def create(idem):
        workers = len(store.live_workers(ext.store, ext.settings.worker_alive_s))
        spec = validate_study(body, validate, workers)
        study, created = store.create_study(
            ext.store, g.user.id, spec, plan, spec_maker(validate), ext.settings.max_attempts, idempotency=idem
        )
        _publish(created)
        return answer(study["id"])

    def answer(study_id: str):
        study, trials = _visible_study(study_id)
        return make_response((shown_study(study, trials), 201, {"Location": url_for(".get_study", study_id=study_id)}))

    return once("studies.create", canonical_json(body), create=create, replay=lambda ids: answer(ids[0]))


@bp.get("")
def list_studies():
    """The caller's studies (admins: everyone's), newest first, with trial counts by status."""
    q = Query()
    limit = q.integer("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = q.integer("offset", 0, 0, 2**31 - 1)
    q.check()
    studies, total = store.list_studies(convlab().store, g.user, limit=limit, offset=offset)
    shown = []
    for s in studies:
        found = store.get_study(convlab().store, s["id"], g.user)
        if found is not None:  # not deleted between the two reads
            shown.append(shown_study(*found, full=False))
    return {"studies": shown, "total": total}


@bp.get("/<study_id>")
def get_study(study_id: str):
    """One study: status, spec, counts, best (params, value, trial job id), configurations, every trial."""
    return shown_study(*_visible_study(study_id))


@bp.get("/<study_id>/trials")
@bp.get("/<study_id>/trials.json")
def study_trials(study_id: str):
    """The study's trials: job id, number, params, seed, status, objective value, epochs completed."""
    _, trials = _visible_study(study_id)
    return {"trials": [trial_json(t) for t in trials]}


@bp.get("/<study_id>/trials.csv")
def study_trials_csv(study_id: str):
    """The trials as CSV: one row per trial, one column per parameter (JSON-encoded values)."""
    study, trials = _visible_study(study_id)
    keys = list(study["spec"]["space"])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["number", "job_id", "status", "seed", "value", "epochs_completed", *keys])
    for t in trials:
        value = "" if t["value"] is None else repr(float(t["value"]))
        writer.writerow(
            [
                t["number"],
                t["job_id"],
                t["status"],
                t["seed"],
                value,
                t["epochs_completed"],
                *(json.dumps(t["params"].get(k)) for k in keys),
            ]
        )
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="study-{study_id}-trials.csv"'},
    )


@bp.post("/<study_id>/cancel")
def cancel_study(study_id: str):
    """Cancel a study: 200, its queued trials cancelled and its running ones told to stop; 409 if it had ended."""
    outcome = store.cancel_study(convlab().store, study_id, g.user)
    if outcome is None:
        raise ApiError(404, f"no study {study_id[:64]!r}")
    study, trials = _visible_study(study_id)
    if outcome == "finished":
        raise ApiError(409, f"the study has already finished: it is {study['status']}")
    return {"study": shown_study(study, trials)}, 200

"""The Submit page: templates from ``convlab/examples/``, a form and a JSON editor, and the post that
submits one spec or a batch of them (the ablation pair): all validated first, then each
stored and published as the API does."""

from __future__ import annotations

import importlib.resources
import json
from typing import Any

from flask import g, make_response, render_template, request, url_for

import store
from engine.spec import ACTIVATIONS, BUILTIN_DATASETS, DTYPES, JOB_TYPES, LAYER_TYPES, LOSSES, OPTIMIZERS, SpecError
from engine.summary import model_summary

from ..errors import ApiError
from ..extension import convlab
from ..idempotency import canonical_json, once
from ..params import parse_json, request_body
from ..schemas import job_json
from ..submission import enqueue, uploaded_shape, validate
from . import bp
from .live import visible_job

# Package data, read through importlib.resources: the installed copy, wherever it runs from.
EXAMPLES = importlib.resources.files("convlab") / "examples"
# (key, label, example files): a template of several files submits them together.
TEMPLATES = (
    ("cnn-digits", "Small CNN on digits", ("cnn-digits",)),
    ("lenet-mnist", "LeNet on MNIST-5k", ("lenet-mnist",)),
    ("gradcheck", "Gradient check", ("gradcheck",)),
    (
        "ablation-pair",
        "Gradient check ablation pair (rotated vs rotate_kernels: false)",
        ("gradcheck", "gradcheck-ablation"),
    ),
)
MAX_BATCH = 8
# What the builder puts in a new layer (or optimizer) of each type: valid values to edit from.
LAYER_DEFAULTS = {
    "conv": {"type": "conv", "filters": 8, "kernel": 3, "activation": "relu"},
    "maxpool": {"type": "maxpool", "size": 2},
    "avgpool": {"type": "avgpool", "size": 2},
    "dense": {"type": "dense", "units": 10, "activation": "relu"},
    "dropout": {"type": "dropout", "rate": 0.5},
    "flatten": {"type": "flatten"},
}
OPTIMIZER_DEFAULTS = {"sgd": {"type": "sgd", "lr": 0.1, "momentum": 0.9}, "adam": {"type": "adam", "lr": 0.001}}


def builder_choices() -> dict[str, Any]:
    """The builder's drop-downs (the spec's own vocabularies; datasets: built-in and the user's uploads)
    and what a new layer or optimizer of each type starts as."""
    uploads = [
        {"value": d["id"], "label": f"{d['name']} ({d['id'][:8]}…)"}
        for d in store.list_datasets(convlab().store, g.user)
    ]
    return {
        "job_type": list(JOB_TYPES),
        "layer_type": list(LAYER_TYPES),
        "activation": list(ACTIVATIONS),
        "loss": list(LOSSES),
        "optimizer": list(OPTIMIZERS),
        "dtype": list(DTYPES),
        "dataset": [{"value": name, "label": name} for name in BUILTIN_DATASETS] + uploads,
        "layer_defaults": LAYER_DEFAULTS,
        "optimizer_defaults": OPTIMIZER_DEFAULTS,
    }


def templates() -> list[dict[str, Any]]:
    """The templates whose example files exist: ``{"key", "label", "spec"}`` (a list for a batch)."""
    out = []
    for key, label, files in TEMPLATES:
        paths = [EXAMPLES / f"{name}.json" for name in files]
        if all(p.is_file() for p in paths):
            specs = [json.loads(p.read_text()) for p in paths]
            out.append({"key": key, "label": label, "spec": specs[0] if len(specs) == 1 else specs})
    return out


@bp.get("/submit")
def submit_page():
    """The form; ``?template=KEY`` picks a template, ``?from=JOB_ID`` starts from a job's spec (retry)."""
    initial = None
    source = request.args.get("from")
    if source:
        initial = visible_job(source)["spec"]
    # json.dumps keeps each spec's own key order (type, name, model...), which the form follows.
    return render_template(
        "submit.html",
        templates=templates(),
        templates_json=json.dumps(templates()),
        choices_json=json.dumps(builder_choices()),
        initial_json=None if initial is None else json.dumps(initial),
        template=request.args.get("template", "cnn-digits"),
    )


@bp.post("/submit/summary")
def summary():
    """The model summary of the spec being edited (``POST /api/v1/specs/summary``'s, for the session's user)."""
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "the body must be JSON (a job spec)", code="malformed_json")
    return model_summary(body, convlab().limits, datasets=uploaded_shape)


def _specs(body: Any) -> list[Any]:
    """The posted spec, or the specs of a batch (a JSON array)."""
    if isinstance(body, list):
        if not 1 <= len(body) <= MAX_BATCH:
            raise ApiError(422, f"a batch holds 1 to {MAX_BATCH} specs", code="invalid_batch")
        return body
    return [body]


@bp.post("/submit")
def submit():
    """Validate every posted spec (422 with field paths, ``[i].`` first in a batch), then submit them all.

    Answers 201 ``{"jobs": [...], "location": URL}``: the job's page, or for a
    pair of gradient checks the page that shows them side by side.  A batch is
    stored in one transaction; an ``Idempotency-Key`` makes a retry (a double
    click) return the first answer.
    """
    if not request.is_json:
        raise ApiError(400, "the body must be JSON (a job spec, or an array of them)", code="malformed_json")
    body = parse_json(request_body())
    specs = _specs(body)

    def create(idempotency):
        valid, details = [], []
        for i, raw in enumerate(specs):
            try:
                valid.append(validate(raw))
            except SpecError as err:
                prefix = f"[{i}]." if len(specs) > 1 else ""
                details += [{"path": (prefix + d["path"]).rstrip("."), "message": d["message"]} for d in err.details]
        if details:
            raise SpecError(details)
        return answer(enqueue(valid, g.user, idempotency))  # a batch: all stored, or none

    def replay(ids: list[str]):
        return answer([visible_job(job_id) for job_id in ids])

    return once("dashboard.submit", canonical_json(body), create=create, replay=replay)


def answer(jobs: list[dict[str, Any]]):
    """201 ``{"jobs", "location"}``: where the browser goes next."""
    ids = [j["id"] for j in jobs]
    if len(jobs) == 1:
        location = url_for("dashboard.job", job_id=ids[0])
    elif all(j["type"] == "gradcheck" for j in jobs):
        location = url_for("dashboard.gradcheck", ids=",".join(ids))
    else:
        location = url_for("dashboard.jobs")
    return make_response(({"jobs": [job_json(j) for j in jobs], "location": location}, 201))

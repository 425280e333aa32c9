"""What a job page offers to download or draw: weights, metrics (CSV, JSON), first-layer kernels."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
from flask import Response, abort

import store
from convlab.names import WEIGHTS

from ..extension import convlab
from . import bp
from .live import visible_job

MAX_KERNELS, MAX_CHANNELS = 64, 4  # what the kernel picture shows at most


def _attachment(data: bytes | str, filename: str, mimetype: str) -> Response:
    """``data`` as a download named ``filename``."""
    return Response(
        data,
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@bp.get(f"/jobs/<job_id>/{WEIGHTS}")
def weights(job_id: str):
    """The trained weights (docs/reference/weights.md), 404 until there are some."""
    visible_job(job_id)
    data = store.load_artifact(convlab().store, job_id, WEIGHTS)
    if data is None:
        abort(404, description="This job has no weights (yet).")
    return _attachment(data, f"{job_id}-{WEIGHTS}", "application/octet-stream")


@bp.get("/jobs/<job_id>/metrics.json")
def metrics_json(job_id: str):
    """Every metric point at full resolution: ``{"job_id", "series": {name: [[step, value], ...]}}``."""
    visible_job(job_id)
    series = store.get_metrics(convlab().store, job_id)
    body = json.dumps({"job_id": job_id, "series": series}, separators=(",", ":"))
    return _attachment(body, f"{job_id}-metrics.json", "application/json")


@bp.get("/jobs/<job_id>/metrics.csv")
def metrics_csv(job_id: str):
    """Every metric point at full resolution, one ``series,step,value`` row each (empty value: not finite)."""
    visible_job(job_id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["series", "step", "value"])
    for name, points in store.get_metrics(convlab().store, job_id).items():
        writer.writerows([name, step, "" if value is None else repr(value)] for step, value in points)
    return _attachment(out.getvalue(), f"{job_id}-metrics.csv", "text/csv")


def first_conv(spec: dict) -> int | None:
    """Index in ``model.layers`` of the first conv layer, None without one."""
    return next((i for i, layer in enumerate(spec["model"]["layers"]) if layer["type"] == "conv"), None)


@bp.get("/jobs/<job_id>/kernels.json")
def kernels(job_id: str):
    """The first conv layer's learned kernels ``W[f, c]`` (at most 64 filters × 4 channels), to draw.

    ``{"layer": i, "shape": [F, C, kh, kw], "kernels": [[kh×kw lists per channel] per filter]}``;
    404 without a conv layer or weights.
    """
    job = visible_job(job_id)
    layer = first_conv(job["spec"])
    data = store.load_artifact(convlab().store, job_id, WEIGHTS) if layer is not None else None
    if data is None:
        abort(404, description="No conv kernels to show.")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        w = npz[f"layers.{layer}.W"]
    shown = np.round(w[:MAX_KERNELS, :MAX_CHANNELS].astype(np.float64), 5)
    return {"layer": layer, "shape": list(w.shape), "kernels": shown.tolist()}

"""``POST /api/v1/jobs/{id}/predict``: what a trained job's network makes of new inputs (docs/predictions.md)."""

from __future__ import annotations

from flask import Blueprint, g

import store

from .errors import ApiError
from .extension import convlab
from .params import json_object
from .predict_inputs import parse_inputs
from .predictions import predict

bp = Blueprint("predict", __name__, url_prefix="/jobs")


def run_prediction(job_id: str, body: dict) -> dict:
    """Check the job and the inputs, then predict: the API's and the dashboard's one code path.

    404 for a job the signed-in user may not see, 409 for a gradient check or
    a job without weights, 413 for too many inputs, 422 for bad ones.
    """
    ext = convlab()
    job = store.get_job(ext.store, job_id, g.user)
    if job is None:
        raise ApiError(404, f"no job {job_id[:64]!r}")
    if job["type"] != "train":
        raise ApiError(409, "a gradient check trains nothing: there are no weights to predict with")
    shape = tuple(job["spec"]["model"]["input_shape"])
    x = parse_inputs(body, shape, ext.settings.max_predict_batch, ext.settings.max_predict_pixels)
    return predict(job, x)


@bp.post("/<job_id>/predict")
def predict_job(job_id: str):
    """Predict with the job's trained weights: ``{"inputs": [...]}`` → ``{"predictions", "probabilities"}``.

    Each input is a ``C × H × W`` nested list of numbers scaled as the job's
    dataset (``[0, 1]``), or a base64 PNG (scaled ``pixel / 255``, converted
    to the model's channels and resized to its ``H × W``).  ``probabilities``
    are the output layer's activations (softmax: they sum to 1), computed in
    the job's dtype; ``predictions`` their argmax.
    """
    return run_prediction(job_id, json_object())

"""The job page's "try it" panel: predictions for a drawing, and the gallery of test images the
network gets wrong.  Both run the API's code (``service.predict_api``, ``service.predictions``)
with the dashboard's session and CSRF token instead of an API token (docs/predictions.md)."""

from __future__ import annotations

from ..params import json_object
from ..predict_api import run_prediction
from ..predictions import mistakes
from . import bp
from .live import visible_job

GALLERY = 48  # mistakes shown at most (the count of all of them is sent too)


@bp.post("/jobs/<job_id>/predict")
def predict(job_id: str):
    """What the network makes of ``{"inputs": [...]}``: as ``POST /api/v1/jobs/{id}/predict`` answers."""
    return run_prediction(job_id, json_object())


@bp.get("/jobs/<job_id>/mistakes.json")
def wrong_test_images(job_id: str):
    """The test images the trained network gets wrong, most confident first (at most :data:`GALLERY`)."""
    return mistakes(visible_job(job_id), GALLERY)

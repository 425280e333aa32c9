"""``POST /api/v1/specs/summary``: a job spec's model summary, without submitting anything."""

from __future__ import annotations

from flask import Blueprint

from engine.summary import model_summary

from .extension import convlab
from .params import json_object
from .submission import uploaded_shape

bp = Blueprint("specs", __name__, url_prefix="/specs")


@bp.post("/summary")
def summarize_spec():
    """Summarise a job spec's model: per layer output shape, parameters, multiply-adds, memory per batch.

    Answers 200 for any JSON object, valid or not: ``valid`` says whether
    ``POST /jobs`` would accept it, ``errors`` are that validation's problems
    (the same paths a 422 would give) and each layer row carries the ones
    about it, so the offending layer can be marked.  Nothing is stored.
    """
    return model_summary(json_object(), convlab().limits, datasets=uploaded_shape)

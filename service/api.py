"""The JSON API blueprint (``/api/v1``, docs/reference/http-api.md): token auth for every route, the resource
blueprints nested in it, and the small routes of its own (workers, OpenAPI document)."""

from __future__ import annotations

from flask import Blueprint, current_app, g

import store

from . import datasets_api, events_api, jobs_api, predict_api, specs_api, studies_api, tokens_api, trust_api, users_api
from .auth import require_token
from .extension import API_PREFIX, convlab
from .openapi import openapi_document

bp = Blueprint("api", __name__, url_prefix=API_PREFIX)
bp.before_request(require_token)  # runs for the nested blueprints too
bp.register_blueprint(jobs_api.bp)
bp.register_blueprint(datasets_api.bp)
bp.register_blueprint(predict_api.bp)
bp.register_blueprint(specs_api.bp)
bp.register_blueprint(events_api.bp)
bp.register_blueprint(tokens_api.bp)
bp.register_blueprint(studies_api.bp)
bp.register_blueprint(users_api.bp)
bp.register_blueprint(trust_api.bp)


@bp.get("/workers")
def list_workers():
    """Worker processes heard from recently, and the job each one runs (null when idle, and null when
    it is another user's job, unless the caller is an admin: job ids are not shared between users)."""
    ext = convlab()
    return {"workers": store.live_workers(ext.store, ext.settings.worker_alive_s, viewer=g.user)}


@bp.get("/openapi.json")
def openapi():
    """This API as an OpenAPI 3.1 document (the job spec schema is the engine's own)."""
    return openapi_document(current_app)

"""``GET /healthz`` (also under ``/api/v1``): no auth, 200 when the API and its database answer."""
from __future__ import annotations

from flask import Blueprint, current_app

import store

from .extension import API_PREFIX, convlab

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@bp.get(f"{API_PREFIX}/healthz")
def healthz():
    """Liveness and readiness: 200 ``{"status": "ok"}`` if the database answers, else 503."""
    try:
        store.ping(convlab().store)
    except Exception:                   # any failure means "not ready"
        current_app.logger.warning("health check: the database does not answer", exc_info=True)
        return {"status": "unavailable", "database": "unavailable"}, 503, {"Cache-Control": "no-store"}
    return {"status": "ok", "database": "ok"}, 200, {"Cache-Control": "no-store"}

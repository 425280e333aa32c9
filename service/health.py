"""``GET /healthz`` (also under ``/api/v1``): no auth, 200 when the API and its database answer."""

from __future__ import annotations

from flask import Blueprint

import store

from .extension import API_PREFIX, convlab
from .outage import RETRY_AFTER_S, database_state

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@bp.get(f"{API_PREFIX}/healthz")
def healthz():
    """Liveness and readiness: 200 ``{"status": "ok"}`` if the database answers, else 503."""
    try:
        store.ping(convlab().store)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        database_state().failed(exc)  # logged once per outage, not per probe
        return (
            {"status": "unavailable", "database": "unavailable"},
            503,
            {"Cache-Control": "no-store", "Retry-After": str(RETRY_AFTER_S)},
        )
    return {"status": "ok", "database": "ok"}, 200, {"Cache-Control": "no-store"}

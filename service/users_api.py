"""``/api/v1/users``: who am I, what do I use, and what may I use (``/users/me``); an admin reads
and sets one user's limits (``/users/{name}/limits``, docs/reference/http-api.md "Users and limits")."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

import store

from .errors import ApiError
from .extension import convlab
from .params import json_object

bp = Blueprint("users", __name__, url_prefix="/users")

# Bounds of an override: what the columns hold, and far beyond any sensible limit.
_INT_MAX = {"max_running": 2**31 - 1, "max_queued": 2**31 - 1, "max_storage": 2**62}
_COMPUTE_MAX = 1e30


@bp.get("/me")
def me():
    """The caller: name, admin or not, their effective limits and what they use now (jobs, storage bytes)."""
    ext = convlab()
    return {
        "name": g.user.name,
        "is_admin": g.user.is_admin,
        "limits": store.user_limits(ext.store, g.user.id, ext.quota).as_dict(),
        "usage": store.usage(ext.store, g.user.id),
    }


def _admin() -> None:
    if not g.user.is_admin:
        raise ApiError(403, "only an admin may read or set a user's limits (yours: GET /users/me)")


@bp.get("/<name>/limits")
def get_limits(name: str):
    """A user's limits (admins only): their overrides (null: the deployment's default) and the effective values."""
    _admin()
    ext = convlab()
    view = store.get_limits_by_name(ext.store, name, ext.quota)
    if view is None:
        raise ApiError(404, f"no user {name[:100]!r}")
    return view


def _limit_values(body: dict[str, Any]) -> dict[str, Any]:
    """The overrides of a PUT body; 422 with a path per bad field."""
    details, values = [], {}
    for key, value in body.items():
        if key not in store.LIMIT_FIELDS:
            details.append({"path": key[:100], "message": f"unknown field; known: {', '.join(store.LIMIT_FIELDS)}"})
        elif value is None:
            values[key] = None
        elif key == "max_compute":
            # Compared, not converted: a huge integer must not overflow float() (1e400 parses as inf: refused).
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= _COMPUTE_MAX
            if ok:
                values[key] = float(value)
            else:
                details.append({"path": key, "message": f"must be a number from 0 to {_COMPUTE_MAX:g}, or null"})
        elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _INT_MAX[key]:
            values[key] = value
        else:
            details.append({"path": key, "message": f"must be an integer from 0 to {_INT_MAX[key]}, or null"})
    if details:
        raise ApiError(422, "invalid limits", details=details, code="invalid_limits")
    return values


@bp.put("/<name>/limits")
def put_limits(name: str):
    """Set a user's limits (admins only): the fields given are set (null: back to the default), the others kept."""
    _admin()
    values = _limit_values(json_object())
    ext = convlab()
    view = store.set_limits_by_name(ext.store, name, values, ext.quota)
    if view is None:
        raise ApiError(404, f"no user {name[:100]!r}")
    return view

"""Bearer-token authentication of the API (RFC 6750): ``Authorization: Bearer <token>``."""

from __future__ import annotations

from flask import g, request

import store

from .errors import ApiError
from .extension import convlab

REALM = 'Bearer realm="convlab"'


def bearer_token() -> str | None:
    """The token of the request's ``Authorization: Bearer`` header, None without one."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def require_token() -> None:
    """``before_request`` of the API: set ``g.user`` from the token or answer 401.

    401 carries ``WWW-Authenticate: Bearer``, with ``error="invalid_token"``
    when a token was given but is unknown.
    """
    token = bearer_token()
    if token is None:
        raise ApiError(
            401, "missing bearer token: send 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": REALM}
        )
    user = store.authenticate(convlab().store, token)
    if user is None:
        raise ApiError(401, "invalid token", headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'})
    g.user = user

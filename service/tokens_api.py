"""``/api/v1/tokens``: list API tokens and revoke them (admins: everyone's; others: their own).

Tokens are created on the server (``convlab token create``): a token that
could mint tokens over HTTP would outlive its own revocation.
"""

from __future__ import annotations

from flask import Blueprint, g

import store

from .errors import ApiError
from .extension import convlab

bp = Blueprint("tokens", __name__, url_prefix="/tokens")


@bp.get("")
def list_tokens():
    """The caller's tokens (admins: every token), oldest first; never the token itself or its hash."""
    return {"tokens": store.list_tokens(convlab().store, g.user)}


# Bounded: a larger id names no row, and the databases refuse to compare an integer past 64 bits.
@bp.delete("/<int(max=2147483647):token_id>")
def revoke_token(token_id: int):
    """Revoke a token at once: it gets 401 from now on and the dashboard sessions signed in with it end."""
    revoked = store.revoke_tokens(convlab().store, token_id, g.user)
    if not revoked:
        visible = [t for t in store.list_tokens(convlab().store, g.user) if t["id"] == token_id]
        if not visible:
            raise ApiError(404, f"no token {token_id}, or not yours")
        return {"token": visible[0]}  # revoked before: the same answer, nothing changes
    return {"token": revoked[0]}

"""CSRF protection of the dashboard's form and JSON posts: one random token per session.

Forms carry it in the hidden field ``csrf_token``; the pages' ``fetch`` calls
send it as ``X-CSRF-Token`` (read from ``<meta name="csrf-token">``).  Every
POST to the dashboard is checked; the session cookie alone is never enough.
"""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def csrf_token() -> str:
    """The session's token, made on first use (templates call it as ``csrf_token()``)."""
    token = session.get(FIELD)
    if not token:
        token = session[FIELD] = secrets.token_urlsafe(32)
    return token


def rotate() -> None:
    """A new token (at sign-in, so that a token planted before it is useless)."""
    session[FIELD] = secrets.token_urlsafe(32)


def check() -> None:
    """``before_request``: answer 400 to an unsafe request without the session's token."""
    if request.method not in UNSAFE:
        return
    expected = session.get(FIELD)
    sent = request.headers.get(HEADER) or request.form.get(FIELD)
    if not expected or not sent or not hmac.compare_digest(expected.encode(), sent.encode()):
        abort(
            400,
            description="The form has expired or did not come from this site (CSRF token "
            "missing or wrong). Reload the page and try again.",
        )

"""Signing in to the dashboard: an API token is exchanged for a signed session cookie.

The token is posted in a form (never put in a URL) and checked once; the
signed cookie then keeps only a random session id (and the CSRF token).  The
session itself is a row on the server naming the token it was signed in with
(``store.start_session``): every dashboard request looks it up, so signing
out, or revoking or expiring that token, ends it at once, even for a copied
cookie.  The user goes into ``g.user``; pages without one redirect to the
sign-in page, the JSON and event endpoints answer 401.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import g, redirect, render_template, request, session, url_for

import store

from ..extension import convlab
from . import bp, csrf

SESSION_ID = "sid"
PUBLIC = {"dashboard.login"}


def _safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site (no scheme, no host: not an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


@bp.before_request
def require_user():
    """Load ``g.user`` from the session, check CSRF on posts, and send strangers to sign in."""
    g.user = None
    if request.endpoint == "dashboard.static":
        return None  # stylesheets and scripts are the same for everyone
    session_id = session.get(SESSION_ID)
    if isinstance(session_id, str):
        g.user = store.session_user(convlab().store, session_id)
        if g.user is None:
            session.clear()  # signed out elsewhere, or its token was revoked or expired
    csrf.check()
    if g.user is None and request.endpoint not in PUBLIC:
        if request.method == "GET" and request.accept_mimetypes.accept_html:
            return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))
        return {"error": {"code": "unauthorized", "message": "sign in first", "details": []}}, 401


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The sign-in form; posting a valid API token starts a session."""
    error = None
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET" and g.user is not None:
        return redirect(next_url or url_for("dashboard.jobs"))
    if request.method == "POST":
        user = store.authenticate(convlab().store, request.form.get("token", "").strip())
        if user is not None:
            session.clear()  # nothing from before the sign-in survives it
            session[SESSION_ID] = store.start_session(convlab().store, user.token_id)
            csrf.rotate()
            return redirect(next_url or url_for("dashboard.jobs"))
        error = "That token is not valid. Tokens come from `convlab token create NAME`."
    return render_template("login.html", error=error, next_url=next_url)


@bp.after_request
def no_store(response):
    """Pages and data hold a user's jobs: no shared or back-button caches keep them."""
    if request.endpoint != "dashboard.static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.post("/logout")
def logout():
    """End the session on the server (a form post, CSRF-checked, so no other site can sign you out)."""
    session_id = session.get(SESSION_ID)
    if isinstance(session_id, str):
        store.end_session(convlab().store, session_id)
    session.clear()
    return redirect(url_for("dashboard.login"))

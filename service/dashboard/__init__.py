"""The dashboard: server-rendered pages with a little JavaScript, beside the JSON API.

One blueprint (``dashboard``) at the site root; its modules attach their
routes to it: ``auth`` (sign in/out, session user, CSRF), ``pages`` (HTML),
``live`` (JSON and Server-Sent Events the pages read), ``downloads``, ``tryit``,
``submit``.  It reads the same data layer as the API and submits as the API
does.  Everything it serves (uPlot included) comes from its own
``static/`` folder, so it works offline under ``default-src 'self'``.
"""

from __future__ import annotations

from flask import Blueprint, Flask

from convlab.names import TERMINAL_STATUSES

bp = Blueprint("dashboard", __name__, template_folder="templates", static_folder="static", static_url_path="/assets")

# Imported for their routes (they use ``bp``).
from . import auth, downloads, live, pages, studies, submit, trust, tryit  # noqa: E402,F401
from .csrf import csrf_token  # noqa: E402
from .present import register_filters  # noqa: E402


def init_dashboard(app: Flask) -> None:
    """Register the dashboard on ``app``: its blueprint, cookie settings and template filters.

    The session cookie (signed with ``SECRET_KEY``) holds only the user id and
    the CSRF token; it is HttpOnly and SameSite=Lax unless the config says otherwise.
    """
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    if not app.config.get("SESSION_COOKIE_SAMESITE"):
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    register_filters(app)
    live.init_live(app)
    app.add_template_global(csrf_token, "csrf_token")
    app.add_template_global(TERMINAL_STATUSES, "terminal_statuses")
    app.register_blueprint(bp)

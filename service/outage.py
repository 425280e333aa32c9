"""The API while its database is unreachable: ``503`` with ``Retry-After`` on every endpoint,
and one log line when the database goes away and one when it is back (not a traceback per request).

A database error that means "cannot reach it right now" (connection refused or
dropped, server shutting down, pool exhausted, SQLite file locked or missing)
is answered ``503 database_unavailable``; any other database error stays a
``500`` with its traceback, since retrying would not help.  Each server process
keeps its own :class:`DatabaseState` (``app.extensions[STATE_KEY]``): it flips
to "down" on such an error and back to "up" on the next statement that runs.
"""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask, current_app, request
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

STATE_KEY = "convlab.database_state"
RETRY_AFTER_S = 5  # a restart of PostgreSQL takes seconds; clients should not hammer it meanwhile


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached now (worth a retry), not that a query is wrong."""
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeoutError)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _reason(exc: BaseException) -> str:
    """The first line of the driver's message (no SQL, no parameters: they may hold user data)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}"[:300]


class DatabaseState:
    """Whether this process last found its database reachable; logs each change once."""

    def __init__(self, logger: logging.Logger) -> None:
        """Up until shown otherwise; changes are logged to ``logger`` (the app's)."""
        self.log = logger
        self._lock = threading.Lock()
        self._down_since: float | None = None

    @property
    def down(self) -> bool:
        """True between a failed and the next successful statement."""
        return self._down_since is not None

    def failed(self, exc: BaseException) -> None:
        """A request met ``exc`` (see :func:`is_unavailable`); the first one after "up" is logged."""
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
        self.log.warning("database unreachable (%s); answering 503 until it is back", _reason(exc))

    def succeeded(self) -> None:
        """A statement ran; if the database was down, say that it is back."""
        if self._down_since is None:  # the common case: no lock on every statement
            return
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            self.log.warning("database reachable again after %.1f s", time.monotonic() - since)


def database_state() -> DatabaseState:
    """The :class:`DatabaseState` of the current app."""
    return current_app.extensions[STATE_KEY]


def unavailable_response():
    """The 503 answer: the API's JSON error (an HTML page for a browser navigating the dashboard)."""
    from .errors import error_response, is_api_request

    headers = {"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"}
    message = "the database is unreachable; retry later"
    page = (
        request.method == "GET"
        and not is_api_request()
        and request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"
    )
    if page:
        body = (
            "<!doctype html><meta charset=utf-8><title>convlab: unavailable</title>"
            f"<meta http-equiv=refresh content={RETRY_AFTER_S}>"
            f"<h1>Service unavailable</h1><p>The database is unreachable. This page retries in "
            f"{RETRY_AFTER_S} seconds.</p>"
        )
        return current_app.response_class(body, 503, headers, mimetype="text/html")
    return error_response(503, "database_unavailable", message, headers=headers)


def init_app(app: Flask, engine) -> None:
    """Give ``app`` its :class:`DatabaseState`, fed by every statement ``engine`` runs."""
    state = DatabaseState(app.logger)
    app.extensions[STATE_KEY] = state
    event.listen(engine, "after_cursor_execute", lambda *_args, **_kw: state.succeeded())

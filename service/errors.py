"""One JSON error shape for the API: ``{"error": {"code", "message", "details": [{"path", "message"}]}}``.

Handlers are registered on the app (404 and 405 happen before any blueprint
is chosen) and answer JSON for ``/api/...`` and ``/healthz``; other paths
(the dashboard) keep Flask's default pages.  An unreachable database is a
``503`` everywhere (``service.outage``).
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask, current_app, jsonify, request
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException, InternalServerError

from engine.datasets import DatasetError
from engine.spec import SpecError

from . import outage
from .extension import API_PREFIX
from .schemas import error_json

# error.code of each HTTP status; 422s carry a more specific code (invalid_spec, invalid_query...).
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}
# (503 "busy": the API's upload memory budget is full, service.datasets_api)


class ApiError(Exception):
    """Raised by a view to answer with the API's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        details: Iterable[dict] = (),
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        """``code`` defaults to the status's name in :data:`CODES`."""
        super().__init__(message)
        self.status, self.message, self.details = status, message, list(details)
        self.code = code or CODES.get(status, "error")
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str, details: Iterable[dict] = (), headers: dict[str, str] | None = None
):
    """A JSON error response."""
    response = jsonify(error_json(code, message, details))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def is_api_request() -> bool:
    """Whether the request is for the JSON API (or the health check): answer errors in JSON."""
    path = request.path
    return path == API_PREFIX or path.startswith(API_PREFIX + "/") or path == "/healthz"


def _api_error(e: ApiError):
    """An :class:`ApiError` as its response."""
    return error_response(e.status, e.code, e.message, e.details, e.headers)


def _http_error(e: HTTPException):
    """Werkzeug's HTTP errors (404, 405, 413, a bad multipart body...) in the API's shape (also for the
    dashboard's JSON posts: their scripts read the error body)."""
    if not (is_api_request() or request.is_json) or e.code is None:
        return e
    headers = {}
    message = e.description or e.name
    if e.code == 405:
        headers["Allow"] = ", ".join(sorted(getattr(e, "valid_methods", None) or ()))
        message = f"{request.method} is not allowed here"
    elif e.code == 404:
        message = f"no such resource: {request.path}"
    elif e.code == 413:
        limit = request.max_content_length
        message = "request body too large" + (f": the limit is {limit} bytes" if limit else "")
    return error_response(e.code, CODES.get(e.code, "error"), message, headers=headers)


def _spec_error(e: SpecError):
    """An invalid job spec: 422 with one detail per problem (field paths)."""
    return error_response(422, "invalid_spec", f"the job spec is invalid ({len(e.details)} problem(s))", e.details)


def _dataset_error(e: DatasetError):
    """An unusable uploaded dataset: 422, the engine's message at path ``file``."""
    return error_response(422, "invalid_dataset", str(e), [{"path": "file", "message": str(e)}])


def _unexpected(e: Exception):
    """Anything else: logged with its traceback; the client only learns that it failed."""
    current_app.logger.exception("unhandled error in %s %s", request.method, request.path)
    if not is_api_request():
        return InternalServerError(original_exception=e)
    return error_response(500, "internal_error", "internal server error")


def _database_error(e: Exception):
    """An unreachable database is 503 with ``Retry-After`` (logged once per outage); a value the database
    refused (``DataError``: input checks are meant to stop these first, see ``service.params``) is 422;
    other database errors 500."""
    if isinstance(e, DataError):
        current_app.logger.warning(
            "the database refused a value in %s %s: %s", request.method, request.path, str(e.orig)[:200]
        )
        return error_response(422, "invalid_value", "a value of the request cannot be stored")
    if not outage.is_unavailable(e):
        return _unexpected(e)
    outage.database_state().failed(e)
    return outage.unavailable_response()


def init_app(app: Flask) -> None:
    """Register the handlers on ``app``."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(SpecError, _spec_error)
    app.register_error_handler(DatasetError, _dataset_error)
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(PoolTimeoutError, _database_error)
    app.register_error_handler(Exception, _unexpected)

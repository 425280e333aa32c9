"""What the Python client raises: every failure is a :class:`ConvlabError`, never a raw HTTP or socket error.

API answers become :class:`ApiError` subclasses chosen by status (and, for
422, by the API's ``error.code``), carrying the API's message and field
paths; a service that cannot be reached is :class:`ConnectionFailed` (also a
``ConnectionError``); a job that ends badly is :class:`JobFailed`.  Standard library only.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConvlabError",
    "ConfigurationError",
    "ApiError",
    "BadRequest",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "Conflict",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "InvalidRequest",
    "SpecError",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "ConnectionFailed",
    "JobFailed",
    "JobCancelled",
    "JobTimeout",
    "api_error",
]


class ConvlabError(Exception):
    """Base of every error the client raises."""


class ConfigurationError(ConvlabError):
    """The client cannot be used as configured (e.g. no token)."""


class ApiError(ConvlabError):
    """An error answer of the API.

    ``status`` (HTTP), ``code`` (``error.code``, e.g. ``invalid_spec``),
    ``message``, ``details`` (``[{"path", "message"}]``), ``retry_after``
    (seconds, when the API said), ``body`` (the decoded answer).
    """

    def __init__(self, status: int, body: dict[str, Any] | str, retry_after: float | None = None):
        """Build from the status and the decoded body (a string when it was not JSON)."""
        self.status, self.body, self.retry_after = status, body, retry_after
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            self.code: str | None = err.get("code")
            self.message: str = str(err.get("message", ""))
            self.details: list[dict[str, str]] = list(err.get("details") or [])
            lines = [f"{self.message} (HTTP {status})"]
            lines += [f"  {d.get('path', '')}: {d.get('message', '')}" for d in self.details]
            super().__init__("\n".join(lines))
        else:
            self.code, self.message, self.details = None, str(body), []
            super().__init__(f"HTTP {status}: {body}")


class BadRequest(ApiError):
    """400: malformed JSON, or a body that is not an object."""


class Unauthorized(ApiError):
    """401: no token, or an unknown one."""


class Forbidden(ApiError):
    """403: the token may not do this."""


class NotFound(ApiError):
    """404: no such job or dataset, or not the caller's."""


class Conflict(ApiError):
    """409: e.g. cancelling a finished job, predicting with a job that has no weights."""


class PayloadTooLarge(ApiError):
    """413: the body, the upload, or the prediction batch is over a limit."""


class UnsupportedMediaType(ApiError):
    """415."""


class InvalidRequest(ApiError):
    """422: invalid input (query, dataset, prediction inputs), with field paths in ``details``."""


class SpecError(InvalidRequest):
    """422 ``invalid_spec``: the job spec is invalid; ``details`` holds one ``{"path", "message"}`` per problem."""


class RateLimited(ApiError):
    """429: too many requests or jobs; ``retry_after`` says when to try again (if the API said)."""


class ServerError(ApiError):
    """500: a bug in the service (logged there); the message says only that it failed."""


class ServiceUnavailable(ApiError):
    """502, 503 or 504 even after the retries: the service or its database is away; ``retry_after`` if said."""


class ConnectionFailed(ConvlabError, ConnectionError):
    """The service could not be reached (refused, reset, timed out), even after the retries; ``url``, ``reason``."""

    def __init__(self, url: str, reason: object):
        """Could not reach ``url``, because of ``reason``."""
        self.url, self.reason = url, reason
        super().__init__(f"cannot reach the API at {url} ({reason}); is CONVLAB_URL right?")


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidRequest,
    429: RateLimited,
    500: ServerError,
    502: ServiceUnavailable,
    503: ServiceUnavailable,
    504: ServiceUnavailable,
}


def api_error(status: int, body: dict[str, Any] | str, retry_after: float | None = None) -> ApiError:
    """The exception for an error answer: by status, and ``invalid_spec`` as :class:`SpecError`."""
    cls = _BY_STATUS.get(status, ApiError)
    if status == 422 and isinstance(body, dict) and (body.get("error") or {}).get("code") == "invalid_spec":
        cls = SpecError
    return cls(status, body, retry_after)


class JobFailed(ConvlabError):
    """A job ended without succeeding; ``job`` is the :class:`~convlab.job.Job`, ``error`` its error message."""

    def __init__(self, job: Any, message: str | None = None):
        """``message`` defaults to the job's own error."""
        self.job = job
        self.error: str | None = job.error
        super().__init__(message or f"job {job.id} failed: {job.error or 'no error message'}")


class JobCancelled(JobFailed):
    """The job was cancelled before it finished."""

    def __init__(self, job: Any):
        """For a cancelled ``job``."""
        super().__init__(job, f"job {job.id} was cancelled")


class JobTimeout(ConvlabError, TimeoutError):
    """``Job.wait(timeout=...)`` ran out before the job ended; ``job`` is its latest state."""

    def __init__(self, job: Any, timeout: float):
        """For ``job``, still unfinished after ``timeout`` seconds."""
        self.job, self.timeout = job, timeout
        super().__init__(
            f"job {job.id} is still {job.status} after {timeout:g} s "
            f"(step {job.progress.get('step', 0)} of {job.progress.get('total_steps', 0)})"
        )

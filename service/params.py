"""Reading request input strictly: JSON bodies and query parameters, with API errors for bad ones."""
from __future__ import annotations

import json
import re
from typing import Any

from flask import request

from .errors import ApiError

_DIGITS = re.compile(r"[0-9]{1,18}")


def _reject_constant(name: str):
    """``json.loads`` hook: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def json_object() -> dict[str, Any]:
    """The request body as a JSON object: 415 unless ``application/json``, 400 if malformed or not an object.

    A body over ``MAX_CONTENT_LENGTH`` raises werkzeug's 413 before anything is parsed.
    """
    if not request.is_json:
        raise ApiError(415, f"expected Content-Type application/json, got {request.mimetype or 'none'!r}")
    raw = request.get_data(cache=False)
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except ValueError as exc:           # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, f"malformed JSON: {exc}", code="malformed_json") from None
    except RecursionError:
        raise ApiError(400, "malformed JSON: nested too deeply", code="malformed_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the body must be a JSON object, not {type(body).__name__}", code="not_an_object")
    return body


class Query:
    """Typed access to query parameters; problems are collected, then raised together as one 422."""

    def __init__(self) -> None:
        """Start with no problems."""
        self.details: list[dict[str, str]] = []

    def _error(self, name: str, message: str) -> None:
        """Record a problem with parameter ``name``."""
        self.details.append({"path": f"query.{name}", "message": message})

    def integer(self, name: str, default: int, lo: int, hi: int) -> int:
        """An integer in ``[lo, hi]``; ``default`` when absent."""
        raw = request.args.get(name)
        if raw is None or raw == "":
            return default
        if not _DIGITS.fullmatch(raw) or not lo <= int(raw) <= hi:
            self._error(name, f"must be an integer from {lo} to {hi}, got {raw[:40]!r}")
            return default
        return int(raw)

    def choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        """One of ``choices``, or None when absent."""
        raw = request.args.get(name)
        if raw is None or raw == "":
            return None
        if raw not in choices:
            self._error(name, f"must be one of {', '.join(choices)}, got {raw[:40]!r}")
            return None
        return raw

    def text(self, name: str, max_length: int = 200) -> str | None:
        """A string of at most ``max_length`` characters, or None when absent or empty."""
        raw = request.args.get(name)
        if raw is None or raw == "":
            return None
        if len(raw) > max_length:
            self._error(name, f"must be at most {max_length} characters")
            return None
        return raw

    def check(self) -> None:
        """Raise the collected problems as one 422 ``invalid_query``."""
        if self.details:
            raise ApiError(422, "invalid query parameters", self.details, code="invalid_query")

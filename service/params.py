"""Reading request input strictly: JSON bodies and query parameters, with API errors for bad ones."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import request
from werkzeug.exceptions import NotFound, RequestEntityTooLarge

from .errors import ApiError

_DIGITS = re.compile(r"[0-9]{1,18}")
# Characters no database column can hold: NUL (PostgreSQL text refuses it) and lone UTF-16
# surrogates (not encodable as UTF-8; JSON's "\ud800" escape makes them).  Refused where input
# enters, so that no store call ever sees them.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Deeper than any real request (a job spec is 4 levels deep, prediction inputs 5); the JSON decoder's
# own limit is the recursion limit, and code that walks a body must not get near it.
MAX_JSON_DEPTH = 32


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored (a NUL or a lone surrogate), None if it can."""
    m = _UNSTORABLE.search(text)
    if m is None:
        return None
    return (
        "must not contain NUL characters"
        if m.group() == "\x00"
        else "must not contain lone UTF-16 surrogates (invalid Unicode)"
    )


def check_text(text: str, path: str, status: int = 422, code: str = "invalid_text") -> str:
    """``text`` unchanged, or an API error at ``path`` if no database could store it."""
    problem = unstorable(text)
    if problem is not None:
        raise ApiError(status, f"invalid text at {path}: {problem}", [{"path": path, "message": problem}], code=code)
    return text


def no_such_url_value(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """``url_value_preprocessor`` of the app: a path segment no database can hold (``/jobs/a%00b``) names
    nothing, so it is ``404`` before any view looks it up."""
    if values and any(isinstance(v, str) and unstorable(v) for v in values.values()):
        raise NotFound()


def _key_path(parent: str, key: str) -> str:
    """The field path of ``key`` in the object at ``parent`` (the spec's style: ``train.optimizer.lr``)."""
    shown = key.encode("unicode_escape", "backslashreplace").decode("ascii") if unstorable(key) else key
    return f"{parent}.{shown}" if parent else shown


def check_json_value(body: Any) -> None:
    """Refuse what a parsed JSON body may hold but no code or database downstream should see:
    nesting deeper than :data:`MAX_JSON_DEPTH` (400) and unstorable strings, keys included (422),
    each with its field path.  Iterative, so depth costs no stack.  Numbers are left to the fields
    that read them (``engine.fields.Number`` refuses one no float holds, with its path).
    """
    stack: list[tuple[Any, str, int]] = [(body, "", 0)]
    details: list[dict[str, str]] = []
    while stack and len(details) < 20:
        value, path, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                raise ApiError(
                    400,
                    f"malformed JSON: nested more than {MAX_JSON_DEPTH} levels deep",
                    [{"path": path or "body", "message": f"nested more than {MAX_JSON_DEPTH} levels"}],
                    code="malformed_json",
                )
            if isinstance(value, dict):
                for key, item in value.items():
                    item_path = _key_path(path, key)
                    if unstorable(key):
                        details.append({"path": item_path, "message": f"field name {unstorable(key)}"})
                    stack.append((item, item_path, depth + 1))
            else:
                stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
        elif isinstance(value, str) and unstorable(value):
            details.append({"path": path or "body", "message": unstorable(value)})
    if details:
        details.sort(key=lambda d: d["path"])
        raise ApiError(422, f"invalid values in the body ({len(details)} problem(s))", details, code="invalid_value")


def request_body() -> bytes:
    """The request's body, ``413`` if it is over ``MAX_CONTENT_LENGTH`` whether or not it declares a length.

    A declared length over the limit is refused before reading.  A chunked body (no length; gunicorn
    marks it ``wsgi.input_terminated``) is read through werkzeug's stream capped at the limit, which
    can stop exactly at the limit and hand back a silently cut body: one that fills the cap is
    refused, since what follows it was never read.
    """
    data = request.get_data(cache=False)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        raise RequestEntityTooLarge()
    return data


def parse_json(raw: bytes) -> Any:
    """A request body as JSON, strictly: 400 ``malformed_json`` for bad JSON (NaN and Infinity included)
    or nesting too deep, 422 ``invalid_value`` for values no store can hold (:func:`check_json_value`)."""
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, f"malformed JSON: {str(exc)[:200]}", code="malformed_json") from None
    except RecursionError:
        raise ApiError(
            400, f"malformed JSON: nested more than {MAX_JSON_DEPTH} levels deep", code="malformed_json"
        ) from None
    check_json_value(body)
    return body


def _reject_constant(name: str):
    """``json.loads`` hook: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def json_object() -> dict[str, Any]:
    """The request body as a JSON object: 415 unless ``application/json``, 400 if malformed or not an object.

    A body over ``MAX_CONTENT_LENGTH`` raises werkzeug's 413 before anything is parsed.
    """
    if not request.is_json:
        raise ApiError(415, f"expected Content-Type application/json, got {request.mimetype or 'none'!r}")
    body = parse_json(request_body())
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
        if unstorable(raw):
            self._error(name, unstorable(raw))
            return None
        return raw

    def check(self) -> None:
        """Raise the collected problems as one 422 ``invalid_query``."""
        if self.details:
            raise ApiError(422, "invalid query parameters", self.details, code="invalid_query")

"""``Idempotency-Key`` on creating calls (IETF draft "The Idempotency-Key HTTP Header Field",
as Stripe does it): a retried request with the same key returns the first answer and creates nothing.

- The key is scoped to the user; it is an opaque string of 1 to :data:`MAX_KEY_LENGTH`
  printable ASCII characters, bare (Stripe) or as a quoted structured-field string
  (the draft: ``Idempotency-Key: "8e03978e-..."``).  Anything else is ``400``.
- The key is recorded in the same transaction as what the request created, so a
  request that committed but failed while building its answer (a ``503``, a
  dropped connection) is replayed, not run again.
- Same key, same request: the first answer again (same status, the same resource
  as it is now), with ``Idempotent-Replayed: true``.  Same key, another request
  (other body, other call): ``422 idempotency_key_reused`` as the draft says
  (Stripe answers 400).  A request that failed (4xx) recorded nothing: its key
  may be used again.  Two requests racing with one key: the database's unique
  key lets one commit; the other rolls back and replays it (no ``409`` needed).
- Keys are remembered ``CONVLAB_IDEMPOTENCY_TTL_S`` (24 h); older ones are swept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from flask import g, request
from sqlalchemy.exc import IntegrityError

import store

from .errors import ApiError
from .extension import convlab

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
REPLAYED = "Idempotent-Replayed"


def _bad_key(message: str) -> ApiError:
    return ApiError(
        400,
        f"invalid {HEADER} header: {message}",
        code="invalid_idempotency_key",
        details=[{"path": f"headers.{HEADER}", "message": message}],
    )


def request_key() -> str | None:
    """The request's ``Idempotency-Key`` (quotes of a structured-field string removed), None without one."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise _bad_key(f"must be 1 to {MAX_KEY_LENGTH} characters")
    if not all(" " <= c <= "~" for c in key) or '"' in key or "\\" in key:
        raise _bad_key("must be printable ASCII without quotes or backslashes")
    return key


def canonical_json(body: Any) -> bytes:
    """``body`` as bytes that do not depend on key order or spacing (what a retry's fingerprint hashes)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def once(
    operation: str,
    payload: bytes,
    create: Callable[[store.IdempotentRequest | None], Any],
    replay: Callable[[list[str]], Any],
):
    """Answer a creating request at most once per ``Idempotency-Key``.

    ``create(idempotency)`` does the work, passing ``idempotency`` to the store
    call that commits what it creates; ``replay(ids)`` answers again for the
    ids that request created.  ``payload`` is what identifies the request
    (its body, canonical).  Without the header this is just ``create(None)``.
    """
    key = request_key()
    if key is None:
        return create(None)
    ext = convlab()
    ttl = ext.settings.idempotency_ttl_s
    attempt = store.IdempotentRequest(
        user_id=g.user.id,
        key=key,
        operation=operation,
        ttl_s=ttl,
        fingerprint=hashlib.sha256(operation.encode() + b"\0" + payload).hexdigest(),
    )
    prior = store.find_idempotency_key(ext.store, attempt)
    if prior is None:
        store.sweep_idempotency_keys(ext.store, ttl)  # bounded storage: an indexed delete, often of nothing
        try:
            return create(attempt)
        except IntegrityError:
            prior = store.find_idempotency_key(ext.store, attempt)  # a concurrent retry committed first
            if prior is None:
                raise
    if prior["fingerprint"] != attempt.fingerprint:
        raise ApiError(
            422,
            f"this {HEADER} was used for another request",
            code="idempotency_key_reused",
            details=[
                {"path": f"headers.{HEADER}", "message": "already used with a different body or call; use a new key"}
            ],
        )
    response = replay(prior["resources"])
    response.headers[REPLAYED] = "true"
    return response

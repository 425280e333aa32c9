"""Idempotency keys of creating requests: found by (user, key), recorded inside the creating
transaction, forgotten after their time to live (bounded storage)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .db import Store
from .models import IdempotencyKey, utcnow


@dataclass(frozen=True)
class IdempotentRequest:
    """A creating request that carried an ``Idempotency-Key``; ``fingerprint`` hashes what it asked for."""

    user_id: int
    key: str
    operation: str
    fingerprint: str
    ttl_s: float


def find_idempotency_key(store: Store, request: IdempotentRequest) -> dict[str, Any] | None:
    """The live record of ``request``'s user and key: ``{"operation", "fingerprint", "resources"}``, or None.

    A record older than ``request.ttl_s`` counts as gone (the sweep deletes it later).
    """
    cutoff = utcnow() - timedelta(seconds=request.ttl_s)
    with store.session() as s:
        row = s.execute(
            select(IdempotencyKey.operation, IdempotencyKey.fingerprint, IdempotencyKey.resources).where(
                IdempotencyKey.user_id == request.user_id,
                IdempotencyKey.key == request.key,
                IdempotencyKey.created_at >= cutoff,
            )
        ).first()
    return (
        None
        if row is None
        else {"operation": row.operation, "fingerprint": row.fingerprint, "resources": list(row.resources)}
    )


def record_idempotency_key(s: Session, request: IdempotentRequest, resources: list[str]) -> None:
    """Add the key in session ``s``, the one that creates ``resources`` (same transaction, same fate).

    An expired record of the same key is replaced; a live one makes the commit fail with
    ``IntegrityError`` (a concurrent request with the same key won the race).
    """
    cutoff = utcnow() - timedelta(seconds=request.ttl_s)
    s.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.user_id == request.user_id,
            IdempotencyKey.key == request.key,
            IdempotencyKey.created_at < cutoff,
        )
    )
    s.add(
        IdempotencyKey(
            user_id=request.user_id,
            key=request.key,
            operation=request.operation,
            fingerprint=request.fingerprint,
            resources=list(resources),
        )
    )
    s.flush()


def sweep_idempotency_keys(store: Store, ttl_s: float) -> int:
    """Delete every record older than ``ttl_s``; how many went."""
    cutoff = utcnow() - timedelta(seconds=ttl_s)
    with store.session() as s:
        return s.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff)).rowcount

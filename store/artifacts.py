"""Job artifacts (weights, checkpoints): blobs in the database, which every host reaches."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import Store, upsert_insert
from .models import Artifact, utcnow


def upsert_artifact(s: Session, store: Store, job_id: str, name: str, data: bytes) -> None:
    """Within session ``s``: store ``data`` as the job's artifact ``name``, replacing an older one."""
    now = utcnow()
    stmt = upsert_insert(store, Artifact).values(
        job_id=job_id, name=name, data=data, size=len(data), created_at=now, updated_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["job_id", "name"],
        set_={"data": stmt.excluded.data, "size": stmt.excluded.size, "updated_at": stmt.excluded.updated_at},
    )
    s.execute(stmt)


def load_artifact(store: Store, job_id: str, name: str) -> bytes | None:
    """The artifact's bytes, or None if the job has none of that name (yet)."""
    with store.session() as s:
        return s.scalar(select(Artifact.data).where(Artifact.job_id == job_id, Artifact.name == name))

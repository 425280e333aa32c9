"""Worker processes as seen through their heartbeats (``GET /workers``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select

from .auth import UserInfo
from .db import Store, upsert_insert
from .models import Job, Worker, utcnow


def worker_heartbeat(store: Store, name: str, hostname: str, pid: int, job_id: str | None) -> None:
    """Record that worker ``name`` is alive and which job it runs (None: idle). One upsert."""
    now = utcnow()
    stmt = upsert_insert(store, Worker).values(
        name=name, hostname=hostname, pid=pid, started_at=now, heartbeat_at=now, job_id=job_id
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"],
        set_={
            "hostname": stmt.excluded.hostname,
            "pid": stmt.excluded.pid,
            "heartbeat_at": stmt.excluded.heartbeat_at,
            "job_id": stmt.excluded.job_id,
        },
    )
    with store.session() as s:
        s.execute(stmt)


def remove_worker(store: Store, name: str) -> None:
    """Forget worker ``name`` (it shuts down cleanly)."""
    with store.session() as s:
        s.execute(delete(Worker).where(Worker.name == name))


def remove_stale_workers(store: Store, max_age_s: float) -> int:
    """Forget workers silent for more than ``max_age_s`` (crashed ones never say goodbye)."""
    cutoff = utcnow() - timedelta(seconds=max_age_s)
    with store.session() as s:
        return s.execute(delete(Worker).where(Worker.heartbeat_at < cutoff)).rowcount


def live_workers(store: Store, max_age_s: float, viewer: UserInfo | None = None) -> list[dict[str, Any]]:
    """Workers heard from within ``max_age_s``: ``[{"name", "heartbeat_age_s", "busy", "job_id"}]`` by name.

    ``viewer`` (not an admin) sees ``job_id`` only for their own jobs: another user's is null.
    """
    now = utcnow()
    with store.session() as s:
        rows = s.execute(
            select(Worker.name, Worker.heartbeat_at, Worker.job_id, Job.user_id)
            .outerjoin(Job, Job.id == Worker.job_id)
            .where(Worker.heartbeat_at >= now - timedelta(seconds=max_age_s))
            .order_by(Worker.name)
        ).all()
    hide = viewer is not None and not viewer.is_admin
    return [
        {
            "name": r.name,
            "heartbeat_age_s": round(max(0.0, (now - r.heartbeat_at).total_seconds()), 3),
            "busy": r.job_id is not None,
            "job_id": None if hide and r.user_id != viewer.id else r.job_id,
        }
        for r in rows
    ]

"""Per-user limits (a deployment's defaults, an admin's overrides per user) and what each user uses.

The defaults come from the settings (``Settings.max_*``, passed in as a :class:`Quota`); an admin
may override any of them for one user (the ``user_limits`` table; NULL keeps the default).  The
running limit is enforced by the claim (``store.jobs.claim_next_job`` skips a user at it), the
queued and storage limits by the submit's transaction (``store.jobs.create_jobs``), the compute
limit by the service before it stores anything (it needs no database state).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .db import Store, upsert_insert
from .models import Artifact, Dataset, Job, MetricPoint, User, UserLimit, utcnow

LIMIT_FIELDS = ("max_running", "max_queued", "max_compute", "max_storage")
# What one stored metric point costs, roughly (key columns, value, index entry): an estimate, so that
# storage counts the points without summing their bytes.
METRIC_POINT_BYTES = 64


@dataclass(frozen=True)
class Quota:
    """Limits of one user; None: no limit.  ``max_compute`` in floating-point operations per job,
    ``max_storage`` in bytes (:func:`storage_used`)."""

    max_running: int | None = None
    max_queued: int | None = None
    max_compute: float | None = None
    max_storage: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The limits by name."""
        return dataclasses.asdict(self)


class QuotaExceeded(Exception):
    """A request would take a user past one of their limits; nothing was stored."""

    def __init__(self, limit: str, message: str, retry_after_s: int | None = None):
        """``limit``: which one (a :data:`LIMIT_FIELDS` name); ``retry_after_s``: when trying again may help."""
        super().__init__(message)
        self.limit, self.message, self.retry_after_s = limit, message, retry_after_s


def lock_user(s: Session, user_id: int) -> None:
    """Within session ``s``: lock the user's row until ``s`` ends, so that checks of their counts
    and the write that follows cannot interleave with another request or claim of the same user.

    A no-op UPDATE: on PostgreSQL it takes the row lock (other transactions of this user wait,
    others do not); on SQLite it takes the database's write lock (there is only one).
    """
    s.execute(
        update(User).where(User.id == user_id).values(last_claim_at=User.last_claim_at),
        execution_options={"synchronize_session": False},
    )


def _overrides(s: Session, user_id: int) -> dict[str, Any]:
    row = s.get(UserLimit, user_id)
    return {} if row is None else {f: getattr(row, f) for f in LIMIT_FIELDS if getattr(row, f) is not None}


def effective_limits(s: Session, user_id: int, defaults: Quota) -> Quota:
    """Within session ``s``: the user's limits: ``defaults`` with their overrides applied."""
    return dataclasses.replace(defaults, **_overrides(s, user_id))


def user_limits(store: Store, user_id: int, defaults: Quota) -> Quota:
    """The user's effective limits (:func:`effective_limits` in a session of its own)."""
    with store.session() as s:
        return effective_limits(s, user_id, defaults)


def _user_id(s: Session, name: str) -> int | None:
    return s.scalar(select(User.id).where(User.name == name))


def _limits_view(s: Session, user_id: int, name: str, defaults: Quota) -> dict[str, Any]:
    overrides = _overrides(s, user_id)
    return {
        "user": name,
        "overrides": {f: overrides.get(f) for f in LIMIT_FIELDS},
        "effective": dataclasses.replace(defaults, **overrides).as_dict(),
    }


def get_limits_by_name(store: Store, name: str, defaults: Quota) -> dict[str, Any] | None:
    """``{"user", "overrides", "effective"}`` of user ``name`` (None if there is no such user)."""
    with store.session() as s:
        user_id = _user_id(s, name)
        return None if user_id is None else _limits_view(s, user_id, name, defaults)


def set_limits_by_name(store: Store, name: str, values: dict[str, Any], defaults: Quota) -> dict[str, Any] | None:
    """Set some of user ``name``'s overrides (``values``: :data:`LIMIT_FIELDS` names; None clears one,
    back to the default); the others stay.  Returns the new view, None if there is no such user."""
    unknown = set(values) - set(LIMIT_FIELDS)
    if unknown:
        raise ValueError(f"not limits: {sorted(unknown)}")
    with store.session() as s:
        user_id = _user_id(s, name)
        if user_id is None:
            return None
        now = utcnow()
        stmt = upsert_insert(store, UserLimit).values(user_id=user_id, updated_at=now, **values)
        s.execute(stmt.on_conflict_do_update(index_elements=["user_id"], set_={"updated_at": now, **values}))
        return _limits_view(s, user_id, name, defaults)


def storage_used(s: Session, user_id: int) -> dict[str, int]:
    """Within session ``s``: the bytes a user's jobs and uploads hold: artifacts (weights, checkpoints)
    and datasets by their size, metric points by count × :data:`METRIC_POINT_BYTES`; and the total."""
    artifacts = s.scalar(
        select(func.coalesce(func.sum(Artifact.size), 0))
        .join(Job, Job.id == Artifact.job_id)
        .where(Job.user_id == user_id)
    )
    datasets = s.scalar(select(func.coalesce(func.sum(Dataset.size_bytes), 0)).where(Dataset.user_id == user_id))
    points = s.scalar(
        select(func.count())
        .select_from(MetricPoint)
        .join(Job, Job.id == MetricPoint.job_id)
        .where(Job.user_id == user_id)
    )
    used = {"artifacts": int(artifacts), "datasets": int(datasets), "metric_points": int(points) * METRIC_POINT_BYTES}
    return {**used, "total": sum(used.values())}


def check_storage(s: Session, user_id: int, limits: Quota, adding: int = 0) -> None:
    """Within session ``s``: :class:`QuotaExceeded` if the user's storage plus ``adding`` bytes is over their limit."""
    if limits.max_storage is None:
        return
    used = storage_used(s, user_id)["total"]
    if used + adding > limits.max_storage:
        raise QuotaExceeded(
            "max_storage",
            f"storage limit reached: {used:,} bytes used"
            + (f" + {adding:,} new" if adding else "")
            + f", the limit is {limits.max_storage:,} bytes; delete jobs or datasets to free space",
        )


def usage(store: Store, user_id: int) -> dict[str, Any]:
    """What a user holds now: running and queued jobs, and :func:`storage_used`."""
    with store.session() as s:
        counts = dict(
            s.execute(
                select(Job.status, func.count())
                .where(Job.user_id == user_id, Job.status.in_(("queued", "running")))
                .group_by(Job.status)
            ).all()
        )
        return {
            "running": counts.get("running", 0),
            "queued": counts.get("queued", 0),
            "storage_bytes": storage_used(s, user_id),
        }

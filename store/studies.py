"""Studies: create, read, top up with trials, cancel (docs/studies.md).

A study is a row; its trials are ordinary jobs with ``study_id``,
``trial_number`` and ``params``.  Topping up (creating the next trials as
earlier ones finish) may run in several processes at once (the worker that
finished a trial, every worker's sweep): each top-up first takes the study
row with a conditional ``UPDATE ... WHERE status = 'running'``.  That one
statement serialises top-ups (a row lock on PostgreSQL, the write lock on
SQLite) and orders them against a cancel, which updates the same row first;
the unique key (study_id, trial_number) makes a duplicate insert impossible
even so.  What to create is decided by a ``plan`` callable (the sampler):
this module imports no sampling library.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, literal, select, true, update
from sqlalchemy.orm import Session

from .auth import UserInfo
from .db import Store
from .idempotency import IdempotentRequest, record_idempotency_key
from .models import Job, JobTag, MetricPoint, Study, User, UTCDateTime, iso, utcnow

ACTIVE = ("queued", "running")

# plan(study spec, trials so far) -> new trials [(number, params, seed_index)]
Plan = Callable[[dict, list[dict]], list[tuple[int, dict, int]]]
# make(study spec, params, seed_index, number) -> (validated job spec, None) or (raw spec, error text)
MakeSpec = Callable[[dict, dict, int, int], tuple[dict, str | None]]


def _study_dict(study: Study, user_name: str) -> dict[str, Any]:
    return {
        "id": study.id,
        "name": study.name,
        "status": study.status,
        "spec": study.spec,
        "created_at": iso(study.created_at),
        "finished_at": iso(study.finished_at),
        "user": user_name,
    }


def _visible(user: UserInfo | None):
    return true() if user is None or user.is_admin else Study.user_id == user.id


def trials_in(s: Session, study_id: str, metric: str) -> list[dict[str, Any]]:
    """The study's trials in number order, each with its per-epoch objective values (``steps``)."""
    jobs = s.execute(
        select(
            Job.id,
            Job.trial_number,
            Job.params,
            Job.status,
            Job.spec,
            Job.result,
            Job.error,
            Job.epoch,
            Job.started_at,
            Job.finished_at,
        )
        .where(Job.study_id == study_id)
        .order_by(Job.trial_number)
    ).all()
    points: dict[str, list[float | None]] = {}
    rows = s.execute(
        select(MetricPoint.job_id, MetricPoint.value)
        .join(Job, Job.id == MetricPoint.job_id)
        .where(Job.study_id == study_id, MetricPoint.series == metric)
        .order_by(MetricPoint.job_id, MetricPoint.step)
    )
    for job_id, value in rows:
        points.setdefault(job_id, []).append(value)
    trials = []
    for j in jobs:
        values = points.get(j.id, [])
        result = j.result or {}
        epochs = result.get("epochs_completed", j.epoch if j.status != "queued" else 0)
        # A loss stored as null was not finite: the run diverged, whatever its accuracy says, so it
        # has no objective (never ranked, and a failure to the sampler).
        diverged = any(k in result and result[k] is None for k in ("train_loss", "val_loss"))
        trials.append(
            {
                "job_id": j.id,
                "number": j.trial_number,
                "params": j.params or {},
                "seed": (j.spec.get("train") or {}).get("seed"),
                "status": j.status,
                # The objective of a trial is the last value of its series (null if none, or not finite).
                "value": values[-1] if values and not diverged else None,
                "steps": {i + 1: v for i, v in enumerate(values)},
                "epochs_completed": epochs,
                "error": j.error,
                "started_at": iso(j.started_at),
                "finished_at": iso(j.finished_at),
            }
        )
    return trials


def _insert_trials(
    s: Session, study: Study, new: Sequence[tuple[int, dict, int]], make: MakeSpec, max_attempts: int
) -> list[str]:
    """Insert the planned trials; a trial whose spec turns out invalid is stored failed, with the reason."""
    queued = []
    for number, params, seed_index in new:
        spec, error = make(study.spec, params, seed_index, number)
        job = Job(
            id=uuid.uuid4().hex,
            user_id=study.user_id,
            type="train",
            name=str(spec.get("name", ""))[:200],
            status="queued" if error is None else "failed",
            spec=spec,
            max_attempts=max_attempts,
            study_id=study.id,
            trial_number=number,
            params=params,
            error=error,
            finished_at=None if error is None else utcnow(),
        )
        s.add(job)
        s.add_all(JobTag(job_id=job.id, tag=t) for t in dict.fromkeys(spec.get("tags", [])) if isinstance(t, str))
        if error is None:
            queued.append(job.id)
    s.flush()
    return queued


def _top_up_locked(s: Session, study: Study, plan: Plan, make: MakeSpec, max_attempts: int) -> list[str]:
    """With the study row taken: create what ``plan`` asks for, or finish the study when all is done."""
    trials = trials_in(s, study.id, study.spec["objective"]["metric"])
    new = plan(study.spec, trials)
    created = _insert_trials(s, study, new, make, max_attempts) if new else []
    if not new and all(t["status"] not in ACTIVE for t in trials):
        total = study.spec["max_trials"] * study.spec["seeds"]
        if len(trials) >= total:
            ok = any(t["status"] == "succeeded" for t in trials)
            s.execute(
                update(Study)
                .where(Study.id == study.id, Study.status == "running")
                .values(status="succeeded" if ok else "failed", finished_at=utcnow()),
                execution_options={"synchronize_session": False},
            )
    return created


def create_study(
    store: Store,
    user_id: int,
    spec: dict,
    plan: Plan,
    make: MakeSpec,
    max_attempts: int = 3,
    idempotency: IdempotentRequest | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Insert a running study and its first trials in ONE transaction; returns the study and the queued job ids.

    Publish the wake-ups only after this returns (the trials are committed then).
    """
    study = Study(id=uuid.uuid4().hex, user_id=user_id, name=spec["name"], status="running", spec=spec)
    with store.session() as s:
        s.add(study)
        s.flush()
        created = _top_up_locked(s, study, plan, make, max_attempts)
        if idempotency is not None:
            record_idempotency_key(s, idempotency, [study.id])
        name = s.scalar(select(User.name).where(User.id == user_id))
        return _study_dict(study, name), created


def top_up(store: Store, study_id: str, plan: Plan, make: MakeSpec, max_attempts: int = 3) -> list[str]:
    """Create the study's next trials (or finish it); safe to run twice at once. Returns the queued job ids."""
    with store.session() as s:
        # The lock first, before any read: the reads below then see every committed trial.
        taken = s.execute(
            update(Study)
            .where(Study.id == study_id, Study.status == "running")
            .values(topups=Study.topups + 1)
            .returning(Study.id),
            execution_options={"synchronize_session": False},
        ).first()
        if taken is None:
            return []
        study = s.get(Study, study_id)
        return _top_up_locked(s, study, plan, make, max_attempts)


def studies_to_top_up(store: Store) -> list[str]:
    """Running studies with room for more trials, or with nothing active left (to create or finish): one query."""
    active = func.sum(case((Job.status.in_(ACTIVE), 1), else_=0))
    # Grouped by the primary key alone: PostgreSQL has no equality for json (spec), and both
    # databases allow selecting the columns of a row grouped by its key.
    with store.session() as s:
        rows = s.execute(
            select(Study.id, Study.spec, func.count(Job.id), active)
            .outerjoin(Job, Job.study_id == Study.id)
            .where(Study.status == "running")
            .group_by(Study.id)
        ).all()
    due = []
    for study_id, spec, count, running in rows:
        running = running or 0
        if running == 0 or (running < spec["max_concurrent"] and count < spec["max_trials"] * spec["seeds"]):
            due.append(study_id)
    return due


def get_study(store: Store, study_id: str, user: UserInfo | None) -> tuple[dict[str, Any], list[dict]] | None:
    """The study and its trials (see :func:`trials_in`), or None if missing or not visible to ``user``."""
    with store.session() as s:
        row = s.execute(
            select(Study, User.name).join(User, User.id == Study.user_id).where(Study.id == study_id, _visible(user))
        ).first()
        if row is None:
            return None
        study = _study_dict(*row)
        return study, trials_in(s, study_id, study["spec"]["objective"]["metric"])


def list_studies(
    store: Store, user: UserInfo | None, limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """The studies ``user`` may see, newest first, and how many there are."""
    with store.session() as s:
        rows = s.execute(
            select(Study, User.name)
            .join(User, User.id == Study.user_id)
            .where(_visible(user))
            .order_by(Study.created_at.desc(), Study.id)
            .limit(limit)
            .offset(offset)
        ).all()
        total = s.scalar(select(func.count()).select_from(Study).where(_visible(user)))
        return [_study_dict(*r) for r in rows], total


def cancel_study(store: Store, study_id: str, user: UserInfo | None, now: datetime | None = None) -> str | None:
    """Cancel a study: ``"cancelled"`` (its queued trials cancelled, running ones flagged to stop),
    ``"finished"`` (it had already ended), or None (missing or not visible)."""
    now = now or utcnow()
    with store.session() as s:
        # The study row first: a top-up waiting on it then finds the study cancelled.
        row = s.execute(
            update(Study)
            .where(Study.id == study_id, _visible(user), Study.status == "running")
            .values(status="cancelled", finished_at=now)
            .returning(Study.id),
            execution_options={"synchronize_session": False},
        ).first()
        if row is None:
            exists = s.scalar(select(Study.id).where(Study.id == study_id, _visible(user)))
            return None if exists is None else "finished"
        queued = Job.status == "queued"
        s.execute(
            update(Job)
            .where(Job.study_id == study_id, Job.status.in_(ACTIVE))
            .values(
                cancel_requested=True,
                status=case((queued, "cancelled"), else_=Job.status),
                finished_at=case((queued, literal(now, UTCDateTime())), else_=Job.finished_at),
            ),
            execution_options={"synchronize_session": False},
        )
    return "cancelled"


def trial_of(store: Store, job_id: str) -> tuple[dict, list[dict]] | None:
    """For a job that is a study's trial: (the study spec, its trials with per-epoch values); else None."""
    with store.session() as s:
        row = s.execute(
            select(Study.id, Study.spec).join(Job, Job.study_id == Study.id).where(Job.id == job_id)
        ).first()
        if row is None:
            return None
        return row.spec, trials_in(s, row.id, row.spec["objective"]["metric"])


def study_spec(store: Store, study_id: str) -> dict | None:
    """The study's normalised spec (it never changes once stored), or None if there is no such study."""
    with store.session() as s:
        return s.scalar(select(Study.spec).where(Study.id == study_id))

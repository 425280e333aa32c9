"""Jobs: create, read, and the few state changes (docs/architecture.md, "Where truth lives").

Every change that can race is ONE conditional ``UPDATE ... WHERE status = ...``:
whoever's update matches the row wins, the others see no row and back off.
The queue is this table: a broker message only says that work is available,
and a worker claims the next queued job here (:func:`claim_next_job`).
Statuses only move ``queued -> running -> succeeded | failed | cancelled``
(and ``running -> queued`` when a worker is lost); terminal ones never change.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, case, cast, func, literal, or_, select, true, update
from sqlalchemy.orm import Session

from convlab.names import STATUSES, TERMINAL_STATUSES

from .artifacts import upsert_artifact
from .auth import UserInfo
from .db import Store
from .idempotency import IdempotentRequest, record_idempotency_key
from .models import Job, JobTag, User, UserLimit, UTCDateTime, Worker, iso, utcnow
from .quotas import Quota, QuotaExceeded, check_storage, effective_limits, lock_user


def _job_dict(job: Job, user_name: str) -> dict[str, Any]:
    """The job as the API shows it (docs/reference/http-api.md), plus ``user`` and ``cancel_requested``."""
    return {
        "id": job.id,
        "type": job.type,
        "name": job.name,
        # The tags live in the spec; job_tags is only an index for filtering.
        "tags": list(job.spec.get("tags", [])),
        "status": job.status,
        "spec": job.spec,
        "result": job.result,
        "error": job.error,
        "attempts": job.attempts,
        "progress": {"epoch": job.epoch, "step": job.step, "total_steps": job.total_steps},
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "user": user_name,
        "cancel_requested": job.cancel_requested,
        "study_id": job.study_id,
        "trial_number": job.trial_number,
        "params": job.params,
        "environment": job.environment,
        "triage": job.triage,
        "reproduces": job.reproduces,
        "certificate": job.certificate,
        "worker": job.worker,
    }


def _visible(user: UserInfo | None):
    """WHERE clause: the jobs ``user`` may see (admins and internal callers see all)."""
    if user is None or user.is_admin:
        return true()
    return Job.user_id == user.id


def _load(s: Session, job_id: str, user: UserInfo | None = None) -> dict[str, Any] | None:
    """Read one job as a dict in session ``s``."""
    row = s.execute(
        select(Job, User.name).join(User, User.id == Job.user_id).where(Job.id == job_id, _visible(user))
    ).first()
    return None if row is None else _job_dict(*row)


def _update(s: Session, *where, **values):
    """``UPDATE jobs SET values WHERE where RETURNING id, status`` -> the row, or None if none matched."""
    stmt = update(Job).where(*where).values(**values).returning(Job.id, Job.status)
    return s.execute(stmt, execution_options={"synchronize_session": False}).first()


def _now(now: datetime):
    """``now`` as a typed SQL literal, for use inside SQL expressions (CASE, COALESCE)."""
    return literal(now, UTCDateTime())


def create_job(
    store: Store,
    user_id: int,
    spec: dict[str, Any],
    max_attempts: int = 3,
    idempotency: IdempotentRequest | None = None,
) -> dict[str, Any]:
    """Insert a queued job for a spec that the caller has already validated and normalised.

    Commits before returning: publish the task only after this returns (docs/architecture.md).
    ``idempotency``: the request's key, recorded in the same transaction.
    """
    return create_jobs(store, user_id, [spec], max_attempts, idempotency)[0]


def create_jobs(
    store: Store,
    user_id: int,
    specs: list[dict[str, Any]],
    max_attempts: int = 3,
    idempotency: IdempotentRequest | None = None,
    quota: Quota | None = None,
) -> list[dict[str, Any]]:
    """Insert queued jobs for validated specs in ONE transaction (all or none), with the request's
    idempotency key if it has one; ``IntegrityError`` if that key was recorded meanwhile.

    ``quota``: the deployment's default limits; then the user's queued-jobs and storage limits
    (with their overrides) are checked in the same transaction, under the user's lock (two
    concurrent submits cannot both slip under the limit), and :class:`QuotaExceeded` stores nothing.
    """
    jobs = [
        Job(
            id=uuid.uuid4().hex,
            user_id=user_id,
            type=spec["type"],
            name=spec["name"],
            status="queued",
            spec=spec,
            max_attempts=max_attempts,
            priority=int(spec.get("priority", 0)),
        )
        for spec in specs
    ]
    with store.session() as s:
        if quota is not None:
            _check_submit_quota(s, user_id, len(specs), quota)
        for job in jobs:
            s.add(job)
            s.add_all(JobTag(job_id=job.id, tag=t) for t in dict.fromkeys(job.spec.get("tags", [])))
        s.flush()
        if idempotency is not None:
            record_idempotency_key(s, idempotency, [job.id for job in jobs])
        return [_load(s, job.id) for job in jobs]


# A user at their queued-jobs limit may try again once some of their jobs have started; how long
# that takes is unknown, so the answer suggests a short wait rather than a promise.
QUEUED_RETRY_AFTER_S = 30


def _check_submit_quota(s: Session, user_id: int, adding: int, quota: Quota) -> None:
    """Within ``s``: lock the user, then :class:`QuotaExceeded` if ``adding`` more queued jobs or
    their storage would be over their limits."""
    lock_user(s, user_id)
    limits = effective_limits(s, user_id, quota)
    if limits.max_queued is not None:
        queued = s.scalar(select(func.count()).select_from(Job).where(Job.user_id == user_id, Job.status == "queued"))
        if queued + adding > limits.max_queued:
            raise QuotaExceeded(
                "max_queued",
                f"queued-jobs limit reached: {queued} queued"
                + (f" + {adding} new" if adding > 1 else " + 1 new")
                + f", the limit is {limits.max_queued}; wait for some to start, or cancel some",
                retry_after_s=QUEUED_RETRY_AFTER_S,
            )
    check_storage(s, user_id, limits)


def get_job(store: Store, job_id: str, user: UserInfo | None) -> dict[str, Any] | None:
    """The job, or None if missing or not ``user``'s (admins see all; ``user=None``: internal, no check)."""
    with store.session() as s:
        return _load(s, job_id, user)


def _like_escape(text: str) -> str:
    """``text`` with LIKE wildcards escaped (escape character ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_jobs(
    store: Store,
    user: UserInfo | None,
    status: str | None = None,
    type: str | None = None,
    tag: str | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """The jobs ``user`` may see, newest first, and how many match in all (for paging).

    ``search`` matches a case-insensitive substring of the name or a prefix of the id.
    The caller bounds ``limit``.
    """
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must be >= 0")
    where = [_visible(user)]
    if status:
        where.append(Job.status == status)
    if type:
        where.append(Job.type == type)
    if tag:
        where.append(select(JobTag.job_id).where(JobTag.job_id == Job.id, JobTag.tag == tag).exists())
    if search:
        pattern = _like_escape(search)
        where.append(or_(Job.name.ilike(f"%{pattern}%", escape="\\"), Job.id.like(f"{pattern.lower()}%", escape="\\")))
    with store.session() as s:
        total = s.scalar(select(func.count()).select_from(Job).where(*where))
        rows = s.execute(
            select(Job, User.name)
            .join(User, User.id == Job.user_id)
            .where(*where)
            .order_by(Job.created_at.desc(), Job.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return [_job_dict(job, name) for job, name in rows], total


# A running limit of "none" as a number, so that one SQL expression covers limited and unlimited users.
_UNLIMITED = 2**31 - 1


# Built once per running limit and reused (an immutable expression): building it took as long as
# running it, and every claim reads it twice.
@functools.lru_cache(maxsize=16)
def queue_order(max_running: int | None = None):
    """The queue in dispatch order: a subquery of the queued jobs with ``id``, ``user_id``, ``k``
    (the job's place among its user's queued jobs, 0 = next), ``place`` (1-based, in the whole
    queue) and ``claimable`` (1, or 0 while its user is at their running limit).

    The one place the queue's order is decided (docs/architecture.md, "Fair share"):
    :func:`claim_next_job` claims its first claimable job and :func:`queue_positions` ranks by
    it.  Within one user: higher ``priority`` first, then older (``created_at``, ``id``).  Between
    users: what a worker taking jobs one by one would do if no job finished meanwhile.  Each
    claim goes to the user with the fewest running jobs, so a user's k-th queued job starts
    when every user has ``running + k`` jobs: jobs are ranked by ``running + k``; within one
    such level, users that reached it by claims of this simulation (fewer running jobs now:
    they entered earlier) come after those already there (more running now), and then the
    least recently served user first (``users.last_claim_at``, never served first).  A job
    whose user would be past their running limit (``running + k >= limit``) waits for one of
    theirs to finish: it is not claimable and ranks after every job that is.  A job handed
    back or reaped keeps its ``created_at`` and priority, so it keeps its place in its user's line.

    ``max_running``: the deployment's running limit per user (a user's override wins).
    """
    running = (
        select(Job.user_id.label("user_id"), func.count().label("n"))
        .where(Job.status == "running")
        .group_by(Job.user_id)
        .subquery("running")
    )
    k = func.row_number().over(partition_by=Job.user_id, order_by=(Job.priority.desc(), Job.created_at, Job.id)) - 1
    limit = func.coalesce(UserLimit.max_running, _UNLIMITED if max_running is None else max_running)
    ranked = (
        select(
            Job.id,
            Job.user_id,
            k.label("k"),
            func.coalesce(running.c.n, 0).label("r"),
            limit.label("lim"),
            User.last_claim_at.label("last"),
        )
        .select_from(Job)
        .join(User, User.id == Job.user_id)
        .outerjoin(running, running.c.user_id == Job.user_id)
        .outerjoin(UserLimit, UserLimit.user_id == Job.user_id)
        .where(Job.status == "queued")
    ).subquery("ranked")
    blocked = case((ranked.c.r + ranked.c.k >= ranked.c.lim, 1), else_=0)
    served = case((ranked.c.last.is_(None), 0), else_=1)  # never served first (portable NULLS FIRST)
    place = func.row_number().over(
        order_by=(
            blocked,
            ranked.c.r + ranked.c.k,
            ranked.c.r.desc(),
            served,
            ranked.c.last,
            ranked.c.user_id,
            ranked.c.k,
        )
    )
    return select(
        ranked.c.id, ranked.c.user_id, ranked.c.k, place.label("place"), (1 - blocked).label("claimable")
    ).subquery("queue")


def _claim_values(worker: str, now: datetime) -> dict[str, Any]:
    """SET clause of a claim: ``running`` on ``worker``, one more attempt, heartbeat now."""
    return {
        "status": "running",
        "attempts": Job.attempts + 1,
        "worker": worker,
        "heartbeat_at": now,
        "started_at": func.coalesce(Job.started_at, _now(now)),
    }


# Lost races in a row before a claimer gives up (its wake-up is then spent on nothing; the
# sweep publishes another for whatever is still queued).
_CLAIM_RACES = 20


#: How recent a worker's heartbeat must be for a reproduction to wait for it (see :func:`_hint_allows`).
HINT_ALIVE_S = 15.0


def _hint_allows(worker: str, now: datetime, alive_s: float):
    """WHERE clause: a job's ``not_worker`` hint lets ``worker`` claim it.

    Always, unless the hint names ``worker`` while another worker is live:
    a reproduction then waits for that one (it is a preference, never a reason
    to leave a job queued with no one else to run it).
    """
    other_live = (
        select(Worker.name)
        .where(Worker.name != worker, Worker.heartbeat_at >= now - timedelta(seconds=alive_s))
        .exists()
    )
    return or_(Job.not_worker.is_(None), Job.not_worker != worker, ~other_live)


def _next_in_line(s: Session, max_running: int | None, worker: str, alive_s: float):
    """Within ``s``: (job id, user id) of the first job in :func:`queue_order` that ``worker`` may claim
    (claimable, and no reproduction hint against it), or None."""
    q = queue_order(max_running)
    return s.execute(
        select(q.c.id, q.c.user_id)
        .join(Job, Job.id == q.c.id)
        .where(q.c.claimable == 1, _hint_allows(worker, utcnow(), alive_s))
        .order_by(q.c.place)
        .limit(1)
    ).first()


def claim_next_job(
    store: Store, worker: str, resume_own: bool = False, max_running: int | None = None, alive_s: float = HINT_ALIVE_S
) -> dict[str, Any] | None:
    """Claim the first claimable job in :func:`queue_order` (fair share) for ``worker``; None if there is none.

    The order is read, the chosen job's USER is locked (:func:`~store.quotas.lock_user`: its row on
    PostgreSQL, the database's write lock on SQLite), and the order is read again under that lock:
    if the same user is still first, their first job is taken by the conditional update
    (``status = 'queued'``: claim once) and the user's ``last_claim_at`` is set, in the same
    transaction.  Every claim of one user holds that user's lock, so two claimers can never take
    the same user past their running limit, nor both take a job meant for the second in line.
    If another user came first meanwhile, the claimer lets go and tries again with that one.
    (Claimers of different users never wait for each other on PostgreSQL; SQLite has one writer.)

    ``resume_own``: the caller's previous claim failed with a lost connection,
    which may have happened after its commit.  A job already running on
    ``worker`` is then that claim (attempt already counted), and is returned.
    ``max_running``: the deployment's running limit per user (a user's override wins).
    ``alive_s``: a job whose ``not_worker`` hint names ``worker`` (a reproduction) is passed over while
    another worker has been heard from within it.
    """
    if resume_own:
        with store.session() as s:
            mine = s.scalar(
                select(Job.id)
                .where(Job.status == "running", Job.worker == worker)
                .order_by(Job.created_at, Job.id)
                .limit(1)
            )
            if mine is not None:
                return _load(s, mine)
    with store.session() as s:
        first = _next_in_line(s, max_running, worker, alive_s)
    for _ in range(_CLAIM_RACES):
        if first is None:
            return None
        with store.session() as s:
            lock_user(s, first.user_id)
            again = _next_in_line(s, max_running, worker, alive_s)
            now = utcnow()  # after the read: a claim that a finish made possible starts after it
            same = again is not None and again.user_id == first.user_id
            if same and _update(s, Job.id == again.id, Job.status == "queued", **_claim_values(worker, now)):
                s.execute(
                    update(User).where(User.id == again.user_id).values(last_claim_at=now),
                    execution_options={"synchronize_session": False},
                )
                return _load(s, again.id)
            s.rollback()  # let go of the lock before waiting for another user's
        first = again
    return None  # lost every race: as many claimers won, and their wake-ups cover the rest


def claim_job(store: Store, job_id: str, worker: str) -> dict[str, Any] | None:
    """Claim the queued job ``job_id`` for ``worker`` (tests and tools; workers use :func:`claim_next_job`).

    None if it is not queued (cancelled, finished, or another worker has it).
    ``worker`` must name one executing task slot (e.g. ``host:pid``), since
    heartbeats and finishing check it.  No limit is checked; the user's
    ``last_claim_at`` is set as by a worker's claim.
    """
    now = utcnow()
    with store.session() as s:
        won = _update(s, Job.id == job_id, Job.status == "queued", **_claim_values(worker, now))
        if won is None:
            return None
        s.execute(
            update(User)
            .where(User.id == select(Job.user_id).where(Job.id == job_id).scalar_subquery())
            .values(last_claim_at=now),
            execution_options={"synchronize_session": False},
        )
        return _load(s, job_id)


def count_queued(store: Store) -> int:
    """How many jobs are queued (the wake-up sweep compares it with the broker's messages)."""
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(Job).where(Job.status == "queued"))


def count_claimable(store: Store, max_running: int | None = None) -> int:
    """How many queued jobs a worker could claim now (not those whose user is at their running limit):
    what the wake-up sweep keeps a wake-up on the broker for."""
    q = queue_order(max_running)
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(q).where(q.c.claimable == 1))


def heartbeat(store: Store, job_id: str, worker: str) -> str:
    """Record that ``worker`` still runs the job. Returns what the task should do next:

    ``"ok"`` go on; ``"cancel"`` a cancel was requested, stop cleanly and
    ``finish_job(..., "cancelled")``; ``"lost"`` the job is no longer running
    on this worker (reaped, finished): stop without writing a result.
    """
    with store.session() as s:
        flag = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "running", Job.worker == worker)
            .values(heartbeat_at=utcnow())
            .returning(Job.cancel_requested),
            execution_options={"synchronize_session": False},
        ).scalar()
    if flag is None:
        return "lost"
    return "cancel" if flag else "ok"


def update_progress(
    store: Store, job_id: str, epoch: int, step: int, total_steps: int, worker: str | None = None
) -> bool:
    """Set the job's progress; only while it runs (on ``worker`` if given). True if written."""
    where = [Job.id == job_id, Job.status == "running"]
    if worker is not None:
        where.append(Job.worker == worker)
    with store.session() as s:
        return _update(s, *where, epoch=epoch, step=step, total_steps=total_steps) is not None


def touch_if_owner(s: Session, job_id: str, worker: str) -> bool:
    """Within session ``s``: heartbeat the job if it runs on ``worker``; False if it does not.

    The row stays locked (PostgreSQL) or the database write-locked (SQLite)
    until ``s`` commits, so what ``s`` writes next cannot race with a reaper.
    """
    return (
        _update(s, Job.id == job_id, Job.status == "running", Job.worker == worker, heartbeat_at=utcnow()) is not None
    )


def save_artifact(store: Store, job_id: str, name: str, data: bytes, worker: str | None = None) -> bool:
    """Store ``data`` as the job's artifact ``name`` (one upsert), replacing an older one.

    It lives with the job-state functions because of its ownership check (fencing).

    With ``worker``, only while the job runs on that worker, checked in the same
    transaction: a worker whose job was taken away never overwrites the new
    owner's checkpoint.  True if written.
    """
    with store.session() as s:
        if worker is not None and not touch_if_owner(s, job_id, worker):
            return False
        upsert_artifact(s, store, job_id, name, data)
    return True


def finish_job(
    store: Store,
    job_id: str,
    status: str,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    worker: str | None = None,
    artifacts: dict[str, bytes] | None = None,
    triage: dict[str, Any] | None = None,
    progress: tuple[int, int, int] | None = None,
) -> bool:
    """Write a terminal status, once: only if the job is running (on ``worker`` if given).

    ``artifacts`` (e.g. the weights) are stored in the same transaction, so
    they exist exactly when the status says the job finished on this worker.
    False if it was not running there (already finished, reaped, or taken over).
    ``triage``: a diverged run's report (docs/trust.md).  ``progress``: the
    last (epoch, step, total steps), written with the status (the worker writes
    progress at most every 0.25 s while the job runs).
    """
    if status not in TERMINAL_STATUSES:
        raise ValueError(f"not a terminal status: {status!r}")
    where = [Job.id == job_id, Job.status == "running"]
    if worker is not None:
        where.append(Job.worker == worker)
    with store.session() as s:
        extra = {} if triage is None else {"triage": triage}
        if progress is not None:
            extra.update(epoch=progress[0], step=progress[1], total_steps=progress[2])
        if _update(s, *where, status=status, result=result, error=error, finished_at=utcnow(), **extra) is None:
            return False
        for name, data in (artifacts or {}).items():
            upsert_artifact(s, store, job_id, name, data)
    return True


def finished_by(store: Store, job_id: str, worker: str) -> str | None:
    """The job's terminal status if ``worker`` finished it (a retried finish checks its first try), else None."""
    with store.session() as s:
        return s.scalar(
            select(Job.status).where(Job.id == job_id, Job.worker == worker, Job.status.in_(TERMINAL_STATUSES))
        )


def release_job(store: Store, job_id: str, worker: str) -> str | None:
    """A worker shutting down hands its running job back: ``queued`` again, this attempt not counted
    (``cancelled`` if a cancel was pending).  None if it was not running on ``worker``."""
    with store.session() as s:
        row = _update(
            s,
            Job.id == job_id,
            Job.status == "running",
            Job.worker == worker,
            status=case((Job.cancel_requested.is_(True), "cancelled"), else_="queued"),
            finished_at=case((Job.cancel_requested.is_(True), _now(utcnow())), else_=Job.finished_at),
            attempts=Job.attempts - 1,
            heartbeat_at=None,
        )
    return None if row is None else row.status


def request_cancel(store: Store, job_id: str, user: UserInfo | None) -> str | None:
    """Cancel a job: ``"cancelled"`` (it was queued: cancelled now), ``"requested"`` (it runs:
    flagged, the task stops at its next heartbeat), ``"finished"`` (already terminal: the API
    answers 409), or None (missing or not visible to ``user``)."""
    now = utcnow()
    with store.session() as s:
        if s.scalar(select(Job.id).where(Job.id == job_id, _visible(user))) is None:
            return None
        # One statement for both cases, so a claim racing with the cancel cannot slip between.
        queued = Job.status == "queued"
        row = _update(
            s,
            Job.id == job_id,
            Job.status.in_(("queued", "running")),
            cancel_requested=True,
            status=case((queued, "cancelled"), else_=Job.status),
            finished_at=case((queued, _now(now)), else_=Job.finished_at),
        )
    if row is None:
        return "finished"
    return "cancelled" if row.status == "cancelled" else "requested"


def _release_values(now: datetime) -> dict[str, Any]:
    """SET clause that takes a running job away from its worker.

    Back to ``queued``, unless a cancel was requested (``cancelled``) or its
    attempts are used up (``failed``, "worker lost (N attempts)").
    """
    cancelled = Job.cancel_requested.is_(True)
    exhausted = and_(Job.cancel_requested.is_(False), Job.attempts >= Job.max_attempts)
    lost = literal("worker lost (") + cast(Job.attempts, String) + literal(" attempts)")
    return {
        "status": case((cancelled, "cancelled"), (exhausted, "failed"), else_="queued"),
        "error": case((exhausted, lost), else_=Job.error),
        "finished_at": case((or_(cancelled, exhausted), _now(now)), else_=Job.finished_at),
        "heartbeat_at": None,
    }


def requeue_job(store: Store, job_id: str, worker: str | None = None) -> str | None:
    """Put a running job back in the queue (a redelivered or stale job; a worker shutting down).

    Returns the new status (``queued``, or ``failed`` / ``cancelled`` as in
    :func:`reap_stale_jobs`), None if it was not
    running (on ``worker`` if given).
    """
    where = [Job.id == job_id, Job.status == "running"]
    if worker is not None:
        where.append(Job.worker == worker)
    with store.session() as s:
        row = _update(s, *where, **_release_values(utcnow()))
    return None if row is None else row.status


def reap_stale_jobs(store: Store, timeout_s: float) -> list[tuple[str, str]]:
    """Take back running jobs whose heartbeat is older than ``timeout_s``: ``[(job_id, new_status)]``.

    A job goes back to ``queued`` (in its old place), or to ``failed``
    with "worker lost (N attempts)" once ``attempts >= max_attempts``, or to
    ``cancelled`` if a cancel was pending. A heartbeat that lands first keeps
    the job: the condition is re-checked in the same statement.
    """
    now = utcnow()
    cutoff = now - timedelta(seconds=timeout_s)
    stmt = (
        update(Job)
        .where(Job.status == "running", or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff))
        .values(**_release_values(now))
        .returning(Job.id, Job.status)
    )
    with store.session() as s:
        rows = s.execute(stmt, execution_options={"synchronize_session": False}).all()
    return [(r.id, r.status) for r in rows]


def queue_positions(store: Store, job_ids: list[str], max_running: int | None = None) -> dict[str, int]:
    """1-based places in the queue (:func:`queue_order`: the dispatch order) of those of ``job_ids``
    that are queued: one query."""
    if not job_ids:
        return {}
    q = queue_order(max_running)
    with store.session() as s:
        rows = s.execute(select(q.c.id, q.c.place).where(q.c.id.in_(job_ids))).all()
    return {r.id: int(r.place) for r in rows}


def queue_position(store: Store, job_id: str, max_running: int | None = None) -> int | None:
    """1-based place of a queued job in the queue (:func:`queue_order`), None if it is not queued."""
    return queue_positions(store, [job_id], max_running).get(job_id)


def typical_run_s(store: Store, sample: int = 50) -> float | None:
    """The median run time (first start to finish) of the last ``sample`` succeeded jobs, None before any:
    what the queue's start estimates multiply (service.queue_eta)."""
    with store.session() as s:
        rows = s.execute(
            select(Job.started_at, Job.finished_at)
            .where(Job.status == "succeeded", Job.started_at.is_not(None), Job.finished_at.is_not(None))
            .order_by(Job.finished_at.desc())
            .limit(sample)
        ).all()
    runs = sorted((finished - started).total_seconds() for started, finished in rows)
    return runs[len(runs) // 2] if runs else None


def count_by_status(store: Store) -> dict[str, int]:
    """How many jobs are in each status (every status present, 0 if none)."""
    with store.session() as s:
        counts = dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    return {status: counts.get(status, 0) for status in STATUSES}


def job_durations(store: Store) -> list[float]:
    """Seconds from first start to finish of every finished job that started (for Prometheus)."""
    with store.session() as s:
        rows = s.execute(
            select(Job.started_at, Job.finished_at).where(
                Job.status.in_(TERMINAL_STATUSES), Job.started_at.is_not(None), Job.finished_at.is_not(None)
            )
        )
        return [(finished - started).total_seconds() for started, finished in rows]

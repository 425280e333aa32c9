"""Running jobs on a worker: claim the next one, resume, train or check, report, finish once.

Independent of the Celery app, so it can be read and tested on its own; the
task in ``workers.app`` only calls :meth:`JobRunner.run_next`.

Every database call goes through :func:`~workers.retry.patiently`: while the
database is unreachable the worker waits (backing off) with what it holds, a
wake-up or a running job, instead of dropping it or handing it back through a
dead connection.  Writes of a running job are fenced: each one checks, in its
own transaction, that the job still runs on this worker.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import TypeVar

from celery.exceptions import SoftTimeLimitExceeded

import store
from convlab.limits import dataset_limits
from convlab.names import CHECKPOINT, WEIGHTS
from convlab.studies.topup import StudyKeeper
from convlab.studies.trials import should_prune
from engine.datasets import DatasetError, load_npz
from engine.environment import environment
from engine.jobs import Hooks, run_job
from engine.spec import SpecError

from .celery_app import publish_wakeups
from .control import CANCEL, LOST, PRUNE, SHUTDOWN, JobControl
from .retry import Interrupted, patiently

log = logging.getLogger(__name__)
T = TypeVar("T")


class JobLost(Exception):
    """A fenced write was refused: the job does not run on this worker any more."""


class MetricBuffer:
    """Metric points collected by the training loop and written in batches.

    A write is a few milliseconds; one per step would dominate a small job, so
    points are flushed at most every ``flush_s`` seconds and before every
    checkpoint.  Writes are idempotent per (job, series, step), so a resumed job
    that repeats steps after its last checkpoint writes no duplicates.
    ``write(points)`` stores them, returning False if the job is not ours any more.
    """

    def __init__(self, write: Callable[[list], bool], flush_s: float):
        self.write, self.flush_s = write, flush_s
        self.points: list[tuple[str, int, float]] = []
        self.last_flush = time.monotonic()

    def add(self, series: str, step: int, value: float) -> None:
        self.points.append((series, step, float(value)))
        if time.monotonic() - self.last_flush >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        """Write the points collected so far (kept until written); JobLost if the job was taken away."""
        if self.points:
            if not self.write(self.points):
                raise JobLost()
            self.points = []
        self.last_flush = time.monotonic()


class JobRunner:
    """Runs jobs for one worker slot named ``worker`` (``host:pid``)."""

    # The longest a hand-back on shutdown waits for an unreachable database; past it the
    # job is left to the reaper (it resumes from its checkpoint, one attempt counted).
    RELEASE_DEADLINE_S = 5.0

    def __init__(self, st: store.Store, settings, worker: str, monitor=None):
        self.store, self.settings, self.worker = st, settings, worker
        self.monitor = monitor
        self.dataset_limits = dataset_limits(settings)
        self.shutting_down = monitor.shutting_down if monitor is not None else threading.Event()
        self.backoff_cap_s = max(0.1, min(2.0, settings.heartbeat_s))
        self.studies = StudyKeeper(st, settings)

    def _db(self, fn: Callable[[], T], what: str, stop: threading.Event | None = None, **kw) -> T:
        return patiently(fn, what, stop or self.shutting_down, cap_s=self.backoff_cap_s, **kw)

    def run_next(self) -> str | None:
        """Claim the next queued job (fair share: ``store.queue_order``) and run it.

        Returns the terminal status written, or None (nothing was queued, or the
        job ended without a result of ours: handed back, taken away).  Raises
        :class:`~workers.retry.Interrupted` if the process was asked to stop
        before it could claim (the caller returns its wake-up to the broker).
        """
        first = [True]

        def claim():
            # After a failed attempt the claim may have committed without our hearing of it:
            # a job already running on this slot is then the one we claimed.
            own = not first[0]
            first[0] = False
            return store.claim_next_job(
                self.store,
                self.worker,
                resume_own=own,
                max_running=self.settings.max_running_jobs,
                alive_s=self.settings.worker_alive_s,
            )

        job = self._db(claim, "claiming the next job")
        if job is None:
            log.info("woken up, but no job is queued")
            return None
        log.info("job %s claimed by %s (attempt %d)", job["id"], self.worker, job["attempts"])
        control = JobControl(job["id"])
        try:
            if self.monitor is not None:
                self.monitor.watch(control)
            status = self._run_claimed(job, control)
        finally:
            if self.monitor is not None:
                self.monitor.unwatch()
        if status is not None and job.get("study_id"):
            self.top_up_study(job["study_id"])
        return status

    def top_up_study(self, study_id: str) -> None:
        """A trial of ``study_id`` ended here: queue the study's next trials now and wake workers for them.

        Done by the worker that finished the trial so the next one is queued
        before this worker looks for work (no idle gap); a failure is only
        logged, since every worker's sweep tops studies up too (docs/studies.md).
        """
        try:
            created = self._db(lambda: self.studies.top_up(study_id), f"study {study_id}: top-up")
            if created and self.monitor is not None and self.monitor.wakeups is not None:
                publish_wakeups(self.monitor.wakeups.app, len(created))
        except Exception as exc:  # noqa: BLE001 - the sweep tops up and publishes what this missed
            log.warning(
                "study %s: top-up after a trial failed (%s: %s); the sweep will do it",
                study_id,
                type(exc).__name__,
                exc,
            )

    def _run_claimed(self, job: dict, control: JobControl) -> str | None:
        job_id = job["id"]

        def fenced(write: Callable[[], object], what: str) -> None:
            """A write that holds only while the job is ours: waits out outages, JobLost if refused."""
            if self._db(write, f"job {job_id}: {what}", control.event) in (False, None):
                raise JobLost()

        def write_metrics(points: list) -> bool:
            return (
                self._db(
                    lambda: store.record_metrics(self.store, job_id, points, worker=self.worker),
                    f"job {job_id}: metrics",
                    control.event,
                )
                is not None
            )

        metrics = MetricBuffer(write_metrics, self.settings.metrics_flush_s)
        pruned_at: list[int] = []

        def on_checkpoint(blob: bytes, epoch: int) -> None:
            metrics.flush()  # points before the checkpoint are never lost
            fenced(
                lambda: store.save_artifact(self.store, job_id, CHECKPOINT, blob, worker=self.worker), "checkpoint"
            )  # never overwrite the new owner's checkpoint
            # Never at the last epoch: a trial that ran to its end is complete, not pruned.
            if job.get("study_id") and epoch < job["spec"]["train"]["epochs"] and self._prune_now(job_id, control):
                pruned_at.append(epoch)

        def on_progress(epoch: int, step: int, total: int) -> None:
            fenced(
                lambda: store.update_progress(self.store, job_id, epoch, step, total, worker=self.worker), "progress"
            )

        hooks = Hooks(
            on_metric=metrics.add, on_progress=on_progress, on_checkpoint=on_checkpoint, should_stop=control.stopped
        )
        try:
            env = environment(self.worker)
            fenced(lambda: store.set_environment(self.store, job_id, env, self.worker), "environment")
            checkpoint = self._db(
                lambda: store.load_artifact(self.store, job_id, CHECKPOINT), f"job {job_id}: checkpoint", control.event
            )
            if checkpoint is not None:
                log.info("job %s resumes from its checkpoint", job_id)
            outcome = run_job(
                job["spec"], hooks, checkpoint=checkpoint, resolve_dataset=lambda name: self._dataset(name, control)
            )
            metrics.flush()  # a cancelled job keeps its points too
        except (JobLost, Interrupted):
            outcome = None  # stopped in a write: see control.reason
            if control.reason is None:  # a refused write: the job was taken away
                control.stop(LOST)
        except (DatasetError, SpecError, ValueError) as exc:
            return self._finish(job_id, "failed", error=f"{type(exc).__name__}: {exc}")
        except SoftTimeLimitExceeded:
            return self._finish(
                job_id, "failed", error=f"time limit exceeded ({self.settings.task_time_limit_s} s per run)"
            )
        except Exception as exc:
            log.exception("job %s failed", job_id)
            detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
            return self._finish(job_id, "failed", error=detail)

        if outcome is not None and outcome.status == "cancelled" and control.reason == PRUNE and pruned_at:
            control.finishing = True
            result = {"epochs_completed": pruned_at[-1], "pruned_at_epoch": pruned_at[-1]}
            artifacts = {WEIGHTS: outcome.weights} if outcome.weights is not None else None
            return self._finish(job_id, "pruned", result=result, artifacts=artifacts)
        if outcome is None or outcome.status == "cancelled":
            return self._stopped(job_id, control)
        if outcome.status == "failed":  # diverged: the triage says where and why
            return self._finish(job_id, "failed", error=outcome.error, triage=outcome.triage)
        artifacts = {WEIGHTS: outcome.weights} if outcome.weights is not None else None
        control.finishing = True
        return self._finish(job_id, "succeeded", result=outcome.result, artifacts=artifacts)

    def _prune_now(self, job_id: str, control: JobControl) -> bool:
        """At an epoch's end (its points written): ask the study's pruner, from the siblings' per-epoch
        objective values in the database, whether this trial stops here; if so, stop it (reason PRUNE)."""
        found = self._db(lambda: store.trial_of(self.store, job_id), f"job {job_id}: study trials", control.event)
        if found is None or found[0]["pruner"]["type"] == "none":
            return False
        study, trials = found
        if not should_prune(study, trials, job_id):
            return False
        log.info("job %s: pruned by its study's %s pruner", job_id, study["pruner"]["type"])
        return control.stop(PRUNE)

    def _stopped(self, job_id: str, control: JobControl) -> str | None:
        """The job stopped before its end: act on why (lost: nothing; shutdown: hand back; cancel)."""
        why = control.reason or CANCEL
        if why == LOST:
            log.warning("job %s was taken from this worker; stopping without a result", job_id)
            return None
        if why == SHUTDOWN:
            try:
                status = self._db(
                    lambda: store.release_job(self.store, job_id, self.worker),
                    f"job {job_id}: hand-back",
                    threading.Event(),
                    deadline_s=self.RELEASE_DEADLINE_S,
                )
            except Interrupted:
                log.warning("job %s: could not hand it back (database unreachable); the reaper will", job_id)
                return None
            log.info("job %s handed back on shutdown: %s", job_id, status)
            return None
        return self._finish(job_id, "cancelled")

    def _finish(self, job_id: str, status: str, result=None, error=None, artifacts=None, triage=None) -> str | None:
        """Write the terminal status once (with the weights, in one transaction); None if the job was no longer ours."""
        try:
            written = self._db(
                lambda: store.finish_job(
                    self.store,
                    job_id,
                    status,
                    result=result,
                    error=error,
                    worker=self.worker,
                    artifacts=artifacts,
                    triage=triage,
                ),
                f"job {job_id}: finish",
            )
        except Interrupted:
            log.warning("job %s: stopping before %s could be written; the reaper takes it back", job_id, status)
            return None
        if written:
            log.info("job %s %s", job_id, status)
            return status
        if self._db(lambda: store.finished_by(self.store, job_id, self.worker), f"job {job_id}: read") == status:
            # A retried finish whose first try committed but lost its answer (database restart).
            log.info("job %s %s (the first answer was lost)", job_id, status)
            return status
        log.warning("job %s: not running on %s any more; %s not written", job_id, self.worker, status)
        return None

    def _dataset(self, dataset_id: str, control: JobControl):
        """An uploaded dataset, read from the database (every worker host reaches it)."""
        data = self._db(
            lambda: store.load_dataset_bytes(self.store, dataset_id), f"dataset {dataset_id}", control.event
        )
        if data is None:
            raise DatasetError(f"dataset {dataset_id!r} does not exist")
        return load_npz(data, self.dataset_limits, name=dataset_id)

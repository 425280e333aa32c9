"""Running jobs on a worker: claim the next one, resume, train or check, report, finish once.

Independent of the Celery app, so it can be read and tested on its own; the
task in ``workers.app`` only calls :meth:`JobRunner.run_wakeup`.

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
from .dataset_cache import DatasetCache
from .phases import PhaseTimes
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

    def __init__(self, write: Callable[[list], bool], flush_s: float, times: PhaseTimes | None = None):
        self.write, self.flush_s = write, flush_s
        self.times = times or PhaseTimes()
        self.points: list[tuple[str, int, float]] = []
        self.last_flush = time.monotonic()

    def add(self, series: str, step: int, value: float) -> None:
        self.points.append((series, step, float(value)))
        if time.monotonic() - self.last_flush >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        """Write the points collected so far (kept until written); JobLost if the job was taken away."""
        if self.points:
            with self.times("metrics"):
                written = self.write(self.points)
            if not written:
                raise JobLost()
            self.points = []
        self.last_flush = time.monotonic()


class ProgressWriter:
    """A running job's progress (epoch, step, total steps), written at most every ``every_s``.

    The engine reports it after batches and twice at each epoch's end; a write
    per report would cost a short job more than its training.  The first
    report is written at once (the job shows its total steps), and the last one
    goes with the terminal status (``finish_job(progress=...)``), so a finished
    job shows where it stopped.
    """

    EVERY_S = 0.25

    def __init__(self, write: Callable[[int, int, int], None], times: PhaseTimes, every_s: float = EVERY_S):
        self.write, self.times, self.every_s = write, times, every_s
        self.last: tuple[int, int, int] | None = None  # the last report, written or not
        self.written_at: float | None = None

    def report(self, epoch: int, step: int, total: int) -> None:
        self.last = (epoch, step, total)
        now = time.monotonic()
        if self.written_at is None or now - self.written_at >= self.every_s:
            with self.times("progress"):
                self.write(epoch, step, total)
            self.written_at = now


class Checkpoints:
    """When a running job's checkpoint is saved (``CONVLAB_CHECKPOINT_S``, docs/failure-modes.md).

    The engine makes one at every epoch's end.  It is saved once ``every_s``
    has passed since the last save (or since this run began), or at once when
    asked; otherwise it is held, and saved if the job then stops early
    (hand-back, cancel), so a resume loses at most the unfinished epoch.  A
    worker killed outright loses at most ``every_s`` plus an epoch: resume is
    exact from any checkpoint, so only time is lost, never correctness.  The
    metric points are flushed before each save: points before a checkpoint are
    never lost.
    """

    def __init__(self, save: Callable[[bytes], None], metrics: MetricBuffer, every_s: float, times: PhaseTimes):
        self.save, self.metrics, self.every_s, self.times = save, metrics, every_s, times
        self.pending: bytes | None = None
        self.saved_at = time.monotonic()

    def offer(self, blob: bytes, now: bool = False) -> None:
        """An epoch ended with checkpoint ``blob``: save it if it is time (or ``now``), else hold it."""
        if now or time.monotonic() - self.saved_at >= self.every_s:
            self._save(blob)
        else:
            self.pending = blob

    def save_pending(self) -> None:
        """The job stopped early: save the checkpoint held back, if any (best effort: an older one still resumes)."""
        if self.pending is None:
            return
        try:
            self._save(self.pending)
        except Interrupted:
            log.warning("the last checkpoint could not be saved (database unreachable); a resume starts earlier")

    def _save(self, blob: bytes) -> None:
        self.metrics.flush()
        with self.times("checkpoint"):
            self.save(blob)
        self.pending = None
        self.saved_at = time.monotonic()


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
        self.datasets = DatasetCache()
        self._idle_since: float | None = None  # when this process's previous job ended (phase "wait")
        self._times = PhaseTimes()  # the phases of the job running now (workers.phases)
        self._progress: ProgressWriter | None = None  # the running job's, whose last report the finish writes
        self._chain_until: float | None = None  # monotonic time past which this task starts no further job
        self._chain_next = False  # whether this task claims another job after the one that just ended
        self._env: dict | None = None
        self._pruners: dict[str, bool] = {}  # study id -> whether its trials ask a pruner at each epoch

    def _db(self, fn: Callable[[], T], what: str, stop: threading.Event | None = None, **kw) -> T:
        return patiently(fn, what, stop or self.shutting_down, cap_s=self.backoff_cap_s, **kw)

    def run_wakeup(self) -> int:
        """A wake-up: claim the next queued job and run it, then go on with the next ones in this task.

        After each job this worker claims the next claimable job itself, without
        a broker round trip, while the task has run less than ``chain_s`` and the
        process is not stopping: the database is the queue of record, a wake-up
        only says "look".  No job starts past ``chain_s`` into the task, and the
        task's time limit is the run limit plus ``chain_s``
        (``workers.celery_app``), so every run keeps at least the configured
        limit.  Returns the number of jobs claimed.  Raises
        :class:`~workers.retry.Interrupted` if the process was asked to stop
        before its first claim (the caller returns the wake-up to the broker).
        """
        self._chain_until = time.monotonic() + self.settings.chain_s
        try:
            claimed = 0
            while True:
                try:
                    job = self._claim(chained=claimed > 0)
                except Interrupted:
                    if claimed == 0:
                        raise
                    break  # stopping while the database was away: the wake-up was used, nothing held
                if job is None:
                    break
                claimed += 1
                self._run(job)
                # Decided once, before the top-up (which woke no one for the trial taken here); a
                # stop that came since ends the chain anyway, and the sweep wakes someone for it.
                if not self._chain_next or self.shutting_down.is_set():
                    break
            return claimed
        finally:
            self._chain_until = None

    def run_next(self) -> str | None:
        """Claim the next queued job (fair share: ``store.queue_order``) and run it; no chaining.

        Returns the terminal status written, or None (nothing was queued, or the
        job ended without a result of ours: handed back, taken away).  Raises
        :class:`~workers.retry.Interrupted` if the process was asked to stop
        before it could claim.
        """
        job = self._claim()
        return None if job is None else self._run(job)

    def _chaining(self) -> bool:
        """Whether this task claims another job after the one that just ended."""
        until = self._chain_until
        return until is not None and time.monotonic() < until and not self.shutting_down.is_set()

    def _claim(self, chained: bool = False) -> dict | None:
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

        times = self._times = PhaseTimes()
        if self._idle_since is not None:
            times.add("wait", time.perf_counter() - self._idle_since)
        with times("claim"):
            job = self._db(claim, "claiming the next job")
        if job is None:
            if not chained:
                log.info("woken up, but no job is queued")
            self._idle_since = time.perf_counter()
        return job

    def _run(self, job: dict) -> str | None:
        """Run the claimed ``job`` to its end here; then, for a study's trial, top the study up."""
        times = self._times
        log.info("job %s claimed by %s (attempt %d)", job["id"], self.worker, job["attempts"])
        control = JobControl(job["id"])
        self._progress = None
        try:
            if self.monitor is not None:
                self.monitor.watch(control)
            status = self._run_claimed(job, control, times)
        finally:
            if self.monitor is not None:
                self.monitor.unwatch()
        self._chain_next = self._chaining()
        if status is not None and job.get("study_id"):
            with times("topup"):
                # The trial this worker claims next (when it chains) needs no wake-up.
                self.top_up_study(job["study_id"], claiming=1 if self._chain_next else 0)
        log.info("job %s phases: %s", job["id"], times.line())
        self._idle_since = time.perf_counter()
        return status

    def top_up_study(self, study_id: str, claiming: int = 0) -> None:
        """A trial of ``study_id`` ended here: queue the study's next trials now and wake workers for them.

        Done by the worker that finished the trial so the next one is queued
        before this worker looks for work (no idle gap); a failure is only
        logged, since every worker's sweep tops studies up too (docs/studies.md).
        ``claiming``: how many of the new trials this worker claims itself at once
        (chaining): they get no wake-up, which would only find nothing later.
        """
        try:
            created = self._db(lambda: self.studies.top_up(study_id), f"study {study_id}: top-up")
            wake = len(created) - claiming
            if wake > 0 and self.monitor is not None and self.monitor.wakeups is not None:
                publish_wakeups(self.monitor.wakeups.app, wake)
        except Exception as exc:  # noqa: BLE001 - the sweep tops up and publishes what this missed
            log.warning(
                "study %s: top-up after a trial failed (%s: %s); the sweep will do it",
                study_id,
                type(exc).__name__,
                exc,
            )

    def _run_claimed(self, job: dict, control: JobControl, times: PhaseTimes) -> str | None:
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

        metrics = MetricBuffer(write_metrics, self.settings.metrics_flush_s, times)
        progress = ProgressWriter(
            lambda *p: fenced(lambda: store.update_progress(self.store, job_id, *p, worker=self.worker), "progress"),
            times,
        )
        self._progress = progress
        checkpoints = Checkpoints(
            lambda blob: fenced(
                lambda: store.save_artifact(self.store, job_id, CHECKPOINT, blob, worker=self.worker), "checkpoint"
            ),  # never overwrite the new owner's checkpoint
            metrics,
            self.settings.checkpoint_s,
            times,
        )
        pruner = self._pruner(job, control)
        pruned_at: list[int] = []

        def on_checkpoint(blob: bytes, epoch: int) -> None:
            # Never at the last epoch: a trial that ran to its end is complete, not pruned.
            if pruner and epoch < job["spec"]["train"]["epochs"]:
                metrics.flush()  # the pruner judges this epoch's value from the database, as the siblings'
                with times("prune"):
                    if self._prune_now(job_id, control):
                        pruned_at.append(epoch)
            # A pruned trial keeps its checkpoint as of the epoch it stopped at.
            checkpoints.offer(blob, now=bool(pruned_at))

        def dataset(name: str):
            with times("dataset"):
                return self._dataset(name, control)

        hooks = Hooks(
            on_metric=metrics.add,
            on_progress=progress.report,
            on_checkpoint=on_checkpoint,
            should_stop=control.stopped,
        )
        try:
            with times("setup"):
                fenced(
                    lambda: store.set_environment(self.store, job_id, self._environment(), self.worker), "environment"
                )
                checkpoint = self._db(
                    lambda: store.load_artifact(self.store, job_id, CHECKPOINT),
                    f"job {job_id}: checkpoint",
                    control.event,
                )
            if checkpoint is not None:
                log.info("job %s resumes from its checkpoint", job_id)
            started = time.perf_counter()
            try:
                outcome = run_job(job["spec"], hooks, checkpoint=checkpoint, resolve_dataset=dataset)
            finally:
                times.run(time.perf_counter() - started)
            metrics.flush()  # a cancelled job keeps its points too
            if outcome.status == "cancelled":
                # Stopped early (hand-back, cancel, pruned): the last epoch's checkpoint is kept, so a
                # resume loses at most the unfinished epoch.
                checkpoints.save_pending()
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

    def _environment(self) -> dict:
        """This process's environment (docs/trust.md), read once: nothing in it changes while the process lives."""
        if self._env is None:
            self._env = environment(self.worker)
        return self._env

    def _pruner(self, job: dict, control: JobControl) -> bool:
        """Whether ``job`` is the trial of a study with a pruner (read once per study: a study's spec never changes)."""
        study_id = job.get("study_id")
        if not study_id:
            return False
        if study_id not in self._pruners:
            spec = self._db(lambda: store.study_spec(self.store, study_id), f"study {study_id}", control.event)
            if len(self._pruners) >= 256:
                self._pruners.clear()
            self._pruners[study_id] = spec is not None and spec["pruner"]["type"] != "none"
        return self._pruners[study_id]

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
        progress = self._progress.last if self._progress is not None else None
        try:
            with self._times("finish"):
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
                        progress=progress,
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
        """An uploaded dataset, read from the database (every worker host reaches it), kept loaded in this
        process for the next job on it (``workers.dataset_cache``)."""
        cached = self.datasets.get(dataset_id)
        if cached is not None:
            if self._db(lambda: store.dataset_exists(self.store, dataset_id), f"dataset {dataset_id}", control.event):
                return cached
            raise DatasetError(f"dataset {dataset_id!r} does not exist")
        data = self._db(
            lambda: store.load_dataset_bytes(self.store, dataset_id), f"dataset {dataset_id}", control.event
        )
        if data is None:
            raise DatasetError(f"dataset {dataset_id!r} does not exist")
        return self.datasets.put(dataset_id, load_npz(data, self.dataset_limits, name=dataset_id))

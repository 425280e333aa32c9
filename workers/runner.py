"""Running one job on a worker: claim, resume, train or check, report, finish once.

Independent of the Celery app, so it can be read and tested on its own; the
task in ``workers.app`` only calls :meth:`JobRunner.run`.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import DBAPIError

import store
from engine.datasets import DatasetError, load_npz
from engine.jobs import Hooks, run_job
from engine.spec import SpecError

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.npz"
WEIGHTS = "weights.npz"


class MetricBuffer:
    """Metric points collected by the training loop and written in batches.

    A write is a few milliseconds; one per step would dominate a small job, so
    points are flushed at most every ``flush_s`` seconds and before every
    checkpoint.  Writes are idempotent per (job, series, step), so a resumed job
    that repeats steps after its last checkpoint writes no duplicates.
    """

    def __init__(self, st: store.Store, job_id: str, flush_s: float):
        self.store, self.job_id, self.flush_s = st, job_id, flush_s
        self.points: list[tuple[str, int, float]] = []
        self.last_flush = time.monotonic()

    def add(self, series: str, step: int, value: float) -> None:
        self.points.append((series, step, float(value)))
        if time.monotonic() - self.last_flush >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        if self.points:
            store.record_metrics(self.store, self.job_id, self.points)
            self.points = []
        self.last_flush = time.monotonic()


class JobRunner:
    """Runs jobs for one worker slot named ``worker`` (``host:pid``)."""

    def __init__(self, st: store.Store, settings, worker: str, monitor=None):
        self.store, self.settings, self.worker = st, settings, worker
        self.monitor = monitor

    def run(self, job_id: str) -> str | None:
        """Claim and run ``job_id``; the terminal status written, or None if it was not ours to run."""
        job = store.claim_job(self.store, job_id, self.worker)
        if job is None:
            log.info("job %s is not queued any more: message dropped", job_id)
            return None
        log.info("job %s claimed by %s (attempt %d)", job_id, self.worker, job["attempts"])
        stop = threading.Event()
        reason: list[str] = []
        try:
            if self.monitor is not None:
                self.monitor.watch(job_id, stop, reason)
            return self._run_claimed(job, stop, reason)
        finally:
            if self.monitor is not None:
                self.monitor.unwatch()

    def _run_claimed(self, job: dict, stop: threading.Event, reason: list[str]) -> str | None:
        job_id = job["id"]
        metrics = MetricBuffer(self.store, job_id, self.settings.metrics_flush_s)

        def lost() -> None:
            if not stop.is_set():
                reason.append("lost")
                stop.set()

        def on_checkpoint(blob: bytes, epoch: int) -> None:
            metrics.flush()                               # points before the checkpoint are never lost
            if not store.save_artifact(self.store, job_id, CHECKPOINT, blob, worker=self.worker):
                lost()                                    # never overwrite the new owner's checkpoint

        def on_progress(epoch: int, step: int, total: int) -> None:
            if not store.update_progress(self.store, job_id, epoch, step, total, worker=self.worker):
                lost()

        hooks = Hooks(on_metric=metrics.add, on_progress=on_progress, on_checkpoint=on_checkpoint,
                      should_stop=stop.is_set)
        try:
            checkpoint = store.load_artifact(self.store, job_id, CHECKPOINT)
            if checkpoint is not None:
                log.info("job %s resumes from its checkpoint", job_id)
            outcome = run_job(job["spec"], hooks, checkpoint=checkpoint, resolve_dataset=self._dataset)
            metrics.flush()
        except (DatasetError, SpecError, ValueError) as exc:
            return self._finish(job_id, "failed", error=f"{type(exc).__name__}: {exc}")
        except DBAPIError:
            # The database, not the job, failed: give the job back (this attempt counts) for a
            # healthier worker to resume from its checkpoint; the reaper does it if we cannot.
            log.exception("job %s: database error; handing it back", job_id)
            with contextlib.suppress(DBAPIError):
                store.requeue_job(self.store, job_id, worker=self.worker)
            return None
        except SoftTimeLimitExceeded:
            return self._finish(job_id, "failed",
                                error=f"time limit exceeded ({self.settings.task_time_limit_s} s per run)")
        except Exception as exc:  # any failure of a job is reported on the job
            log.exception("job %s failed", job_id)
            detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
            return self._finish(job_id, "failed", error=detail)

        if outcome.status == "cancelled":
            why = reason[0] if reason else "cancel"
            if why == "lost":
                log.warning("job %s was taken from this worker; stopping without a result", job_id)
                return None
            if why == "shutdown":
                status = store.release_job(self.store, job_id, self.worker)
                log.info("job %s handed back on shutdown: %s", job_id, status)
                return None
            return self._finish(job_id, "cancelled")
        artifacts = {WEIGHTS: outcome.weights} if outcome.weights is not None else None
        return self._finish(job_id, "succeeded", result=outcome.result, artifacts=artifacts)

    def _finish(self, job_id: str, status: str, result=None, error=None, artifacts=None) -> str | None:
        """Write the terminal status once (with the weights, in one transaction); None if the job was no longer ours."""
        if store.finish_job(self.store, job_id, status, result=result, error=error, worker=self.worker,
                            artifacts=artifacts):
            log.info("job %s %s", job_id, status)
            return status
        log.warning("job %s: not running on %s any more; %s not written", job_id, self.worker, status)
        return None

    def _dataset(self, dataset_id: str):
        """An uploaded dataset, read from the database (every worker host reaches it)."""
        data = store.load_dataset_bytes(self.store, dataset_id)
        if data is None:
            raise DatasetError(f"dataset {dataset_id!r} does not exist")
        return load_npz(data, self.settings.dataset_limits, name=dataset_id)

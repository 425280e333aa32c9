"""A worker process's background thread: heartbeats, cancellation, the reaper and the wake-up sweep.

Every ``heartbeat_s`` (with a little jitter, so that processes do not act in step) it
- records that this worker is alive and which job it runs (``GET /workers``);
- heartbeats the running job, and tells the training loop to stop when the job
  was cancelled or taken away from this worker (:class:`~workers.control.JobControl`);
- takes back jobs whose worker went silent (``reap_stale_jobs``; every worker
  runs this, the conditional update makes exactly one of them win), but only
  once its own database connection has been healthy for a whole stale period:
  after a database outage every live worker has had the time to heartbeat
  again, so an outage is never mistaken for lost workers (attempts count lost
  workers, not lost databases);
- and, in a second thread (a hanging broker never delays a heartbeat), tops up
  running studies with their next trials (docs/studies.md) and the broker's
  wake-ups to the number of claimable queued jobs (``Wakeups``), which is
  what makes a lost message, a Redis restart or a reaped job cost seconds.

The training loop runs in the task's thread; this one only touches the
database, the broker and the job's ``JobControl``, so the two never share engine state.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time

import store
from convlab.studies.topup import StudyKeeper

from .control import CANCEL, LOST, SHUTDOWN, JobControl
from .retry import summary, unreachable

log = logging.getLogger(__name__)


class Monitor:
    """The monitor thread of one worker process (one task slot) named ``worker``."""

    def __init__(self, st: store.Store, settings, worker: str, wakeups=None):
        """``wakeups``: a :class:`workers.celery_app.Wakeups` (None: no sweep, as in unit tests)."""
        self.store, self.settings, self.worker = st, settings, worker
        self.wakeups = wakeups
        self.shutting_down = threading.Event()  # set once this process is asked to exit
        self._lock = threading.Lock()
        self._job: JobControl | None = None
        self._stopping = threading.Event()
        # Set to make the thread tick now (a job started or ended) rather than at its next heartbeat.
        self._poke = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="convlab-monitor", daemon=True)
        # A thread of its own: a broker that hangs must never delay a heartbeat.
        self._sweeper = threading.Thread(target=self._sweep_loop, name="convlab-wakeups", daemon=True)
        self._healthy_since: float | None = None  # monotonic time of the first success after a failure
        self._db_down_logged = False
        self._broker_ok = True
        self.studies = StudyKeeper(st, settings)

    def start(self) -> None:
        """Send a first heartbeat (if the database answers) and start the threads."""
        self.tick(reap=False)
        self._thread.start()
        if self.wakeups is not None:
            self._sweeper.start()

    def stop(self) -> None:
        """Stop the thread and remove this worker's row (best effort: a dead worker's row expires anyway)."""
        self._stopping.set()
        self._poke.set()
        self._thread.join(timeout=5)
        if self._sweeper.is_alive():
            self._sweeper.join(timeout=5)
        try:
            store.remove_worker(self.store, self.worker)
        except Exception as exc:  # noqa: BLE001 - shutting down: the row expires anyway
            log.warning("could not remove worker row: %s", summary(exc))

    def watch(self, control: JobControl) -> None:
        """Heartbeat ``control.job_id`` from now on; stop it through ``control`` when it must stop.

        The worker's row is updated by the monitor thread right away (a poke), not
        in the caller's thread: the claim has just set the job's heartbeat, and a
        job's start or end must not wait for the worker row's write.
        """
        with self._lock:
            self._job = control
        if self.shutting_down.is_set():
            control.stop(SHUTDOWN)  # the signal came between the claim and now
        self._poke.set()

    def unwatch(self) -> None:
        """The job is over (or handed back): heartbeat this worker as idle (from the monitor thread)."""
        with self._lock:
            self._job = None
        self._poke.set()

    def stop_for_shutdown(self) -> bool:
        """This process is asked to exit: stop the running job (it is handed back). True if there was one."""
        self.shutting_down.set()
        with self._lock:
            job = self._job
        if job is None:
            return False
        job.stop(SHUTDOWN)
        return True

    @property
    def may_reap(self) -> bool:
        """True once this process's database connection has been healthy for a whole stale period."""
        since = self._healthy_since
        return since is not None and time.monotonic() - since >= self.settings.stale_after_s

    def _loop(self) -> None:
        due = time.monotonic() + self._interval()
        while True:
            poked = self._poke.wait(max(0.0, due - time.monotonic()))
            if self._stopping.is_set():
                return
            self._poke.clear()
            if time.monotonic() >= due:
                self.tick()
                due = time.monotonic() + self._interval()
            elif poked:
                self.tick(reap=False)  # a job started or ended: show it now; the reaper keeps its pace

    def _interval(self) -> float:
        return self.settings.heartbeat_s * random.uniform(0.8, 1.0)

    def _sweep_loop(self) -> None:
        while not self._stopping.wait(self.settings.heartbeat_s * random.uniform(0.8, 1.2)):
            if self._healthy_since is not None:
                self._sweep()

    def tick(self, reap: bool = True) -> None:
        """One round: heartbeat, then (database healthy for a stale period) reap.

        Never raises: a failure is logged once when it starts and once when it ends.
        """
        try:
            self._beat()
            if reap and self.may_reap:
                self._reap()
        except Exception as exc:  # noqa: BLE001 - a database hiccup must not kill the thread
            self._database_failed(exc)
            return
        if self._healthy_since is None:
            if self._db_down_logged:
                log.warning("monitor %s: database reachable again", self.worker)
                self._db_down_logged = False
            self._healthy_since = time.monotonic()

    def _database_failed(self, exc: Exception) -> None:
        self._healthy_since = None
        if not unreachable(exc):
            log.exception("monitor %s: round failed", self.worker)
        elif not self._db_down_logged:
            log.warning(
                "monitor %s: database unreachable (%s); no reaping until it has been back for %.0f s",
                self.worker,
                summary(exc),
                self.settings.stale_after_s,
            )
        self._db_down_logged = True

    def _beat(self) -> None:
        with self._lock:
            job = self._job
        store.worker_heartbeat(self.store, self.worker, socket.gethostname(), os.getpid(), job.job_id if job else None)
        if job is None:
            return
        state = store.heartbeat(self.store, job.job_id, self.worker)
        if state == "lost" and job.finishing:
            return
        if state == "lost" and job.stop(LOST):
            log.warning("job %s: taken from this worker; stopping it", job.job_id)
        elif state == "cancel" and job.stop(CANCEL):
            log.info("job %s: cancel requested", job.job_id)

    def _reap(self) -> None:
        for job_id, status in store.reap_stale_jobs(self.store, self.settings.stale_after_s):
            log.warning("job %s: its worker went silent; now %s", job_id, status)
        store.remove_stale_workers(self.store, max(self.settings.worker_alive_s * 20, 300))

    def _sweep(self) -> None:
        try:
            # Studies first, so the wake-ups below cover the trials this queues.  The safety net
            # behind the finishing worker's own top-up: a trial reaped as failed, a worker killed
            # between a trial's end and its top-up, a study whose first top-up hit an outage.
            self.studies.sweep()
        except Exception as exc:  # the next round tries again
            if unreachable(exc):
                self._database_failed(exc)
                return
            log.exception("monitor %s: study sweep failed", self.worker)
        try:
            # Jobs whose user is at their running limit need no wake-up until one of theirs ends.
            sent = self.wakeups.top_up(lambda: store.count_claimable(self.store, self.settings.max_running_jobs))
        except Exception as exc:  # noqa: BLE001 - broker (or database) down: the next round tries again
            if unreachable(exc):
                self._database_failed(exc)
            elif self._broker_ok:
                log.warning(
                    "monitor %s: cannot top up wake-ups (%s: %s); retrying every heartbeat",
                    self.worker,
                    type(exc).__name__,
                    exc,
                )
            self._broker_ok = False
            return
        if not self._broker_ok:
            log.warning("monitor %s: broker reachable again", self.worker)
            self._broker_ok = True
        if sent:
            log.info("published %d wake-up(s) for queued jobs without one", sent)

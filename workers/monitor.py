"""A worker process's background thread: heartbeats, cancellation, and the reaper.

Every ``heartbeat_s`` it
- records that this worker is alive and which job it runs (``GET /workers``);
- heartbeats the running job, and tells the training loop to stop when the job
  was cancelled or taken away from this worker;
- takes back jobs whose worker went silent (``reap_stale_jobs``; every worker
  runs this, the conditional update makes exactly one of them win) and puts
  them, and jobs whose submitter could not reach the broker, on the queue again.

The training loop runs in the task's thread; this one only touches the
database and a ``threading.Event``, so the two never share engine state.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

import store

log = logging.getLogger(__name__)


class Monitor:
    def __init__(self, st: store.Store, settings, worker: str, republish: Callable[[str], None]):
        self.store, self.settings, self.worker = st, settings, worker
        self.republish = republish
        self._lock = threading.Lock()
        self._job: tuple[str, threading.Event, list[str]] | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="convlab-monitor", daemon=True)

    def start(self) -> None:
        self._beat()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        try:
            store.remove_worker(self.store, self.worker)
        except Exception:  # shutting down: the row expires anyway
            log.exception("could not remove worker row")

    def watch(self, job_id: str, stop: threading.Event, reason: list[str]) -> None:
        """Heartbeat ``job_id`` from now on; set ``stop`` (and ``reason``) when it must stop."""
        with self._lock:
            self._job = (job_id, stop, reason)
        self._beat()

    def stop_for_shutdown(self) -> bool:
        """This process is asked to exit: stop the running job (it is handed back). True if there was one."""
        with self._lock:
            job = self._job
        if job is None:
            return False
        _, stop, reason = job
        if not stop.is_set():
            reason.append("shutdown")
            stop.set()
        return True

    def unwatch(self) -> None:
        with self._lock:
            self._job = None
        self._beat()

    def _loop(self) -> None:
        while not self._stopping.wait(self.settings.heartbeat_s):
            try:
                self._beat()
                self._reap()
            except Exception:  # a database hiccup must not kill the thread
                log.exception("monitor: heartbeat failed; retrying")

    def _beat(self) -> None:
        with self._lock:
            job = self._job
        store.worker_heartbeat(self.store, self.worker, socket.gethostname(), os.getpid(),
                               job[0] if job else None)
        if job is None:
            return
        job_id, stop, reason = job
        state = store.heartbeat(self.store, job_id, self.worker)
        if state != "ok" and not stop.is_set():
            log.info("job %s: %s", job_id, state)
            reason.append(state)
            stop.set()

    def _reap(self) -> None:
        for job_id, status in store.reap_stale_jobs(self.store, self.settings.stale_after_s):
            log.warning("job %s: its worker went silent; now %s", job_id, status)
        # Reaped jobs, and jobs whose submitter could not reach the broker, go (back) on the queue.
        for job_id in store.take_unpublished(self.store, self.settings.republish_after_s,
                                             self.settings.republish_lost_after_s):
            try:
                self.republish(job_id)
                log.info("job %s published again", job_id)
            except Exception:  # noqa: BLE001 - broker down: the next round tries again
                store.unmark_enqueued(self.store, job_id)
                log.warning("job %s: broker unreachable, will publish later", job_id)
        store.remove_stale_workers(self.store, max(self.settings.worker_alive_s * 20, 300))

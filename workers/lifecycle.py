"""A worker's life: what each pool process owns, and how a shutdown reaches the job it runs.

Celery's prefork worker is a main process that supervises pool processes.
``docker stop`` (and ``convlab up``) send SIGTERM to the main process only:
Celery starts a warm shutdown there, waits for the running tasks, then ends
the idle pool processes itself.  Our jobs run for minutes, so the running one
must be told to stop at its next batch and hand its job back.

That notice travels through a pipe, not a signal: the main process makes it
before the pool forks (:class:`ShutdownNotice`); every pool process closes its
copy of the write end and a thread waits for end-of-file on the read end.  The
main process closes its write end when a shutdown begins, and the kernel
closes it when the main process dies (SIGKILL, OOM killer) -- so a pool process
learns both without anyone having to find its pid, and a SIGTERM sent to an
idle pool process (the old way, which made it die "with signal 15", be
replaced, and hang the warm shutdown) is never needed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from celery.exceptions import Reject
from celery.worker import state as worker_state
from kombu.transport.virtual.base import Transport as PollingTransport

import store
from convlab.blas import apply_blas_threads
from convlab.config import Settings

from .monitor import Monitor
from .retry import Interrupted
from .runner import JobRunner

log = logging.getLogger(__name__)


class ShutdownNotice:
    """A pipe from the main process to its pool processes that says "stop": its write end closing."""

    def __init__(self) -> None:
        """Made in the main process, before it forks its pool."""
        self._read, self._write = os.pipe()  # fork copies both ends into every pool process

    def announce(self) -> None:
        """Main process: a shutdown begins (idempotent)."""
        if self._write is not None:
            os.close(self._write)
            self._write = None

    def watch(self, on_notice: Callable[[], None]) -> None:
        """Pool process: call ``on_notice()`` once, from a thread, when the main process stops or dies."""
        if self._write is not None:
            os.close(self._write)  # our copy would keep the pipe open forever
            self._write = None

        def wait() -> None:
            while os.read(self._read, 64):  # nothing is ever written: this returns at end-of-file
                pass
            on_notice()

        threading.Thread(target=wait, name="convlab-shutdown-notice", daemon=True).start()


POLL_SLICE_S = 0.2


def _flag(value) -> bool:
    """Whether one of Celery's shutdown flags is set (it holds an exit code: 0 counts)."""
    return value is not None and value is not False


def stop_polling_brokers_promptly() -> None:
    """Main process, before it consumes: a polling broker (the embedded one) notices a shutdown within
    :data:`POLL_SLICE_S` instead of after Celery's 2-second polls.

    Celery's loop for such brokers (``synloop``) looks at its shutdown flag only
    between polls of up to 2 s, and polls once more after it sees it -- up to
    4 s before an idle worker even begins to stop.  The same poll is cut into
    short slices that each first look at the flag; what a poll delivers is
    unchanged.
    """
    drain = PollingTransport.drain_events
    if getattr(drain, "stoppable", False):
        return

    def drain_events(self, connection, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if _flag(worker_state.should_stop) or _flag(worker_state.should_terminate):
                raise TimeoutError("shutting down")
            step = POLL_SLICE_S if deadline is None else min(POLL_SLICE_S, deadline - time.monotonic())
            if step <= 0:
                raise TimeoutError()
            try:
                return drain(self, connection, timeout=step)
            except TimeoutError:
                continue

    drain_events.stoppable = True
    PollingTransport.drain_events = drain_events


def _import_sampler() -> None:
    try:
        import optuna  # noqa: F401
    except Exception:
        log.debug("warming up optuna failed", exc_info=True)


class WorkerProcess:
    """What one pool process owns: its database handle, its monitor thread, and the job runner.

    Built in the pool process after the fork (nothing here may be shared with
    the main process), stopped when that process exits.
    """

    def __init__(self, settings: Settings, wakeups=None):
        """Set up this process: BLAS threads, a store of its own, the monitor thread (started).

        ``wakeups``: the :class:`workers.celery_app.Wakeups` its monitor tops up (None: no sweep).
        """
        self.settings = settings
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.blas_threads = apply_blas_threads(settings.blas_threads)
        self.store = store.Store.from_url(settings.database_url)
        self.monitor = Monitor(self.store, settings, self.name, wakeups=wakeups)
        self.runner = JobRunner(self.store, settings, self.name, self.monitor)
        self.monitor.start()
        self.stopping = False
        # Optuna takes about a second to import; a study's first top-up or pruning decision on this
        # process would otherwise pay it between two trials.  Imported aside, while the process idles.
        threading.Thread(target=_import_sampler, name="convlab-warm-up", daemon=True).start()

    def take_work(self) -> int:
        """Claim the next queued job and run it, and the next ones while they come
        (:meth:`JobRunner.run_wakeup`); the number of jobs claimed.

        Asked to stop while the database was unreachable, nothing was claimed: the
        wake-up goes back to the broker (``Reject``) rather than being acknowledged.
        """
        try:
            return self.runner.run_wakeup()
        except Interrupted:
            raise Reject("stopping before the database answered", requeue=True) from None

    def shutting_down(self) -> None:
        """The worker stops: the running job, if any, stops at its next batch and is handed back."""
        self.stopping = True
        if self.monitor.stop_for_shutdown():
            log.info("worker %s: shutting down; the running job will be handed back", self.name)

    def close(self) -> None:
        """The process exits: stop the monitor (its worker row goes) and close the connections."""
        self.monitor.stop()
        self.store.dispose()

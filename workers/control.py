"""How a running job is told to stop, and why: one small object shared by the runner and the monitor."""

from __future__ import annotations

import threading

CANCEL = "cancel"  # the user asked: finish as ``cancelled``
LOST = "lost"  # the job is not ours any more (reaped, taken over): write nothing more
SHUTDOWN = "shutdown"  # this process is stopping: hand the job back, its attempt not counted
PRUNE = "prune"  # a study's pruner stopped the trial: finish as ``pruned`` (docs/studies.md)


class JobControl:
    """The stop flag of one running job and the reason it was raised (the first reason wins).

    The training loop polls :attr:`event` between batches; a write that waits
    out a database outage waits on it too, so any reason interrupts the wait.
    """

    def __init__(self, job_id: str):
        """A control for ``job_id``, not stopped."""
        self.job_id = job_id
        self.event = threading.Event()
        self._reason: str | None = None
        self._lock = threading.Lock()
        # Set just before the terminal status is written: from then on a heartbeat that finds
        # the job not running any more is our own finish, not a lost job.
        self.finishing = False

    def stop(self, reason: str) -> bool:
        """Ask the job to stop for ``reason``; False if it was already asked (the first reason stands)."""
        with self._lock:
            if self._reason is not None:
                return False
            self._reason = reason
        self.event.set()
        return True

    @property
    def reason(self) -> str | None:
        """Why the job was asked to stop (None: it was not)."""
        return self._reason

    def stopped(self) -> bool:
        """True once the job was asked to stop (the engine's ``should_stop``)."""
        return self.event.is_set()

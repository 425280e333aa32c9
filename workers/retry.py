"""Riding out a database outage: retry with bounded backoff, and never give up held work on the way.

A worker that cannot reach the database keeps what it holds (its wake-up
message, its running job) and tries again until the database answers or it is
told to stop; it logs one line when the outage starts and one when it ends,
not a traceback per attempt.  Only errors that mean "unreachable" are retried;
anything else (a constraint violated, a bug) is raised at once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

log = logging.getLogger(__name__)

T = TypeVar("T")


class Interrupted(Exception):
    """A wait for the database was given up: the job or the process was asked to stop."""


def unreachable(exc: BaseException) -> bool:
    """True if ``exc`` says the database could not be reached (restart, network, locked), not that a query was wrong."""
    if isinstance(exc, (OperationalError, InterfaceError, DisconnectionError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def summary(exc: BaseException) -> str:
    """The first line of the driver's message: enough for a log line."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}"


def patiently(
    fn: Callable[[], T], what: str, stop: threading.Event, cap_s: float = 2.0, deadline_s: float | None = None
) -> T:
    """``fn()``, retried while the database is unreachable, with exponential backoff up to ``cap_s``.

    Raises :class:`Interrupted` if ``stop`` is set while waiting (or once
    ``deadline_s`` has passed); any other error of ``fn`` propagates at once.
    """
    delay = min(0.05, cap_s)
    started = time.monotonic()
    failed_at: float | None = None
    while True:
        try:
            value = fn()
        except Exception as exc:
            if not unreachable(exc):
                raise
            if failed_at is None:
                failed_at = time.monotonic()
                log.warning("%s: database unreachable (%s); retrying", what, summary(exc))
            if deadline_s is not None and time.monotonic() - started >= deadline_s:
                raise Interrupted(f"{what}: database still unreachable after {deadline_s:.0f} s") from exc
            # Jitter: workers that lost the database together do not all come back in the same instant.
            if stop.wait(delay * random.uniform(0.5, 1.0)):
                raise Interrupted(f"{what}: stopped while the database was unreachable") from exc
            delay = min(cap_s, delay * 2)
            continue
        if failed_at is not None:
            log.warning("%s: database reachable again after %.1f s", what, time.monotonic() - failed_at)
        return value

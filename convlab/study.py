"""A study (a sweep of trial jobs) as the Python client hands it out: ``client.create_study(spec)``.

The study spec and the objects it answers with are docs/reference/studies.md.
"""

from __future__ import annotations

import time
from typing import Any

from convlab.names import STUDY_STATUSES

from .errors import ConvlabError
from .job import Job
from .resource import Resource


class StudyEnded(ConvlabError):
    """:meth:`Study.wait` saw the study end ``failed`` or ``cancelled``; ``study`` is it."""

    def __init__(self, study: Study):
        """Carry the study; the message names its status."""
        self.study = study
        super().__init__(f"study {study.id} ended {study.status}")


class StudyTimeout(ConvlabError):
    """:meth:`Study.wait` ran out of time; the study goes on."""

    def __init__(self, study: Study, timeout: float):
        """Carry the study and the timeout."""
        self.study, self.timeout = study, timeout
        super().__init__(f"study {study.id} still {study.status} after {timeout:g} s")


class Study(Resource):
    """A study: its ``status``, ``best`` configuration, ``configurations`` and ``trials()``."""

    collection = "/studies"

    @property
    def status(self) -> str:
        """``running``, ``succeeded``, ``failed`` or ``cancelled``."""
        return self.data["status"]

    @property
    def done(self) -> bool:
        """Whether it has ended."""
        return self.status != STUDY_STATUSES[0]

    @property
    def best(self) -> dict[str, Any] | None:
        """The best configuration so far: ``params``, ``value`` (mean over its seeds), ``std``, ``job_id``."""
        return self.data.get("best")

    @property
    def configurations(self) -> list[dict[str, Any]]:
        """Every configuration with its seeds' job ids, statuses, mean and std."""
        return self.data.get("configurations") or []

    def trials(self) -> list[dict[str, Any]]:
        """Every trial in order: ``number``, ``job_id``, ``params``, ``seed``, ``status``, ``value`` ..."""
        return self.client.request("GET", f"{self.path}/trials")["trials"]

    def trial_jobs(self) -> list[Job]:
        """The trials as :class:`~convlab.job.Job` objects (one request each)."""
        return [self.client.job(t["job_id"]) for t in self.trials()]

    def wait(self, timeout: float | None = None, poll_s: float = 1.0) -> Study:
        """Wait until the study ends; returns ``self`` if it succeeded.

        Raises :class:`StudyEnded` if it failed or was cancelled, :class:`StudyTimeout`
        after ``timeout`` seconds (the study goes on).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.refresh().done:
            if deadline is not None and time.monotonic() >= deadline:
                raise StudyTimeout(self, timeout)
            time.sleep(poll_s if deadline is None else max(0.0, min(poll_s, deadline - time.monotonic())))
        if self.status != "succeeded":
            raise StudyEnded(self)
        return self

    def cancel(self) -> Study:
        """Cancel it and its queued and running trials; :class:`~convlab.errors.Conflict` if it had ended."""
        self.data = self.client.request("POST", f"{self.path}/cancel")["study"]
        return self

"""Topping a study up, the one way every caller does it (the API on create, the worker that finished a
trial, every worker's sweep): plan with the sampler, validate the trial specs, insert, and say which
trials were queued so the caller can publish their wake-ups (docs/studies.md)."""

from __future__ import annotations

import logging

import store
from convlab.config import Settings
from convlab.limits import job_limits
from engine.spec import validate_job_spec

from .trials import plan, spec_maker

log = logging.getLogger(__name__)


class StudyKeeper:
    """Tops up studies for one process (a worker); the limits are built once."""

    def __init__(self, st: store.Store, settings: Settings):
        """Top-ups against ``st`` with the deployment's limits and ``max_attempts``."""
        self.store, self.settings = st, settings
        # Uploaded datasets were checked when the study was accepted; their ids are taken as they are.
        limits = job_limits(settings)
        self.make = spec_maker(lambda spec: validate_job_spec(spec, limits))

    def top_up(self, study_id: str) -> list[str]:
        """Create the study's next trials (or finish it); the ids of the trials queued."""
        created = store.top_up(self.store, study_id, plan, self.make, self.settings.max_attempts)
        if created:
            log.info("study %s: %d trial(s) queued", study_id, len(created))
        return created

    def sweep(self) -> int:
        """Top up every running study that has room or nothing active (the safety net); trials queued."""
        return sum(len(self.top_up(study_id)) for study_id in store.studies_to_top_up(self.store))

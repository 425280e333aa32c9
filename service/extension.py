"""The service's shared objects, kept on the app as ``app.extensions["convlab"]`` (no globals)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app

from convlab.config import Settings
from engine.datasets import DatasetLimits
from engine.spec import Limits
from store import Quota, Store

from .memory_budget import MemoryBudget

EXTENSION_KEY = "convlab"
API_PREFIX = "/api/v1"

Publisher = Callable[[str], None]


class CeleryPublisher:
    """``publish(job_id)`` through Celery, with the Celery app built on first use.

    Building it lazily keeps ``create_app`` free of broker work (and of
    connections a forking server would copy into its children).
    """

    def __init__(self, settings: Settings):
        """Remember ``settings``; nothing is built yet."""
        self._settings = settings
        self._celery = None
        self._lock = threading.Lock()

    def _app(self):
        """The Celery app, built once (thread-safe)."""
        with self._lock:
            if self._celery is None:
                # Imported here: Celery is only needed once a job is actually published.
                from workers.celery_app import make_celery

                self._celery = make_celery(self._settings)
            return self._celery

    def __call__(self, job_id: str) -> None:
        """Put ``job_id`` on the queue (only the id travels; the database holds the job)."""
        from workers.celery_app import publish_job

        publish_job(self._app(), job_id)


@dataclass
class Convlab:
    """What every request handler needs: the settings, the data layer, and the job publisher."""

    settings: Settings
    store: Store
    publish: Publisher
    limits: Limits  # job specs (built once from the settings' overrides)
    dataset_limits: DatasetLimits  # uploaded datasets
    upload_memory: MemoryBudget  # bytes that uploads being checked may hold at once in this process
    quota: Quota = Quota()  # the deployment's default per-user limits (an admin overrides them per user)


def convlab() -> Convlab:
    """The :class:`Convlab` extension of the current app."""
    return current_app.extensions[EXTENSION_KEY]

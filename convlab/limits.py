"""A deployment's limits: the engine's defaults with the overrides its settings carry.

The limits belong to the engine (the spec contract and the dataset loader own
them); the settings only carry raw overrides, so configuration stays at the
bottom of the import graph.  The API and the workers build them here, once
per process, so both enforce the same numbers.
"""
from __future__ import annotations

import dataclasses

from engine.datasets import DatasetLimits
from engine.spec import Limits
from store.quotas import Quota

from .config import LIMIT_PREFIX, Settings


def job_limits(settings: Settings) -> Limits:
    """The job-spec limits: ``Limits`` with every ``CONVLAB_LIMIT_<NAME>`` applied.

    A name that is not a limit, or a value that is not a positive integer, is a
    ``ValueError`` naming the variable: a typo must not leave a bound silently at
    its default.
    """
    known = {f.name for f in dataclasses.fields(Limits)}
    values = {}
    for name, text in settings.limit_overrides.items():
        var = f"{LIMIT_PREFIX}{name.upper()}"
        if name not in known:
            raise ValueError(f"{var} is not a limit; known: {', '.join(sorted(n.upper() for n in known))}")
        try:
            values[name] = int(text)
        except ValueError:
            raise ValueError(f"{var}={text!r} is not an integer") from None
    return Limits.from_mapping(values)


def dataset_limits(settings: Settings) -> DatasetLimits:
    """The uploaded-dataset limits: ``DatasetLimits`` with ``CONVLAB_MAX_DATASET_BYTES`` applied."""
    limits = DatasetLimits()
    if settings.max_dataset_bytes is not None:
        limits = dataclasses.replace(limits, max_bytes=settings.max_dataset_bytes)
    return limits


def user_quota(settings: Settings) -> Quota:
    """The deployment's default per-user limits (``CONVLAB_MAX_RUNNING_JOBS`` ...), as the store takes them."""
    return Quota(max_running=settings.max_running_jobs, max_queued=settings.max_queued_jobs,
                 max_compute=settings.max_compute_flops, max_storage=settings.max_storage_bytes)

"""A deployment's limits: the engine's defaults with the overrides its settings carry.

The limits belong to the engine (the spec contract and the dataset loader own
them); the settings only carry raw overrides, so configuration stays at the
bottom of the import graph.  The API and the workers build them here, once
per process, so both enforce the same numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

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
    return limits_from_overrides(settings.limit_overrides)


def limits_from_overrides(overrides: Mapping[str, str]) -> Limits:
    """``Limits`` with raw overrides (lower-case name → text) applied, checked as :func:`job_limits` says."""
    known = {f.name for f in dataclasses.fields(Limits)}
    values = {}
    for name, text in overrides.items():
        var = f"{LIMIT_PREFIX}{name.upper()}"
        if name not in known:
            raise ValueError(f"{var} is not a limit; known: {', '.join(sorted(n.upper() for n in known))}")
        try:
            values[name] = int(text)
        except ValueError:
            raise ValueError(f"{var}={text!r} is not an integer") from None
    return Limits.from_mapping(values)


# An upload decompresses to at most this many times the request limit, unless CONVLAB_MAX_DATASET_BYTES
# says otherwise: the same order as what a client may send, not the engine's general 200 MiB.
DATASET_BYTES_PER_REQUEST_BYTE = 4


def dataset_limits(settings: Settings) -> DatasetLimits:
    """The uploaded-dataset limits: ``DatasetLimits`` whose ``max_bytes`` (the file, and its arrays
    decompressed, from the zip directory) is ``CONVLAB_MAX_DATASET_BYTES``, by default
    :data:`DATASET_BYTES_PER_REQUEST_BYTE` × ``CONVLAB_MAX_REQUEST_BYTES``."""
    max_bytes = settings.max_dataset_bytes
    if max_bytes is None:
        max_bytes = DATASET_BYTES_PER_REQUEST_BYTE * settings.max_request_bytes
    return dataclasses.replace(DatasetLimits(), max_bytes=max_bytes)


def user_quota(settings: Settings) -> Quota:
    """The deployment's default per-user limits (``CONVLAB_MAX_RUNNING_JOBS`` ...), as the store takes them."""
    return Quota(
        max_running=settings.max_running_jobs,
        max_queued=settings.max_queued_jobs,
        max_compute=settings.max_compute_flops,
        max_storage=settings.max_storage_bytes,
    )

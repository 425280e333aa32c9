"""The names every layer shares: job statuses and artifact names.

It sits at the bottom of the import graph (it imports nothing), so the store,
the workers, the service, the dashboard's templates and JavaScript, and the
HTTP client all read the same words from here.
"""

from __future__ import annotations

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "pruned")
# Written once; a job never leaves them.  ``pruned``: a study's trial stopped early by its pruner.
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled", "pruned")

STUDY_STATUSES = ("running", "succeeded", "failed", "cancelled")

WEIGHTS = "weights.npz"  # a trained network's parameters (docs/reference/weights.md)
CHECKPOINT = "checkpoint.npz"  # parameters + optimizer and generator state + position, for resuming

"""The built-in datasets' names, per-sample shapes and class counts: their one home.

The job-spec validator checks a model against these without loading any data,
and :mod:`engine.datasets` loads (``digits``, ``mnist-5k``: the ``.npz`` files in
``engine/bundled/``) or generates (``synthetic``) arrays of exactly these shapes.
Standard library only, so the spec side can import it without NumPy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BUILTIN_DATASETS"]

#: Built-in datasets, in the order they are listed to users: per-sample shape
#: ``(C, H, W)``, number of classes and of samples (what a job's compute estimate counts).
#: See docs/datasets.md for their sources.
BUILTIN_DATASETS: dict[str, dict[str, Any]] = {
    "digits": {"shape": (1, 8, 8), "classes": 10, "samples": 1797},
    "mnist-5k": {"shape": (1, 28, 28), "classes": 10, "samples": 5000},
    "synthetic": {"shape": (1, 12, 12), "classes": 4, "samples": 1200},
}

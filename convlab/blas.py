"""The BLAS thread budget of a process that runs the engine: one rule for ``convlab run`` and the workers.

The README ties bit-identical results to ``CONVLAB_BLAS_THREADS`` (a BLAS
reduction may split differently over another number of threads), so a job
run locally and the same job run by a worker must apply it the same way.
"""

from __future__ import annotations

import os

from threadpoolctl import threadpool_limits


def blas_threads(configured: int | None) -> int:
    """The number of BLAS threads to use: ``configured`` (``CONVLAB_BLAS_THREADS``), else every core."""
    return configured or os.cpu_count() or 1


def apply_blas_threads(configured: int | None) -> int:
    """Limit every BLAS library loaded in this process to :func:`blas_threads` threads; returns that number.

    Call it after NumPy is imported (threadpoolctl limits the libraries it finds loaded).
    """
    threads = blas_threads(configured)
    threadpool_limits(limits=threads)
    return threads

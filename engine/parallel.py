"""Element-wise passes split over blocks of channels, on the process's BLAS thread budget.

The GEMMs of a step use every BLAS thread; the passes around them (im2col's
copy, the input delta's tap-wise additions, max-pool, ReLU) are plain NumPy
loops on one core.  NumPy releases the GIL inside those loops, so the same
pass over disjoint blocks of channels runs in parallel from a small thread
pool.  Every entry is computed by the same operations whichever thread runs
it, so results do not depend on the split (determinism is unaffected).

The budget is the BLAS thread count of the moment (``threadpoolctl`` reads it
from the library, so a worker's ``threadpool_limits`` applies here too): a
worker limited to one BLAS thread runs everything on one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

#: Below this many numbers a pass stays on the calling thread: handing it out costs more than it saves.
MIN_SPLIT = 1 << 19
#: Numbers a pass of several operations over the same entries touches per piece (``pieces=True``):
#: 256 kB in float32, so that its later operations find their operands in the core's L2 (1 MB here).
PIECE = 1 << 16

_lock = threading.Lock()
_state: dict = {"controller": None, "executor": None, "workers": 0}


def _reset_after_fork() -> None:
    # A forked child (Celery's prefork pool) inherits the executor object but not its threads.
    _state.update(executor=None, workers=0)


os.register_at_fork(after_in_child=_reset_after_fork)


def budget() -> int:
    """Threads the BLAS library may use now (1 if it cannot be read)."""
    controller = _state["controller"]
    if controller is None:
        from threadpoolctl import ThreadpoolController

        controller = _state["controller"] = ThreadpoolController().select(user_api="blas")
    return max([lib.num_threads for lib in controller.lib_controllers] or [1])


def over_blocks(fn: Callable[[int, int], object], count: int, size: int, pieces: bool = False) -> None:
    """Run ``fn(lo, hi)`` over ``[0, count)`` split into one contiguous block per thread.

    ``size`` is the number of array entries the whole pass touches; small passes, and
    every pass when the budget is one thread, run on the calling thread.  With ``pieces``
    a large pass (``size`` ≥ :data:`MIN_SPLIT`) runs each block as consecutive calls over
    pieces of about :data:`PIECE` entries (at least one unit of ``count``): for passes that
    make several operations over the same entries, not for one operation per call.
    """
    if pieces and size >= MIN_SPLIT:
        step = max(1, count * PIECE // size)
        whole = fn

        def fn(lo: int, hi: int) -> None:
            for start in range(lo, hi, step):
                whole(start, min(start + step, hi))

    threads = min(budget(), count) if size >= MIN_SPLIT else 1
    if threads <= 1:
        fn(0, count)
        return
    with _lock:
        if _state["workers"] != threads - 1:
            if _state["executor"] is not None:
                _state["executor"].shutdown(wait=True)
            _state.update(executor=ThreadPoolExecutor(threads - 1, thread_name_prefix="engine"), workers=threads - 1)
        executor = _state["executor"]
    bounds = [count * i // threads for i in range(threads + 1)]
    # The calling thread takes the first block itself.
    futures = [executor.submit(fn, lo, hi) for lo, hi in zip(bounds[1:-1], bounds[2:], strict=True)]
    try:
        fn(bounds[0], bounds[1])
    finally:
        for future in futures:
            future.result()

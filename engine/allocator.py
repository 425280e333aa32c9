"""glibc malloc settings under which a training step reuses the memory the previous step freed.

A step allocates and frees the same arrays every time (im2col matrices, z, masks,
deltas).  glibc maps blocks above a threshold fresh from the kernel and unmaps
them when freed, and hands back free memory at the top of the heap beyond a
trim threshold.  Both thresholds start low (128 kB) and rise only as far as
the largest block freed so far, so at small batches every array of a step is
faulted in again, page by page, and zeroed by the kernel each step: at batch
10 that was a third of a step's time (docs/engine-speed.md).
:func:`keep_freed_memory` fixes the mmap threshold at 32 MiB (glibc's upper
limit for it) and keeps up to 128 MiB of freed heap, so every array of a
LeNet step below 32 MiB is reused from the heap the next step: no page faults
at batch 10, 64 or 256 in float32 (1 550 per step at batch 256 before), 160
at batch 256 in float64, whose 66 MB im2col matrix stays mapped per step.
With the input delta computed in blocks below 32 MiB (its float64 tap maps
were the largest temporary) the peak of a batch-256 step does not grow (146 /
234 MB against 145 / 241 MB in float32 / float64).  Measured alternatives: a lower
mmap threshold (4–16 MiB) faulted more at batch 256; before the blocking, a
trim threshold above 32 MiB let the heap fragment and the float64 peak grow
by 7–16 %.

Process-wide, applied once when the numeric engine is imported; nothing is
changed when the process was started with glibc's own ``MALLOC_*`` settings
or tunables (they win), or on a C library without ``mallopt``.  The numbers
computed do not depend on where an array is placed.
"""

from __future__ import annotations

import ctypes
import os

#: Blocks below this many bytes come from the heap (glibc's ``M_MMAP_THRESHOLD``).
MMAP_THRESHOLD = 32 << 20
#: Freed heap memory kept for reuse instead of returned to the kernel (glibc's ``M_TRIM_THRESHOLD``).
TRIM_THRESHOLD = 128 << 20

_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

_state = {"applied": None}


def keep_freed_memory() -> bool:
    """Apply the two settings once per process; True if they are in force."""
    if _state["applied"] is None:
        _state["applied"] = _apply()
    return _state["applied"]


def _apply() -> bool:
    if any(name in os.environ for name in _ENVIRONMENT):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):  # not glibc (musl, macOS, Windows)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))

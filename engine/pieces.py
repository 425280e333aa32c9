"""A pass of several operations over the same entries, run in cache-sized pieces.

Max-pool's forward pass makes three maxima and three compares over the same
taps; over a whole batch-256 conv output (5.9 MB per ten channels in float32)
each operation fetches its operands from memory again, over one channel
(590 kB) from L2.  ``over_pieces`` runs such a pass as consecutive calls over
pieces of about :data:`PIECE` entries.  Each entry is computed by the same
operations whatever the pieces, so results do not depend on them.

Passes of one operation per entry (ReLU, the bias, im2col's copy) gain nothing
from pieces: they are bound by memory either way and run as one call.  Nor do
the passes use the second core: on this 2-core machine a pass split over a
thread pool was 3–7 % slower per step (docs/engine-speed.md, round 3), since
OpenBLAS's idle threads busy-wait on the other core after every GEMM.
"""

from __future__ import annotations

from collections.abc import Callable

#: Below this many numbers a pass is one call: its operands fit in the caches anyway.
MIN_PIECES = 1 << 19
#: Numbers a piece touches: 256 kB in float32, so that a pass's later operations find their operands
#: in the core's L2 (1 MB or more).
PIECE = 1 << 16


def over_pieces(fn: Callable[[int, int], object], count: int, size: int) -> None:
    """Run ``fn(lo, hi)`` over ``[0, count)`` in consecutive pieces of about :data:`PIECE` entries.

    ``size`` is the number of array entries the whole pass touches; a pass under
    :data:`MIN_PIECES` entries is the single call ``fn(0, count)``.  A piece is at least
    one unit of ``count`` (a channel, for the callers here).
    """
    if size < MIN_PIECES:
        fn(0, count)
        return
    step = max(1, count * PIECE // size)
    for lo in range(0, count, step):
        fn(lo, min(lo + step, count))

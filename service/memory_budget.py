"""A budget of bytes shared by the requests of one API process (uploads being checked).

Each upload reserves its worst case before it reads its body and gives it back
when it is answered; one that does not fit is refused at once (``503`` with
``Retry-After``) rather than queued, so a burst of uploads can never hold more
than the budget, and a slow client cannot make others wait behind it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class MemoryBudget:
    """``capacity`` bytes, reserved and released by concurrent requests (thread-safe)."""

    def __init__(self, capacity: int):
        """A budget of ``capacity`` bytes, all free."""
        self.capacity = capacity
        self.in_use = 0
        self._lock = threading.Lock()

    def try_reserve(self, nbytes: int) -> bool:
        """Reserve ``nbytes`` if they fit now; False (nothing reserved) if they do not."""
        with self._lock:
            if self.in_use + nbytes > self.capacity:
                return False
            self.in_use += nbytes
            return True

    def release(self, nbytes: int) -> None:
        """Give back ``nbytes`` reserved earlier."""
        with self._lock:
            self.in_use -= nbytes

    @contextmanager
    def reserved(self, nbytes: int, refuse) -> Iterator[None]:
        """Hold ``nbytes`` for the block; if they do not fit, raise what ``refuse()`` returns."""
        if not self.try_reserve(nbytes):
            raise refuse()
        try:
            yield
        finally:
            self.release(nbytes)

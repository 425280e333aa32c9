"""Uploaded datasets kept loaded in a worker process, so that a study's trials on one upload read and
parse it once per process instead of once per trial.

An upload never changes after it is stored (a new upload is a new id), so an
entry needs no invalidation; a dataset is deleted only when no queued or
running job trains on it (``store.delete_dataset``), and the runner asks the
database whether the id still exists before each use.  The cache holds at
most ``max_bytes`` of arrays (least recently used out first); a dataset
larger than that is loaded for each job as before.  The arrays are made
read-only: the engine splits them into new arrays and never writes to them.
Built-in datasets are cached by the engine itself (``engine.datasets``).
"""

from __future__ import annotations

from collections import OrderedDict

from engine.datasets import Dataset

#: Arrays kept per worker process: a few uploads of the default size limit (64 MiB as uint8, more as float64).
MAX_BYTES = 256 * 2**20


class DatasetCache:
    """Loaded uploads of one worker process, by dataset id, within ``max_bytes``."""

    def __init__(self, max_bytes: int = MAX_BYTES):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, Dataset] = OrderedDict()
        self._bytes = 0

    @staticmethod
    def size(ds: Dataset) -> int:
        return int(ds.X.nbytes + ds.y.nbytes)

    def get(self, dataset_id: str) -> Dataset | None:
        ds = self._entries.get(dataset_id)
        if ds is not None:
            self._entries.move_to_end(dataset_id)
        return ds

    def put(self, dataset_id: str, ds: Dataset) -> Dataset:
        """Keep ``ds`` (if it fits), evicting the least recently used; returns it (read-only if kept)."""
        size = self.size(ds)
        if size > self.max_bytes:
            return ds
        ds.X.flags.writeable = False
        ds.y.flags.writeable = False
        self._entries[dataset_id] = ds
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self._bytes -= self.size(old)
        return ds

    def __len__(self) -> int:
        return len(self._entries)

"""Predictions from a trained job: its network with the trained weights, loaded once per API process.

The API (``predict_api``) and the dashboard's try-it panel call :func:`predict`;
the dashboard's gallery calls :func:`mistakes`.  Networks are kept in a
bounded LRU cache (:class:`ModelCache`) keyed by job id: a job's weights are
written once, with its terminal status (``store.finish_job``), so a cached
network never goes stale.  Everything is computed in the job's own dtype
(docs/predictions.md says why).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flask import current_app

import store
from convlab.names import WEIGHTS
from engine import Network
from engine.datasets import BUILTIN, DatasetError, load_npz, split_dataset
from engine.jobs import load_data, weights_from_bytes

from .errors import ApiError
from .extension import convlab

CACHE_KEY = "convlab.models"
CHUNK = 64  # samples per forward pass: bounds the activations a cached network keeps


@dataclass
class LoadedModel:
    """A job's network with its trained weights; ``lock`` serialises its forward passes.

    Layers keep the last forward pass's values in attributes, so two threads
    must not run one network at once.
    """

    job_id: str
    net: Network
    nbytes: int
    batch_size: int  # the job's training batch: its spec was admitted for that many samples at once
    lock: threading.Lock = field(default_factory=threading.Lock)
    mistakes: dict | None = None  # the gallery, computed once


class ModelCache:
    """At most ``max_models`` networks and ``max_bytes`` of parameters, least recently used out first.

    Safe under threads: one lock guards the table, and a job being loaded is
    loaded once, by the first thread that asks (others wait for it).
    """

    def __init__(self, max_models: int, max_bytes: int):
        """An empty cache with these bounds (a model over ``max_bytes`` on its own is used, not kept)."""
        self.max_models, self.max_bytes = max_models, max_bytes
        self._entries: OrderedDict[str, LoadedModel] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.loads = 0  # networks built (tests read it: loaded once)

    def get(self, job_id: str, load: Callable[[], LoadedModel]) -> LoadedModel:
        """The cached model of ``job_id``, or ``load()``'s (kept if it fits)."""
        with self._lock:
            entry = self._entries.get(job_id)
            if entry is not None:
                self._entries.move_to_end(job_id)
                return entry
            gate = self._loading.setdefault(job_id, threading.Lock())
        with gate:
            with self._lock:
                entry = self._entries.get(job_id)
                if entry is not None:  # loaded by the thread we waited for
                    self._entries.move_to_end(job_id)
                    return entry
            try:
                entry = load()
            finally:
                with self._lock:
                    self._loading.pop(job_id, None)
            with self._lock:
                self.loads += 1
                self._keep(entry)
            return entry

    def _keep(self, entry: LoadedModel) -> None:
        """Insert ``entry`` and evict the oldest until both bounds hold (call with the lock held)."""
        if entry.nbytes > self.max_bytes or self.max_models < 1:
            return
        self._entries[entry.job_id] = entry
        while len(self._entries) > self.max_models or self.nbytes > self.max_bytes:
            self._entries.popitem(last=False)

    @property
    def nbytes(self) -> int:
        """Parameter bytes of the cached networks."""
        return sum(e.nbytes for e in self._entries.values())

    def __len__(self) -> int:
        """How many networks are cached."""
        return len(self._entries)


def model_cache() -> ModelCache:
    """This process's cache (made on first use, so a forking server makes one per worker process)."""
    ext = current_app.extensions
    cache = ext.get(CACHE_KEY)
    if cache is None:
        settings = convlab().settings
        cache = ext.setdefault(CACHE_KEY, ModelCache(settings.predict_cache_models, settings.predict_cache_bytes))
    return cache


def trained_model(job: dict[str, Any]) -> LoadedModel:
    """The job's network with its trained weights: 409 for a gradient check or a job without weights."""
    if job["type"] != "train":
        raise ApiError(409, "a gradient check trains nothing: there are no weights to predict with")

    def load() -> LoadedModel:
        blob = store.load_artifact(convlab().store, job["id"], WEIGHTS)
        if blob is None:
            state = {"queued": "is queued", "running": "is still running", "failed": "failed"}.get(
                job["status"], f"is {job['status']}"
            )
            raise ApiError(409, f"the job {state} and has no trained weights yet")
        net = Network.from_spec(job["spec"]["model"], seed=0, dtype=job["spec"]["train"]["dtype"])
        net.load_params(weights_from_bytes(blob))
        nbytes = sum(p.nbytes for p in net.params.values())
        return LoadedModel(job["id"], net, nbytes, job["spec"]["train"]["batch_size"])

    return model_cache().get(job["id"], load)


def forward(model: LoadedModel, x: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """The last layer's activations for ``x`` (N, C, H, W), in the job's dtype, at most ``chunk`` samples at
    a time, and never more than the job's training batch (what its memory estimate admitted)."""
    # A diverged network overflows: its NaNs are answered as null, not logged as warnings per request.
    with model.lock, np.errstate(all="ignore"):
        return model.net.predict(x, batch_size=min(chunk, model.batch_size))


def predict(job: dict[str, Any], x: np.ndarray) -> dict[str, list]:
    """``{"predictions": [argmax], "probabilities": [[last-layer activations]]}`` for ``x`` (N, C, H, W)."""
    out = forward(trained_model(job), x)
    probabilities = out.astype(np.float64).tolist()
    if not np.isfinite(out).all():  # a diverged network: JSON has no NaN, so null (as metric series do)
        probabilities = [[v if np.isfinite(v) else None for v in row] for row in probabilities]
    return {"predictions": out.argmax(axis=1).tolist(), "probabilities": probabilities}


def test_split(job: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The job's test split, exactly as training made it (same dataset, fractions and seed)."""
    spec = job["spec"]
    seed = spec["train"]["seed"]

    def uploaded(dataset_id: str):
        data = store.load_dataset_bytes(convlab().store, dataset_id)
        if data is None:
            raise ApiError(409, f"the job's dataset {dataset_id!r} no longer exists")
        return load_npz(data, convlab().dataset_limits, name=dataset_id)

    try:
        ds = load_data(spec["data"], seed, None if spec["data"]["dataset"] in BUILTIN else uploaded)
    except DatasetError as exc:
        raise ApiError(409, f"the job's dataset cannot be read: {exc}") from None
    return split_dataset(ds, spec["data"]["test_fraction"], spec["data"]["validation_fraction"], seed)["test"]


def mistakes(job: dict[str, Any], limit: int) -> dict[str, Any]:
    """The test images the job's network gets wrong, most confident first (at most ``limit`` shown).

    ``{"tested", "wrong", "shape": [C, H, W], "images": [{"index", "label", "predicted",
    "confidence", "pixels": C×H×W in [0, 1], 3 decimals}]}``; ``index`` is the position in the test split.
    """
    model = trained_model(job)
    if model.mistakes is None:
        x, y = test_split(job)
        # In the job's dtype and training batches, as the job's own evaluation ran (Network.evaluate):
        # the same sums in the same order, so the gallery agrees with the confusion matrix.
        out = forward(model, x.astype(model.net.dtype, copy=False), model.batch_size) if len(x) else np.zeros((0, 1))
        predicted = out.argmax(axis=1)
        wrong = np.flatnonzero(predicted != y)
        confidence = out[wrong, predicted[wrong]]
        order = wrong[np.argsort(-confidence, kind="stable")]
        model.mistakes = {
            "tested": len(y),
            "wrong": len(wrong),
            "shape": list(x.shape[1:]),
            "images": [
                {
                    "index": int(i),
                    "label": int(y[i]),
                    "predicted": int(predicted[i]),
                    "confidence": float(out[i, predicted[i]]),
                    "pixels": np.round(x[i], 3).tolist(),
                }
                for i in order[:limit]
            ],
        }
    return model.mistakes

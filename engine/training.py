"""The training loop: shuffled mini-batches, validation per epoch, metrics, checkpoints.

Metric points go to ``on_metric(series, step, value)``; if it returns a
truthy value the run stops after that batch (that is how a job is
cancelled).  ``step`` is the global optimizer step, for every series, so
curves of one run share an axis: ``train_loss`` at every step, ``val_loss``
and ``val_accuracy`` at the step that ended each epoch.

A checkpoint holds everything that decides what happens next (parameters,
optimizer state, both random generators, position, the epoch's shuffle), so a
run resumed from one continues exactly as the uninterrupted run would.
"""
from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .network import Network
from .optimizers import Optimizer

MetricCallback = Callable[[str, int, float], object]


@dataclass
class TrainState:
    """Where a run is: ``epoch`` counts completed epochs, ``batch`` the batches done in the current one."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    order: np.ndarray | None = None     # this epoch's shuffle, while an epoch is under way
    seconds: float = 0.0                # training time so far, across resumes
    history: dict = field(default_factory=dict)   # last values of each series


class Trainer:
    """Trains ``net`` with ``optimizer`` on mini-batches shuffled by its own generator."""

    def __init__(self, net: Network, optimizer: Optimizer, *, epochs: int, batch_size: int, seed: int):
        self.net, self.optimizer = net, optimizer
        self.epochs, self.batch_size = epochs, batch_size
        # Separate from the network's generator so that the shuffle does not depend on
        # how many dropout masks were drawn, and vice versa.
        self.rng = np.random.default_rng([seed, 1])
        self.state = TrainState()

    def run(self, x_train, y_train, x_val=None, y_val=None, *, on_metric: MetricCallback | None = None,
            on_epoch_end: Callable[[Trainer], object] | None = None,
            on_batch_end: Callable[[Trainer], object] | None = None) -> bool:
        """Train until ``epochs`` are complete; True when finished, False when asked to stop.

        ``on_epoch_end`` runs after each epoch's validation (a worker saves its
        checkpoint there); ``on_batch_end`` after each optimizer step.
        """
        emit = on_metric or (lambda *a: None)
        n = len(x_train)
        batches = self.batches_per_epoch(n)
        st = self.state
        while st.epoch < self.epochs:
            if st.order is None:
                st.order = self.rng.permutation(n)
            started = time.perf_counter()
            stop = False
            while st.batch < batches and not stop:
                idx = st.order[st.batch * self.batch_size:(st.batch + 1) * self.batch_size]
                loss, grads = self.net.loss_and_gradients(x_train[idx], y_train[idx], training=True)
                self.optimizer.step(grads)
                st.batch += 1
                st.step += 1
                st.history["train_loss"] = loss
                stop = bool(emit("train_loss", st.step, loss))
                if on_batch_end is not None:
                    stop = bool(on_batch_end(self)) or stop
            st.seconds += time.perf_counter() - started
            if stop:
                return False
            st.epoch += 1
            st.batch = 0
            st.order = None
            if x_val is not None and len(x_val):
                val_loss, val_acc, _ = self.net.evaluate(x_val, y_val)
                st.history.update(val_loss=val_loss, val_accuracy=val_acc)
                stop = bool(emit("val_loss", st.step, val_loss)) | bool(emit("val_accuracy", st.step, val_acc))
            if on_epoch_end is not None:
                stop = bool(on_epoch_end(self)) or stop
            if stop and st.epoch < self.epochs:
                return False
        return True

    def batches_per_epoch(self, n: int) -> int:
        """Mini-batches in one epoch of ``n`` samples (the last one may be short)."""
        return -(-n // self.batch_size)

    # --- checkpoints -------------------------------------------------------------------------

    def checkpoint(self) -> bytes:
        """The complete state as ``.npz`` bytes (plain arrays and JSON text: no pickle)."""
        st = self.state
        meta = {
            "epoch": st.epoch, "batch": st.batch, "step": st.step, "seconds": st.seconds,
            "history": st.history,
            "net_rng": self.net.rng.bit_generator.state,
            "train_rng": self.rng.bit_generator.state,
        }
        arrays = {f"param/{k}": v for k, v in self.net.params.items()}
        arrays.update({f"opt/{k}": v for k, v in self.optimizer.state().items()})
        if st.order is not None:
            arrays["order"] = st.order
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    def restore(self, blob: bytes) -> None:
        """Load a checkpoint made by :meth:`checkpoint` of the same spec."""
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
        self.net.load_params({k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")})
        self.optimizer.load_state({k[len("opt/"):]: v for k, v in arrays.items() if k.startswith("opt/")})
        self.net.rng.bit_generator.state = meta["net_rng"]
        self.rng.bit_generator.state = meta["train_rng"]
        self.state = TrainState(epoch=meta["epoch"], batch=meta["batch"], step=meta["step"],
                                order=arrays.get("order"), seconds=meta["seconds"], history=meta["history"])

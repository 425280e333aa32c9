"""The training loop: shuffled mini-batches, validation per epoch, metrics, checkpoints.

Metric points go to ``on_metric(series, step, value)``; if it returns a
truthy value the run stops after that batch (that is how a job is
cancelled).  ``step`` is the global optimizer step, for every series, so
curves of one run share an axis: ``train_loss`` at every step, ``val_loss``
and ``val_accuracy`` at the step that ended each epoch.

A checkpoint holds everything that decides what happens next (parameters,
optimizer state, both random generators, position, the epoch's shuffle), so a
run resumed from one continues exactly as the uninterrupted run would.

Every step runs under a :class:`~engine.watch.Watch`: the first non-finite
activation, loss, gradient or weight raises :class:`~engine.watch.Diverged`
in that step (after ``train_loss`` of the step is emitted, NaN if the loss
was never computed), with the batch and the last finite parameters attached
for the triage report (engine.triage).  At the last step of each epoch the
layer-health series are emitted (:data:`HEALTH_SERIES`, docs/trust.md).
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
from .watch import Diverged, Watch

MetricCallback = Callable[[str, int, float], object]

#: Per-layer series emitted once per epoch, as ``layers.{i}.{name}`` (dead_relu: ReLU layers only).
HEALTH_SERIES = ("weight_norm", "grad_norm", "update_ratio", "dead_relu")


@dataclass
class TrainState:
    """Where a run is: ``epoch`` counts completed epochs, ``batch`` the batches done in the current one."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    order: np.ndarray | None = None  # this epoch's shuffle, while an epoch is under way
    seconds: float = 0.0  # training time so far, across resumes
    history: dict = field(default_factory=dict)  # last values of each series


class Trainer:
    """Trains ``net`` with ``optimizer`` on mini-batches shuffled by its own generator."""

    def __init__(self, net: Network, optimizer: Optimizer, *, epochs: int, batch_size: int, seed: int):
        self.net, self.optimizer = net, optimizer
        self.epochs, self.batch_size = epochs, batch_size
        # Separate from the network's generator so that the shuffle does not depend on
        # how many dropout masks were drawn, and vice versa.
        self.rng = np.random.default_rng([seed, 1])
        self.state = TrainState()
        self.watch = Watch(len(net.layers), watched={i for i, layer in enumerate(net.layers) if layer.params})
        self.last_finite: tuple[int, dict[str, np.ndarray]] | None = None  # (step, params) at an epoch's end

    def _keep_finite(self) -> None:
        """Remember the parameters as they are now (checked finite): the triage's gradient check starts there."""
        self.last_finite = (self.state.step, {k: v.copy() for k, v in self.net.params.items()})

    def _step(self, x: np.ndarray, y: np.ndarray, health: bool) -> tuple[float, dict[str, float]]:
        """One watched optimizer step on batch (x, y); the layer-health values when ``health``."""
        net, watch, st = self.net, self.watch, self.state
        watch.begin(st.step + 1, st.epoch + 1)  # 1-based, as people count epochs
        out, caches = net.forward_cached(x, training=True, observe=watch)
        loss, delta = net.loss_and_delta(out, y, caches)
        watch.loss(loss)
        grads, _ = net.backward(delta, caches, observe=watch)
        before = {k: v.copy() for k, v in net.params.items() if k.endswith(".W")} if health else None
        self.optimizer.step(grads)
        norms = watch.weights(net.params)
        watch.end()
        if not health:
            return loss, {}
        values: dict[str, float] = {}
        for key, w0 in before.items():
            prefix = key[: -len(".W")]
            values[f"{prefix}.weight_norm"] = norms[key]
            values[f"{prefix}.grad_norm"] = watch.grad_norms[key]
            w0_norm = float(np.linalg.norm(w0))
            change = float(np.linalg.norm(net.params[key] - w0))
            values[f"{prefix}.update_ratio"] = change / w0_norm if w0_norm else 0.0
        for i, (layer, cache) in enumerate(zip(net.layers, caches, strict=True)):
            act = getattr(layer, "act", None)
            if act is not None and act.name == "relu":
                mask = cache.act  # z > 0, (N, F, Ho, Wo) or (N, units)
                alive = mask.any(axis=tuple(a for a in range(mask.ndim) if a != 1))
                values[f"layers.{i}.dead_relu"] = float(1.0 - alive.mean())
        return loss, values

    def run(
        self,
        x_train,
        y_train,
        x_val=None,
        y_val=None,
        *,
        on_metric: MetricCallback | None = None,
        on_epoch_end: Callable[[Trainer], object] | None = None,
        on_batch_end: Callable[[Trainer], object] | None = None,
    ) -> bool:
        """Train until ``epochs`` are complete; True when finished, False when asked to stop.

        ``on_epoch_end`` runs after each epoch's validation (a worker saves its
        checkpoint there); ``on_batch_end`` after each optimizer step.
        """
        emit = on_metric or (lambda *a: None)
        n = len(x_train)
        batches = self.batches_per_epoch(n)
        st = self.state
        self._keep_finite()
        while st.epoch < self.epochs:
            if st.order is None:
                st.order = self.rng.permutation(n)
            started = time.perf_counter()
            stop = False
            while st.batch < batches and not stop:
                idx = st.order[st.batch * self.batch_size : (st.batch + 1) * self.batch_size]
                try:
                    # Overflow is what the watch reports, in its own words: no RuntimeWarning per step.
                    with np.errstate(over="ignore", invalid="ignore"):
                        loss, health = self._step(x_train[idx], y_train[idx], st.batch == batches - 1)
                except Diverged as exc:
                    st.seconds += time.perf_counter() - started
                    record = self.watch.current or {}
                    emit("train_loss", exc.step, record.get("loss") if record.get("loss") is not None else np.nan)
                    exc.batch = (x_train[idx], y_train[idx])
                    raise
                st.batch += 1
                st.step += 1
                st.history["train_loss"] = loss
                stop = bool(emit("train_loss", st.step, loss))
                for name, value in health.items():
                    emit(name, st.step, value)
                if on_batch_end is not None:
                    stop = bool(on_batch_end(self)) or stop
            st.seconds += time.perf_counter() - started
            if stop:
                return False
            st.epoch += 1
            st.batch = 0
            st.order = None
            self._keep_finite()
            if x_val is not None and len(x_val):
                val_loss, val_acc, _ = self.net.evaluate(x_val, y_val, self.batch_size)
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
            "epoch": st.epoch,
            "batch": st.batch,
            "step": st.step,
            "seconds": st.seconds,
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
        self.net.load_params({k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")})
        self.optimizer.load_state({k[len("opt/") :]: v for k, v in arrays.items() if k.startswith("opt/")})
        self.net.rng.bit_generator.state = meta["net_rng"]
        self.rng.bit_generator.state = meta["train_rng"]
        self.state = TrainState(
            epoch=meta["epoch"],
            batch=meta["batch"],
            step=meta["step"],
            order=arrays.get("order"),
            seconds=meta["seconds"],
            history=meta["history"],
        )

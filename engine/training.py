"""The training loop: shuffled mini-batches, validation per epoch, metrics, checkpoints.

Metric points go to ``on_metric(series, step, value)``; if it returns a
truthy value the run stops after that batch (that is how a job is
cancelled).  ``step`` is the global optimizer step, for every series, so
curves of one run share an axis: ``train_loss`` at every step, ``val_loss``
and ``val_accuracy`` at the step that ended each epoch.

A checkpoint holds everything that decides what happens next (parameters,
optimizer state, both random generators, position, the epoch's shuffle), so a
run resumed from one continues exactly as the uninterrupted run would.

Every step is tested for divergence (engine.watch): a non-finite loss, or a
non-finite weight after the update, stops the run in that step.  The trainer
then replays the steps since its older in-memory snapshot (one is taken every
:data:`SNAPSHOT_EVERY` steps, two are kept) under a full
:class:`~engine.watch.Watch`, which raises :class:`~engine.watch.Diverged`
in the layer and phase where the first non-finite value appears, with the
norms of the steps before it; the batch and the parameters at the last
epoch's end are attached for the triage report (engine.triage), and
``train_loss`` of the step is emitted (NaN if the loss was never computed).
Watching costs a test of the weights per step and a copy of the parameters and
optimizer state every :data:`SNAPSHOT_EVERY` steps; the per-layer norms are
paid for only by a run that diverges.  At the last step of each epoch the
step runs under the full watch and the layer-health series are emitted
(:data:`HEALTH_SERIES`, docs/trust.md).
"""

from __future__ import annotations

import io
import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .network import Network
from .optimizers import Optimizer
from .watch import HISTORY_STEPS, Diverged, Watch, first_nonfinite

MetricCallback = Callable[[str, int, float], object]

#: Per-layer series emitted once per epoch, as ``layers.{i}.{name}`` (dead_relu: ReLU layers only).
HEALTH_SERIES = ("weight_norm", "grad_norm", "update_ratio", "dead_relu")

#: Steps between in-memory snapshots.  Two are kept, so a divergence is replayed over
#: SNAPSHOT_EVERY + 1 to 2 · SNAPSHOT_EVERY steps and the watch's ring buffer is full.
SNAPSHOT_EVERY = HISTORY_STEPS


class NonFinite(Exception):
    """The cheap per-step test failed: the loss (``where="loss"``) or a weight after the update (its key)."""

    def __init__(self, where: str):
        super().__init__(where)
        self.where = where


@dataclass
class Snapshot:
    """Everything a replay needs to re-run the steps after ``step``: a checkpoint, in memory."""

    step: int
    epoch: int
    batch: int
    order: np.ndarray | None  # the epoch's shuffle (never modified in place, so shared, not copied)
    params: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    net_rng: dict
    train_rng: dict


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
        self.snapshots: deque[Snapshot] = deque(maxlen=2)
        self.last_finite: tuple[int, dict[str, np.ndarray]] | None = None  # (step, params) at an epoch's end

    def _keep_finite(self) -> None:
        """Remember the parameters as they are now (checked finite): the triage's gradient check starts there.

        An epoch's end, not the step before the divergence: weights about to blow up make
        finite differences as ill-conditioned as the step itself.
        """
        self.last_finite = (self.state.step, {k: v.copy() for k, v in self.net.params.items()})

    def _step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One optimizer step on batch (x, y) with the cheap divergence test; its loss."""
        net = self.net
        out, caches = net.forward_cached(x, training=True, fuse=True)
        loss, delta = net.loss_and_delta(out, y, caches)
        if not math.isfinite(loss):
            raise NonFinite("loss")
        grads, _ = net.backward(delta, caches)
        self.optimizer.step(grads)
        bad = first_nonfinite(net.params)
        if bad is not None:
            raise NonFinite(bad)
        return loss

    def _watched_step(self, x: np.ndarray, y: np.ndarray, health: bool) -> tuple[float, dict[str, float]]:
        """One optimizer step on batch (x, y) under the full watch; the layer-health values when ``health``."""
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

    # --- divergence: snapshots and replay -----------------------------------------------------

    def _snapshot(self) -> None:
        """Keep the state before the next step (the older of two is what a divergence is replayed from)."""
        st = self.state
        self.snapshots.append(
            Snapshot(
                step=st.step,
                epoch=st.epoch,
                batch=st.batch,
                order=st.order,
                params={k: v.copy() for k, v in self.net.params.items()},
                optimizer={k: np.array(v, copy=True) for k, v in self.optimizer.state().items()},
                net_rng=self.net.rng.bit_generator.state,
                train_rng=self.rng.bit_generator.state,
            )
        )

    def _replay(self, x_train, y_train) -> Diverged | None:
        """Re-run the steps from the older snapshot to the one that just failed, under the full watch.

        The replay meets the same numbers (the engine is deterministic), so the watch
        raises where the first non-finite value appears, with the norms of the steps
        before it in its ring buffer.  None if no replayed step diverges (it would take
        a non-deterministic input).
        """
        until = self.state.step + 1
        snap = self.snapshots[0]
        self.net.load_params(snap.params)
        self.optimizer.load_state(snap.optimizer)
        self.net.rng.bit_generator.state = snap.net_rng
        self.rng.bit_generator.state = snap.train_rng
        st = self.state = TrainState(
            snap.epoch, snap.batch, snap.step, snap.order, seconds=self.state.seconds, history=self.state.history
        )
        self.watch.history.clear()
        batches = self.batches_per_epoch(len(x_train))
        while st.step < until:
            x, y = self._batch(x_train, y_train)
            try:
                self._watched_step(x, y, health=False)
            except Diverged as exc:
                exc.batch = (x, y)
                return exc
            st.batch, st.step = st.batch + 1, st.step + 1
            if st.batch == batches:
                st.epoch, st.batch, st.order = st.epoch + 1, 0, None
        return None

    def _as_seen(self, failed: NonFinite | Diverged, batch: tuple[np.ndarray, np.ndarray]) -> Diverged:
        """The divergence as the failing step itself saw it (when a replay does not reproduce it)."""
        if isinstance(failed, Diverged):
            exc = failed
        elif failed.where == "loss":
            exc = Diverged(self.state.step + 1, self.state.epoch + 1, len(self.net.layers) - 1, "forward", "loss")
        else:
            _, layer, param = failed.where.split(".")
            exc = Diverged(self.state.step + 1, self.state.epoch + 1, int(layer), "update", "weight", param)
        exc.batch = batch
        return exc

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
        checkpoint there); ``on_batch_end`` after each optimizer step.  Raises
        :class:`~engine.watch.Diverged` in the step where a value becomes non-finite.
        """
        emit = on_metric or (lambda *a: None)
        n = len(x_train)
        batches = self.batches_per_epoch(n)
        st = self.state
        self._keep_finite()
        while st.epoch < self.epochs:
            started = time.perf_counter()
            stop = False
            while st.batch < batches and not stop:
                if not self.snapshots or st.step - self.snapshots[-1].step >= SNAPSHOT_EVERY:
                    self._snapshot()
                x, y = self._batch(x_train, y_train)
                try:
                    # Overflow is what the watch reports, in its own words: no RuntimeWarning per step.
                    with np.errstate(over="ignore", invalid="ignore"):
                        if st.batch == batches - 1:
                            loss, health = self._watched_step(x, y, health=True)
                        else:
                            loss, health = self._step(x, y), {}
                except (NonFinite, Diverged) as failed:
                    seen = self._as_seen(failed, (x, y))
                    with np.errstate(over="ignore", invalid="ignore"):
                        exc = self._replay(x_train, y_train) or seen
                    st = self.state
                    st.seconds += time.perf_counter() - started
                    record = self.watch.current or {}
                    emit("train_loss", exc.step, record.get("loss") if record.get("loss") is not None else np.nan)
                    raise exc from None
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

    def _batch(self, x_train, y_train) -> tuple[np.ndarray, np.ndarray]:
        """The samples of the current batch (the epoch's shuffle is drawn at its first batch)."""
        st = self.state
        if st.order is None:
            st.order = self.rng.permutation(len(x_train))
        idx = st.order[st.batch * self.batch_size : (st.batch + 1) * self.batch_size]
        return x_train[idx], y_train[idx]

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

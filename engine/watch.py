"""Watching a training run for divergence, and the per-layer norms that explain one (docs/trust.md).

The trainer (engine.training) watches in two ways.  Every step it makes the
cheap test: the loss and, after the update, every weight must be finite
(:func:`first_nonfinite`, one BLAS dot product per parameter array).  A
non-finite activation, delta or gradient cannot hide from it: NaN and
infinities spread through every product and sum that reads them, so they
reach the loss or, through the gradients, the weights within the same step.
Only when the test fails does the trainer replay the last steps from an
in-memory snapshot under a :class:`Watch`, which takes one norm of each
layer's activations, of the gradient reaching each layer's output (its
"delta"), of each layer's parameter gradients and, after the update, of its
weights.  The engine is deterministic, so the replay meets the same values:
the watch raises :class:`Diverged` in the layer and phase (``forward``,
``backward``, ``update``) that produced the first non-finite one, and its
ring buffer holds the norms of the :data:`HISTORY_STEPS` steps before.

A norm is also a finiteness test: a NaN or an infinity anywhere makes the sum
of squares non-finite, so a finite norm proves the whole array finite without
a second pass.  Only when a norm is not finite is the array itself inspected
(a float32 sum of squares can overflow while every entry is finite; it is
then recomputed in float64).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

HISTORY_STEPS = 16  # steps of per-layer norms kept for a triage report (a bounded ring buffer)


def nonfinite_kind(x: float) -> str | None:
    """``"nan"``, ``"inf"`` or ``"-inf"`` for a non-finite number, None for a finite one."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return None


def json_safe(obj):
    """``obj`` with every non-finite float replaced by ``"nan"``, ``"inf"`` or ``"-inf"`` (JSON has no NaN).

    NumPy scalars become Python numbers; dicts, lists and tuples are walked.
    """
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        return nonfinite_kind(x) or x
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _flat(a: np.ndarray) -> np.ndarray:
    """``a``'s entries as one vector, without a copy when ``a`` is a transpose of a contiguous array
    (a conv layer's output is one): a norm does not care about the order of the entries."""
    if not a.flags.c_contiguous and a.ndim > 1:
        view = a.transpose(np.argsort(a.strides, kind="stable")[::-1])
        if view.flags.c_contiguous:
            return view.reshape(-1)
    return a.reshape(-1)


def _norm(a: np.ndarray) -> float:
    """The Frobenius norm of ``a`` (NaN or inf if ``a`` holds a non-finite value)."""
    flat = _flat(a)
    s = float(np.dot(flat, flat))
    if math.isfinite(s):
        return math.sqrt(s)
    if not np.isfinite(flat).all():
        return s if math.isnan(s) else float(np.nan if np.isnan(flat).any() else np.inf)
    return float(np.linalg.norm(flat.astype(np.float64)))


def first_nonfinite(arrays: dict[str, np.ndarray]) -> str | None:
    """The key of the first array holding a NaN or an infinity, None when all are finite."""
    for key, a in arrays.items():
        flat = _flat(a)
        if not math.isfinite(float(np.dot(flat, flat))) and not np.isfinite(flat).all():
            return key
    return None


class Diverged(Exception):
    """A non-finite value appeared: where (``layer``, ``phase``, ``quantity``) and when (``step``, ``epoch``)."""

    def __init__(self, step: int, epoch: int, layer: int, phase: str, quantity: str, param: str | None = None):
        self.step, self.epoch, self.layer, self.phase = step, epoch, layer, phase
        self.quantity, self.param = quantity, param
        where = f"layer {layer}" + (f" ({param})" if param else "")
        super().__init__(f"non-finite {quantity} in {where} during the {phase} pass of step {step} (epoch {epoch})")


class Watch:
    """The divergence watch of one run: hand it to ``Network.forward_cached`` / ``backward`` as ``observe``.

    ``begin(step, epoch)`` opens a step's record; the network calls
    :meth:`activation`, :meth:`delta` and :meth:`grads`; the trainer calls
    :meth:`loss` and, after the optimizer's update, :meth:`weights`; then
    :meth:`end` files the record in the ring buffer.
    """

    def __init__(self, layers: int, history: int = HISTORY_STEPS, watched: set[int] | None = None):
        self.n_layers = layers
        # Layers without parameters (pools, flatten, dropout) cannot turn finite values into
        # non-finite ones, so their arrays need no pass of their own (None in the history).
        self.watched = set(range(layers)) if watched is None else set(watched) | {layers - 1}
        self.history: deque[dict] = deque(maxlen=history)
        self.current: dict | None = None
        self.grad_norms: dict[str, float] = {}  # this step's parameter-gradient norms, by params key

    def begin(self, step: int, epoch: int) -> None:
        """Start recording step ``step`` (1-based, the step the optimizer is about to take) of ``epoch``."""
        self.current = {
            "step": step,
            "epoch": epoch,
            "loss": None,
            "layers": [
                {"layer": i, "activation": None, "delta": None, "grad": None, "weight": None}
                for i in range(self.n_layers)
            ],
        }
        self.grad_norms = {}

    def _fail(self, layer: int, phase: str, quantity: str, param: str | None = None):
        cur = self.current
        raise Diverged(cur["step"], cur["epoch"], layer, phase, quantity, param)

    def activation(self, i: int, a: np.ndarray) -> None:
        """Layer ``i``'s output of the forward pass."""
        if i not in self.watched:
            return
        norm = _norm(a)
        self.current["layers"][i]["activation"] = norm
        if not math.isfinite(norm):
            self._fail(i, "forward", "activation")

    def loss(self, value: float) -> None:
        """The batch loss (a non-finite loss with finite outputs is the last layer's, forward)."""
        self.current["loss"] = value
        if not math.isfinite(value):
            self._fail(self.n_layers - 1, "forward", "loss")

    def delta(self, i: int, d: np.ndarray) -> None:
        """∂C/∂(output of layer ``i``) as the backward pass reaches it (δ^L for the last layer)."""
        if i not in self.watched:
            return
        norm = _norm(d)
        self.current["layers"][i]["delta"] = norm
        if not math.isfinite(norm):
            self._fail(i, "backward", "delta")

    def grads(self, i: int, grads: dict[str, np.ndarray]) -> None:
        """Layer ``i``'s parameter gradients (none for pools, flatten, dropout)."""
        if not grads:
            return
        total = 0.0
        for name, g in grads.items():
            norm = _norm(g)
            self.grad_norms[f"layers.{i}.{name}"] = norm
            if not math.isfinite(norm):
                self.current["layers"][i]["grad"] = norm
                self._fail(i, "backward", "gradient", name)
            total += norm * norm
        self.current["layers"][i]["grad"] = math.sqrt(total)

    def weights(self, params: dict[str, np.ndarray]) -> dict[str, float]:
        """The parameters after the update (``net.params``): their norms by key; raises at the first non-finite."""
        norms: dict[str, float] = {}
        per_layer: dict[int, float] = {}
        for key, w in params.items():
            norm = _norm(w)
            norms[key] = norm
            i = int(key.split(".")[1])
            per_layer[i] = per_layer.get(i, 0.0) + norm * norm
            if not math.isfinite(norm):
                self.current["layers"][i]["weight"] = norm
                self._fail(i, "update", "weight", key.split(".")[2])
        for i, sq in per_layer.items():
            self.current["layers"][i]["weight"] = math.sqrt(sq)
        return norms

    def end(self) -> None:
        """File the step's record in the ring buffer."""
        self.history.append(self.current)
        self.current = None

    def report_history(self) -> list[dict]:
        """The ring buffer oldest first, the diverging step's partial record last (JSON-safe)."""
        records = list(self.history) + ([self.current] if self.current is not None else [])
        return json_safe([{**r, "layers": [dict(layer) for layer in r["layers"]]} for r in records])

"""A network: the layers of a model spec, composed.

``forward_cached`` runs the layers in order and returns each layer's cache;
``backward`` starts from δ^L of the loss and hands each layer the gradient of
its output and its own cache, from the last layer to the first.  Nothing of
a pass is kept on the network or its layers: the caches are passed
explicitly and dropped when the call that made them returns.  Parameters live
in ``params`` under ``"layers.{i}.W"`` / ``"layers.{i}.b"`` (docs/reference/weights.md,
PyTorch's layouts), as the same arrays the layers compute with, so an
optimizer updates them in place.
"""

from __future__ import annotations

import itertools

import numpy as np

from .constants import DEFAULT_DTYPE, DTYPES
from .layers import AvgPool, Conv2D, Dense, Dropout, Flatten, Layer, MaxPool
from .shapes import plan_model
from .spec import validate_model_spec


def _build_layer(plan, rng: np.random.Generator, dtype) -> Layer:
    """The layer object for one planned layer of a normalized spec."""
    spec = plan.layer
    kind = spec["type"]
    if kind == "conv":
        return Conv2D(
            plan.in_shape,
            spec["filters"],
            tuple(spec["kernel"]),
            spec["stride"],
            spec["padding"],
            spec["activation"],
            rng,
            dtype,
        )
    if kind == "dense":
        return Dense(plan.in_shape, spec["units"], spec["activation"], rng, dtype)
    if kind == "maxpool":
        return MaxPool(spec["size"], spec["stride"])
    if kind == "avgpool":
        return AvgPool(spec["size"], spec["stride"])
    if kind == "dropout":
        return Dropout(spec["rate"], rng)
    if kind == "flatten":
        return Flatten()
    raise ValueError(f"unknown layer type {kind!r}")


class Network:
    """Layers built from a model spec, with a per-network random generator.

    The generator (``self.rng``) initialises the weights and draws the dropout
    masks; nothing reads NumPy's global random state, so the same spec and
    seed give the same numbers.
    """

    def __init__(self, model: dict, seed: int = 0, dtype: str = DEFAULT_DTYPE):
        self.spec = model
        self.dtype = np.dtype(dtype)
        if self.dtype.name not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype.name}")
        self.rng = np.random.default_rng(seed)
        self.plan = plan_model(model)
        self.layers = [_build_layer(p, self.rng, self.dtype) for p in self.plan]
        self.loss = model["loss"]
        # Conv layers with ReLU right under a max-pool: the pool may apply their ReLU (forward_cached's fuse).
        self.relu_under_pool = frozenset(
            i
            for i, (layer, above) in enumerate(itertools.pairwise(self.layers))
            if isinstance(layer, Conv2D) and layer.act.name == "relu" and isinstance(above, MaxPool)
        )
        self.params = {
            f"layers.{i}.{name}": arr for i, layer in enumerate(self.layers) for name, arr in layer.params.items()
        }

    @classmethod
    def from_spec(cls, model_spec: dict, seed: int = 0, dtype: str = DEFAULT_DTYPE) -> Network:
        """Validate (with defaults filled in) and build.  Raises ``SpecError`` with field paths."""
        return cls(validate_model_spec(model_spec), seed=seed, dtype=dtype)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-sample input shape (C, H, W)."""
        return tuple(self.spec["input_shape"])

    @property
    def parameter_count(self) -> int:
        """Trainable scalars."""
        return int(sum(p.size for p in self.params.values()))

    def set_rotate_kernels(self, rotate: bool) -> None:
        """The gradient check's ablation switch: rotate the kernel in the backward pass or not."""
        for layer in self.layers:
            if isinstance(layer, Conv2D):
                layer.rotate_kernels = rotate

    def forward(self, x: np.ndarray, training: bool = False, start: int = 0) -> np.ndarray:
        """x: (N, C, H, W) → the last layer's activations (N, units)."""
        return self.forward_cached(x, training, start, fuse=True)[0]

    def forward_cached(
        self, x: np.ndarray, training: bool = False, start: int = 0, observe=None, fuse: bool = False
    ) -> tuple[np.ndarray, list]:
        """x: (N, C, H, W) → (the last layer's activations (N, units), the cache of every layer run).

        ``start`` feeds ``x`` to layer ``start`` instead of the first (the
        gradient check perturbs the inputs of every layer); the caches are
        then those of layers ``start`` to the last.  ``observe`` (the
        divergence watch, engine.watch) sees each layer's output as soon as it
        exists: ``observe.activation(i, a)`` may raise to stop the pass there.

        ``fuse``: the ReLU of a conv layer right under a max-pool is applied after the pool
        (``relu_under_pool``; docs/engine-speed.md).  The loss, the parameter gradients and the
        network's output are the same numbers (a NaN in z makes the loss NaN either way, and then
        the two may route its window's gradient differently), but that conv layer's output is z,
        and the gradient of the pool's input is δ: so not with ``observe``, nor where each layer's
        own output, input gradient or kinks are looked at (the gradient check).
        """
        if fuse and observe is not None:
            raise ValueError("a fused pass hides the conv layers' activations from observe")
        a = np.asarray(x, dtype=self.dtype)
        caches = []
        deferred = None  # the ReLU the layer below left for this max-pool to apply
        for i, layer in enumerate(self.layers[start:], start):
            if deferred is not None:
                a, cache = layer.forward(a, training, then=deferred)
                deferred = None
            elif fuse and i in self.relu_under_pool:
                a, cache = layer.forward(a, training, activate=False)
                deferred = layer.act
            else:
                a, cache = layer.forward(a, training)
            caches.append(cache)
            if observe is not None:
                observe.activation(i, a)
        return a, caches

    def loss_and_delta(self, out: np.ndarray, y: np.ndarray, caches: list) -> tuple[float, np.ndarray]:
        """C and δ^L = ∂C/∂z^L (N, units) for labels ``y`` (N,), from a forward pass's output and caches."""
        return self.layers[-1].loss_and_delta(self.loss, out, np.asarray(y), caches[-1])

    def loss_and_gradients(
        self, x: np.ndarray, y: np.ndarray, training: bool = False
    ) -> tuple[float, dict[str, np.ndarray]]:
        """The batch-mean loss for x (N, C, H, W), y (N,) and its exact gradients, keyed like ``params``."""
        out, caches = self.forward_cached(x, training, fuse=True)
        value, delta = self.loss_and_delta(out, y, caches)
        grads, _ = self.backward(delta, caches)
        return value, grads

    def loss_and_all_gradients(
        self, x: np.ndarray, y: np.ndarray
    ) -> tuple[float, dict[str, np.ndarray], dict[int, np.ndarray]]:
        """As :meth:`loss_and_gradients` (not training), plus ∂C/∂(input of layer i) for every layer i."""
        out, caches = self.forward_cached(x)
        value, delta = self.loss_and_delta(out, y, caches)
        grads, input_grads = self.backward(delta, caches, input_grads=True)
        return value, grads, input_grads

    def backward(
        self, delta: np.ndarray, caches: list, input_grads: bool = False, observe=None
    ) -> tuple[dict[str, np.ndarray], dict[int, np.ndarray]]:
        """Backpropagate δ^L = ∂C/∂z^L of the last layer through every layer, with the caches of a full forward pass.

        The last layer receives δ^L itself (its activation's factor is already
        in it), every other layer the gradient of its output.  Returns the
        parameter gradients keyed like ``params`` and, with ``input_grads``,
        ∂C/∂(input of layer i) by ``i`` (else an empty dict).  ``observe``
        (engine.watch) sees the gradient reaching each layer's output
        (``observe.delta(i, d)``) and the layer's parameter gradients
        (``observe.grads(i, g)``), last layer first; either may raise.
        """
        last = len(self.layers) - 1
        per_layer: dict[int, dict[str, np.ndarray]] = {}
        inputs: dict[int, np.ndarray] = {}
        if observe is not None:
            observe.delta(last, delta)
        grad, per_layer[last] = self.layers[last].backward_from_delta(
            delta, caches[last], need_input_grad=last > 0 or input_grads
        )
        if observe is not None:
            observe.grads(last, per_layer[last])
        if input_grads:
            inputs[last] = grad
        for i in range(last - 1, -1, -1):
            if observe is not None:
                observe.delta(i, grad)
            grad, per_layer[i] = self.layers[i].backward(grad, caches[i], need_input_grad=i > 0 or input_grads)
            if observe is not None:
                observe.grads(i, per_layer[i])
            if input_grads:
                inputs[i] = grad
        # Forward order, like params.
        grads = {f"layers.{i}.{name}": g for i in range(last + 1) for name, g in per_layer[i].items()}
        return grads, inputs

    def signature(self, caches: list, start: int = 0) -> list[np.ndarray]:
        """Every kink-relevant choice (ReLU signs, max-pool argmaxes) of a forward pass from layer ``start`` on.

        ``caches`` are that pass's caches of layers ``start`` to the last.
        """
        return [s for layer, cache in zip(self.layers[start:], caches, strict=True) for s in layer.signature(cache)]

    def predict(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        """Last-layer activations (N, units) for many samples x (N, C, H, W), ``batch_size`` at a time.

        Callers pass the batch size the job was admitted with (or less): the spec's memory
        estimate bounds one batch, so no phase of a job may hold more samples at once.
        """
        return np.concatenate([self.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[float, float, np.ndarray]:
        """Mean loss, accuracy and predicted labels over a whole split (x (N, C, H, W), y (N,)),
        ``batch_size`` samples at a time: the training batch, whose memory the spec was admitted with."""
        total, predictions = 0.0, []
        for i in range(0, len(x), batch_size):
            out, caches = self.forward_cached(x[i : i + batch_size], fuse=True)
            value, _ = self.loss_and_delta(out, y[i : i + batch_size], caches)
            total += value * len(out)
            predictions.append(out.argmax(axis=1))
        pred = np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64)
        n = max(len(x), 1)
        return total / n, float(np.mean(pred == y)) if len(x) else 0.0, pred

    def load_params(self, params: dict[str, np.ndarray]) -> None:
        """Copy arrays into ``params`` in place (shapes must match exactly)."""
        missing = set(self.params) - set(params)
        extra = set(params) - set(self.params)
        if missing or extra:
            raise ValueError(f"weights do not match the model: missing {sorted(missing)}, unexpected {sorted(extra)}")
        for key, arr in self.params.items():
            src = np.asarray(params[key])
            if src.shape != arr.shape:
                raise ValueError(f"{key}: shape {src.shape} does not match the model's {arr.shape}")
            arr[...] = src

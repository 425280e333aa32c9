"""A network: the layers of a model spec, composed.

``forward`` runs the layers in order; ``backward`` starts from δ^L of the loss
and hands each layer the gradient of its output, from the last layer to the
first.  Parameters live in ``params`` under ``"layers.{i}.W"`` /
``"layers.{i}.b"`` (SPEC §5, PyTorch's layouts), as the same arrays the
layers compute with, so an optimizer updates them in place.
"""
from __future__ import annotations

import numpy as np

from .layers import AvgPool, Conv2D, Dense, Dropout, Flatten, Layer, MaxPool
from .losses import loss_and_delta
from .spec import plan_model, validate_model_spec

DTYPES = {"float32": np.float32, "float64": np.float64}


def _build_layer(plan, rng: np.random.Generator, dtype) -> Layer:
    """The layer object for one planned layer of a normalized spec."""
    spec = plan.layer
    kind = spec["type"]
    if kind == "conv":
        return Conv2D(plan.in_shape, spec["filters"], tuple(spec["kernel"]), spec["stride"], spec["padding"],
                      spec["activation"], rng, dtype)
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

    def __init__(self, model: dict, seed: int = 0, dtype: str = "float32"):
        self.spec = model
        self.dtype = np.dtype(DTYPES[dtype] if isinstance(dtype, str) else dtype)
        self.rng = np.random.default_rng(seed)
        self.plan = plan_model(model)
        self.layers = [_build_layer(p, self.rng, self.dtype) for p in self.plan]
        self.loss = model["loss"]
        self.params = {f"layers.{i}.{name}": arr
                       for i, layer in enumerate(self.layers) for name, arr in layer.params.items()}
        self.input_grads: dict[int, np.ndarray] = {}

    @classmethod
    def from_spec(cls, model_spec: dict, seed: int = 0, dtype: str = "float32") -> Network:
        """Validate (with defaults filled in) and build.  Raises ``SpecError`` with field paths."""
        return cls(validate_model_spec(model_spec), seed=seed, dtype=dtype)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.spec["input_shape"])

    @property
    def parameter_count(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def set_rotate_kernels(self, rotate: bool) -> None:
        """The gradient check's ablation switch: rotate the kernel in the backward pass or not."""
        for layer in self.layers:
            if isinstance(layer, Conv2D):
                layer.rotate_kernels = rotate

    def forward(self, x: np.ndarray, training: bool = False, start: int = 0) -> np.ndarray:
        """x: (N, C, H, W) → the last layer's activations (N, units).

        ``start`` feeds ``x`` to layer ``start`` instead of the first (the
        gradient check perturbs the inputs of every layer).
        """
        a = np.asarray(x, dtype=self.dtype)
        for layer in self.layers[start:]:
            a = layer.forward(a, training)
        return a

    def loss_and_gradients(self, x: np.ndarray, y: np.ndarray, training: bool = False,
                           input_grads: bool = False) -> tuple[float, dict[str, np.ndarray]]:
        """The batch-mean loss and its exact gradients, keyed like ``params``.

        With ``input_grads`` the gradient of the loss with respect to every
        layer's input is kept in ``self.input_grads[i]`` as well.
        """
        out = self.forward(x, training)
        value, delta = self._loss(out, y)
        self.backward(delta, input_grads=input_grads)
        return value, self.gradients()

    def _loss(self, out: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """C and δ^L from the last layer's cached z and a."""
        last = self.layers[-1]
        return loss_and_delta(self.loss, last.z, out, np.asarray(y), last.act)

    def backward(self, delta: np.ndarray, input_grads: bool = False) -> None:
        """Backpropagate δ^L = ∂C/∂z^L of the last layer through every layer.

        The last layer receives δ^L itself (its activation's factor is already
        in it), every other layer the gradient of its output.
        """
        self.input_grads = {}
        last = len(self.layers) - 1
        grad = self.layers[-1].backward_from_delta(delta, need_input_grad=last > 0 or input_grads)
        if input_grads:
            self.input_grads[last] = grad
        for i in range(last - 1, -1, -1):
            grad = self.layers[i].backward(grad, need_input_grad=i > 0 or input_grads)
            if input_grads:
                self.input_grads[i] = grad

    def gradients(self) -> dict[str, np.ndarray]:
        """The gradients of the last backward pass, keyed like ``params``."""
        return {f"layers.{i}.{name}": g for i, layer in enumerate(self.layers) for name, g in layer.grads.items()}

    def signature(self, start: int = 0) -> list[np.ndarray]:
        """Every kink-relevant choice of the last forward pass from layer ``start`` on.

        (ReLU signs, max-pool argmaxes.)
        """
        return [s for layer in self.layers[start:] for s in layer.signature()]

    def predict(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Last-layer activations for many samples, in batches to bound memory."""
        return np.concatenate([self.forward(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> tuple[float, float, np.ndarray]:
        """Mean loss, accuracy and predicted labels over a whole split."""
        total, predictions = 0.0, []
        for i in range(0, len(x), batch_size):
            out = self.forward(x[i:i + batch_size])
            value, _ = self._loss(out, y[i:i + batch_size])
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

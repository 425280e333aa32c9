"""Optimizers that update a network's parameters in place.

L2 weight decay adds ``λ·w`` to each weight gradient (biases are not
decayed), which is the gradient of ``(λ/2)‖w‖²``.  ``state()`` and
``load_state()`` carry everything an exact resume needs.
"""

from __future__ import annotations

import numpy as np

from .constants import ADAM_DEFAULTS, SGD_DEFAULTS, TRAIN_DEFAULTS


class Optimizer:
    """Shared bookkeeping: the parameters, their decay, the step count."""

    def __init__(self, params: dict[str, np.ndarray], weight_decay: float = TRAIN_DEFAULTS["weight_decay"]):
        self.params = params
        self.weight_decay = weight_decay
        self.t = 0

    def _grad(self, key: str, grad: np.ndarray) -> np.ndarray:
        if self.weight_decay and key.endswith(".W"):
            return grad + self.weight_decay * self.params[key]
        return grad

    def step(self, grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        for key, g in grads.items():
            self._update(key, self.params[key], self._grad(key, g))

    def _update(self, key: str, w: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        """The optimizer's arrays and step count (for checkpoints)."""
        return {"t": np.asarray(self.t)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.t = int(state["t"])


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum: v ← μv − η g; w ← w + v."""

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = SGD_DEFAULTS["momentum"],
        weight_decay: float = TRAIN_DEFAULTS["weight_decay"],
    ):
        super().__init__(params, weight_decay)
        self.lr, self.momentum = lr, momentum
        self.velocity = {k: np.zeros_like(p) for k, p in params.items()} if momentum else {}

    def _update(self, key, w, g):
        if not self.momentum:
            w -= self.lr * g
            return
        v = self.velocity[key]
        v *= self.momentum
        v -= self.lr * g
        w += v

    def state(self):
        return {**super().state(), **{f"velocity/{k}": v for k, v in self.velocity.items()}}

    def load_state(self, state):
        super().load_state(state)
        for k, v in self.velocity.items():
            v[...] = state[f"velocity/{k}"]


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias-corrected first and second moments."""

    def __init__(
        self,
        params,
        lr: float,
        beta1: float = ADAM_DEFAULTS["beta1"],
        beta2: float = ADAM_DEFAULTS["beta2"],
        eps: float = ADAM_DEFAULTS["eps"],
        weight_decay: float = TRAIN_DEFAULTS["weight_decay"],
    ):
        super().__init__(params, weight_decay)
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = {k: np.zeros_like(p) for k, p in params.items()}
        self.v = {k: np.zeros_like(p) for k, p in params.items()}

    def step(self, grads):
        self.t += 1
        # A Python float, so a float32 model's update stays in float32.
        self._lr_t = float(self.lr * np.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t))
        for key, g in grads.items():
            self._update(key, self.params[key], self._grad(key, g))

    def _update(self, key, w, g):
        m, v = self.m[key], self.v[key]
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * (g * g)
        w -= self._lr_t * m / (np.sqrt(v) + self.eps)

    def state(self):
        return {
            **super().state(),
            **{f"m/{k}": a for k, a in self.m.items()},
            **{f"v/{k}": a for k, a in self.v.items()},
        }

    def load_state(self, state):
        super().load_state(state)
        for k in self.m:
            self.m[k][...] = state[f"m/{k}"]
            self.v[k][...] = state[f"v/{k}"]


def make_optimizer(
    spec: dict, params: dict[str, np.ndarray], weight_decay: float = TRAIN_DEFAULTS["weight_decay"]
) -> Optimizer:
    """The optimizer of a ``train.optimizer`` spec (omitted settings take the defaults of engine.constants)."""
    settings = {k: v for k, v in spec.items() if k != "type"}
    kind = spec["type"]
    if kind == "sgd":
        return SGD(params, **settings, weight_decay=weight_decay)
    if kind == "adam":
        return Adam(params, **settings, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {kind!r}")

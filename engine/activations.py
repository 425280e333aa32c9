"""Activation functions σ and the Hadamard factor σ'(z) of the backward pass.

Each activation is a pure pair, as in cs231n: ``forward(z)`` returns
``(a, cache)`` and ``backward(grad_a, cache)`` turns ∂C/∂a into δ = ∂C/∂z.
For the element-wise activations that is ``grad_a ⊙ σ'(z)`` (Nielsen's BP2
factor); softmax couples its outputs, so it multiplies by its Jacobian
instead.  The objects hold no state between the two calls.  Shapes: any
(the layer's ``(N, F, Ho, Wo)`` or ``(N, units)``); ``a``, ``grad_a`` and δ
all have the shape of ``z``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Activation:
    """The identity (the spec's ``linear``); base of the others."""

    name = "linear"

    def forward(self, z: np.ndarray, out: np.ndarray | None = None) -> tuple[np.ndarray, Any]:
        """a = σ(z), and what ``backward`` needs (z: any shape; a: the same).

        ``out`` (z itself, when the caller owns z and needs it no more) is an array a may be
        written to, to spare an allocation; the returned a is not necessarily it.
        """
        return z, None

    def backward(self, grad_a: np.ndarray, cache: Any) -> np.ndarray:
        """δ = ∂C/∂a ⊙ σ'(z), from ``forward``'s cache (grad_a and δ: the shape of z)."""
        return grad_a

    def signature(self, cache: Any) -> np.ndarray | None:
        """Which side of each kink the forward pass was on (None: no kinks)."""
        return None


class ReLU(Activation):
    """max(z, 0); the cache is the mask z > 0, which is also where the kinks are."""

    name = "relu"

    def forward(self, z, out=None):
        mask = np.greater(z, 0)  # before a overwrites z
        return np.maximum(z, 0, out=out), mask

    def backward(self, grad_a, cache):
        return np.multiply(grad_a, cache, out=np.empty_like(grad_a))  # in grad_a's memory order

    def signature(self, cache):
        return cache


class Sigmoid(Activation):
    """1 / (1 + e^−z); the cache is a, since σ' = a(1 − a)."""

    name = "sigmoid"

    def forward(self, z, out=None):
        # exp of −|z| only, so large |z| never overflows.
        e = np.exp(-np.abs(z))
        a = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
        return a, a

    def backward(self, grad_a, cache):
        return grad_a * cache * (1 - cache)


class Tanh(Activation):
    """tanh z; the cache is a, since σ' = 1 − a²."""

    name = "tanh"

    def forward(self, z, out=None):
        a = np.tanh(z, out=out)
        return a, a

    def backward(self, grad_a, cache):
        return grad_a * (1 - cache * cache)


class Softmax(Activation):
    """Softmax over the last axis; only ever the last layer's activation.  The cache is a."""

    name = "softmax"

    def forward(self, z, out=None):
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        a = e / e.sum(axis=-1, keepdims=True)
        return a, a

    def backward(self, grad_a, cache):
        # Jacobian-vector product: ∂a_i/∂z_j = a_i (1[i=j] − a_j).
        a = cache
        return a * (grad_a - (grad_a * a).sum(axis=-1, keepdims=True))


#: Every activation a spec may name (:data:`engine.constants.ACTIVATIONS`), by name.
BY_NAME = {cls.name: cls for cls in (Activation, ReLU, Sigmoid, Tanh, Softmax)}


def make_activation(name: str) -> Activation:
    """The activation object of a spec name (activations hold no state, so one may be shared)."""
    return BY_NAME[name]()

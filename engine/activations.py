"""Activation functions σ and the Hadamard factor σ'(z) of the backward pass.

``backward(grad_a)`` turns ∂C/∂a into δ = ∂C/∂z.  For the element-wise
activations that is ``grad_a ⊙ σ'(z)`` (Nielsen's BP2 factor); softmax
couples its outputs, so it multiplies by its Jacobian instead.
"""
from __future__ import annotations

import numpy as np


class Activation:
    """Element-wise activation; ``forward`` keeps what ``backward`` needs."""

    name = "linear"
    kinked = False   # True where σ' jumps (ReLU): the gradient check must watch its sign pattern

    def forward(self, z: np.ndarray) -> np.ndarray:
        """a = σ(z)."""
        return z

    def backward(self, grad_a: np.ndarray) -> np.ndarray:
        """δ = ∂C/∂a ⊙ σ'(z)."""
        return grad_a

    def signature(self) -> np.ndarray | None:
        """Which side of each kink the last forward pass was on (None: no kinks)."""
        return None


class Linear(Activation):
    name = "linear"


class ReLU(Activation):
    name = "relu"
    kinked = True

    def forward(self, z):
        self.mask = z > 0
        return np.maximum(z, 0, dtype=z.dtype)

    def backward(self, grad_a):
        return grad_a * self.mask

    def signature(self):
        return self.mask


class Sigmoid(Activation):
    name = "sigmoid"

    def forward(self, z):
        # exp of −|z| only, so large |z| never overflows.
        e = np.exp(-np.abs(z))
        self.a = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
        return self.a

    def backward(self, grad_a):
        return grad_a * self.a * (1 - self.a)


class Tanh(Activation):
    name = "tanh"

    def forward(self, z):
        self.a = np.tanh(z)
        return self.a

    def backward(self, grad_a):
        return grad_a * (1 - self.a * self.a)


class Softmax(Activation):
    """Softmax over the last axis; only ever the last layer's activation."""

    name = "softmax"

    def forward(self, z):
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        self.a = e / e.sum(axis=-1, keepdims=True)
        return self.a

    def backward(self, grad_a):
        # Jacobian-vector product: ∂a_i/∂z_j = a_i (1[i=j] − a_j).
        a = self.a
        return a * (grad_a - (grad_a * a).sum(axis=-1, keepdims=True))


ACTIVATIONS = {cls.name: cls for cls in (Linear, ReLU, Sigmoid, Tanh, Softmax)}


def make_activation(name: str) -> Activation:
    """A fresh activation object by its spec name."""
    return ACTIVATIONS[name]()

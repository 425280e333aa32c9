"""Losses: the mean over the batch, and δ^L = ∂C/∂z^L of the last layer.

Nielsen's BP1 is δ^L = ∇_a C ⊙ σ'(z^L).  For the two cross-entropies the σ'
factor cancels and δ^L = (a − y)/n, which is both cheaper and stable, so
those pairs are computed from z directly (log-sum-exp, softplus).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .activations import Activation


def one_hot(y: np.ndarray, classes: int, dtype) -> np.ndarray:
    """(N,) int labels → (N, classes) one-hot rows."""
    out = np.zeros((y.shape[0], classes), dtype=dtype)
    out[np.arange(y.shape[0]), y] = 1
    return out


def loss_and_delta(
    loss: str, z: np.ndarray, a: np.ndarray, y: np.ndarray, activation: Activation, act_cache: Any
) -> tuple[float, np.ndarray]:
    """C and δ^L = ∂C/∂z^L (N, K) for labels ``y`` (N,), the last layer's z and a = σ(z) (N, K).

    ``act_cache`` is what ``activation.forward(z)`` returned with ``a``.
    """
    n, k = a.shape
    t = one_hot(y, k, a.dtype)
    if loss == "cross_entropy" and activation.name == "softmax":
        # C = −(1/n) Σ log softmax(z)_y, what PyTorch's CrossEntropyLoss computes from z.
        zmax = z.max(axis=1, keepdims=True)
        log_norm = zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))
        value = float(np.mean(log_norm - z[np.arange(n), y]))
        return value, (a - t) / n
    if loss == "cross_entropy" and activation.name == "sigmoid":
        # Nielsen's C = −(1/n) Σ_j [y_j ln a_j + (1−y_j) ln(1−a_j)] = (1/n) Σ softplus(z) − y z.
        softplus = np.logaddexp(0, z)
        value = float(np.sum(softplus - t * z) / n)
        return value, (a - t) / n
    if loss == "quadratic":
        # Nielsen's C = (1/2n) Σ ‖y − a‖², so ∇_a C = (a − y)/n and δ^L = ∇_a C ⊙ σ'(z^L).
        diff = a - t
        value = float(0.5 * np.sum(diff * diff) / n)
        return value, activation.backward(diff / n, act_cache)
    raise ValueError(f"loss {loss!r} with a {activation.name} output layer is not supported")

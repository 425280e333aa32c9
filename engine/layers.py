"""Layers: objects with ``forward`` and ``backward``.

``forward(x, training)`` returns the layer's activations and keeps what the
backward pass needs.  ``backward(grad_out)`` takes ∂C/∂(its output), stores
the parameter gradients in ``self.grads`` and returns ∂C/∂(its input).
Layers with an activation turn ∂C/∂a into δ = ∂C/∂z first (BP2's ⊙ σ'(z)).
Shapes are batched: spatial ``(N, C, H, W)``, flat ``(N, D)``.
"""
from __future__ import annotations

import numpy as np

from . import convolution as conv
from .activations import Activation, make_activation


class Layer:
    """Base class: no parameters, no kinks."""

    params: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]

    def __init__(self):
        self.params = {}
        self.grads = {}

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    def signature(self) -> list[np.ndarray]:
        """Discrete choices the last forward pass made (ReLU signs, max-pool argmaxes).

        If a ±eps perturbation changes them, the loss has a kink between the
        two evaluations and a centred difference says nothing about the
        derivative there.
        """
        return []


def _init_weights(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int,
                  activation: str, dtype) -> np.ndarray:
    """He normal for ReLU (keeps the activations' variance through ReLUs), Glorot uniform otherwise."""
    if activation == "relu":
        w = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    else:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, shape)
    return w.astype(dtype)


class Conv2D(Layer):
    """Convolution with an activation: z = a_prev ⋆ W + b, a = σ(z).

    W: (F, C, kh, kw), b: (F,).  ``rotate_kernels=False`` is the ablation of
    the gradient check: the backward pass then uses the kernel unrotated.
    """

    def __init__(self, in_shape, filters, kernel, stride, padding, activation, rng, dtype):
        super().__init__()
        c = in_shape[0]
        kh, kw = kernel
        self.stride, self.padding = stride, padding
        self.params["W"] = _init_weights(rng, (filters, c, kh, kw), c * kh * kw, filters * kh * kw, activation, dtype)
        self.params["b"] = np.zeros(filters, dtype=dtype)
        self.act: Activation = make_activation(activation)
        self.rotate_kernels = True

    def forward(self, x, training):
        w = self.params["W"]
        kh, kw = w.shape[2:]
        xp = conv.pad(x, self.padding)
        self.padded_shape = xp.shape[2:]
        self.cols = conv.im2col(xp, kh, kw, self.stride)
        z = conv.correlate_valid(xp, w, self.stride, cols=self.cols)
        z += self.params["b"][:, None, None]
        return self.act.forward(z)

    def backward(self, grad_out, need_input_grad=True):
        w = self.params["W"]
        delta = self.act.backward(grad_out)                                   # δ^l = ∂C/∂a ⊙ σ'(z^l)
        rows = conv.delta_rows(delta)                                          # laid out once for both GEMMs
        self.grads["W"] = conv.weight_gradient(None, delta, self.stride, w.shape[2:],
                                               cols=self.cols, rows=rows)      # ∂C/∂w = a^{l-1} ⋆ δ^l
        self.grads["b"] = delta.sum(axis=(0, 2, 3))                            # ∂C/∂b = Σ δ^l
        self.cols = None
        if not need_input_grad:
            return None
        kernel = conv.rot180(w) if self.rotate_kernels else w
        grad_in = conv.convolve_full_rotated(delta, kernel, self.stride, self.padded_shape,
                                             rows=rows)                        # δ^l ∗_full rot180(w)
        return conv.unpad(grad_in, self.padding)

    def signature(self):
        s = self.act.signature()
        return [] if s is None else [s]


class Dense(Layer):
    """Fully connected: z = a_prev W^T + b, a = σ(z).  W: (units, inputs), as PyTorch's Linear.

    A spatial input (N, C, H, W) is flattened in C, H, W order first.
    """

    def __init__(self, in_shape, units, activation, rng, dtype):
        super().__init__()
        inputs = int(np.prod(in_shape))
        self.params["W"] = _init_weights(rng, (units, inputs), inputs, units, activation, dtype)
        self.params["b"] = np.zeros(units, dtype=dtype)
        self.act = make_activation(activation)

    def forward(self, x, training):
        self.x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        self.z = self.x @ self.params["W"].T + self.params["b"]
        return self.act.forward(self.z)

    def backward(self, grad_out, need_input_grad=True):
        return self.backward_from_delta(self.act.backward(grad_out), need_input_grad)   # BP2: ⊙ σ'(z^l)

    def backward_from_delta(self, delta, need_input_grad=True):
        """The backward pass from δ^l = ∂C/∂z^l itself (the last layer gets δ^L from the loss)."""
        self.grads["W"] = delta.T @ self.x                # BP4: ∂C/∂w_jk = a_k^{l-1} δ_j^l
        self.grads["b"] = delta.sum(axis=0)               # BP3
        self.x = None
        if not need_input_grad:
            return None
        return (delta @ self.params["W"]).reshape(self.x_shape)   # (w^l)^T δ^l

    def signature(self):
        s = self.act.signature()
        return [] if s is None else [s]


class _Pool(Layer):
    """Shared window bookkeeping of the pooling layers.

    Pools are computed tap by tap: ``_tap(x, u, v)`` is the strided view of
    the entries that offset ``(u, v)`` of every window reads, shape (N, C, Ho, Wo).
    That needs no copy of the windows and works for any size and stride.
    """

    def __init__(self, size, stride):
        super().__init__()
        self.size, self.stride = size, stride

    def _tap(self, x, u, v):
        s = self.stride
        ho = (x.shape[2] - self.size) // s + 1
        wo = (x.shape[3] - self.size) // s + 1
        return x[:, :, u:u + s * (ho - 1) + 1:s, v:v + s * (wo - 1) + 1:s]

    def _taps(self):
        """Every window offset (u, v), row-major."""
        return ((u, v) for u in range(self.size) for v in range(self.size))

    def _scatter(self, contributions):
        """∂C/∂x: each ``(u, v, contribution)`` (N, C, Ho, Wo) added back where tap (u, v) read.

        Overlapping windows (stride < size) accumulate; floored-away rows or
        columns get zero.
        """
        grad = np.zeros(self.x_shape, dtype=self.dtype)
        for u, v, contribution in contributions:
            self._tap(grad, u, v)[...] += contribution
        return grad


class MaxPool(_Pool):
    """Max over each size×size window; the delta goes back to the argmax only.

    Ties go to the first tap in row-major order, as in PyTorch.  The argmax
    is not stored: the backward pass finds each window's winner by comparing
    the taps with the maximum, which is cheaper than tracking it.
    """

    def forward(self, x, training):
        self.x, self.x_shape, self.dtype = x, x.shape, x.dtype
        out = self._tap(x, 0, 0).copy()
        for u, v in self._taps():
            np.maximum(out, self._tap(x, u, v), out=out)
        self.out = out
        return out

    def _winners(self):
        """(u, v, mask) for each tap: the windows whose first maximum that tap holds."""
        taken = np.zeros(self.out.shape, dtype=bool)
        for u, v in self._taps():
            hit = self._tap(self.x, u, v) == self.out
            hit &= ~taken
            taken |= hit
            yield u, v, hit

    def backward(self, grad_out, need_input_grad=True):
        grad = self._scatter((u, v, grad_out * hit) for u, v, hit in self._winners())
        self.x = None
        return grad

    def signature(self):
        argmax = np.zeros(self.out.shape, dtype=np.int16)
        for u, v, hit in self._winners():
            argmax[hit] = u * self.size + v
        return [argmax]


class AvgPool(_Pool):
    """Mean over each size×size window; the delta is shared equally by the window."""

    def forward(self, x, training):
        self.x_shape, self.dtype = x.shape, x.dtype
        out = self._tap(x, 0, 0).copy()
        for u, v in self._taps():
            if u or v:
                out += self._tap(x, u, v)
        out /= self.size * self.size
        return out

    def backward(self, grad_out, need_input_grad=True):
        share = grad_out / (self.size * self.size)
        return self._scatter((u, v, share) for u, v in self._taps())


class Dropout(Layer):
    """Inverted dropout: zero each unit with probability ``rate`` in training, scale the rest by 1/(1−rate)."""

    def __init__(self, rate, rng):
        super().__init__()
        self.rate, self.rng = rate, rng
        self.mask = None

    def forward(self, x, training):
        if not training or self.rate == 0:
            self.mask = None
            return x
        keep = 1.0 - self.rate
        self.mask = (self.rng.random(x.shape) < keep).astype(x.dtype) / np.asarray(keep, dtype=x.dtype)
        return x * self.mask

    def backward(self, grad_out, need_input_grad=True):
        return grad_out if self.mask is None else grad_out * self.mask


class Flatten(Layer):
    """(N, C, H, W) → (N, C·H·W) in C, H, W order."""

    def forward(self, x, training):
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out, need_input_grad=True):
        return grad_out.reshape(self.x_shape)

"""Layers: pure ``forward``/``backward`` pairs, as in cs231n.

``forward(x, training)`` returns ``(out, cache)``; ``backward(grad_out, cache)``
takes ∂C/∂(its output) and that cache and returns ``(grad_in, grads)``:
∂C/∂(its input) and the parameter gradients ``{"W": ..., "b": ...}``.  What
the backward pass needs travels in the cache, never in attributes, so a
layer holds only its configuration and ``params`` (the arrays the optimizer
updates in place).  Layers with an activation turn ∂C/∂a into δ = ∂C/∂z
first (BP2's ⊙ σ'(z)).  Shapes are batched: spatial ``(N, C, H, W)``, flat
``(N, D)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import convolution as conv
from . import pieces
from .activations import Activation, make_activation
from .losses import loss_and_delta
from .shapes import output_size

Grads = dict[str, np.ndarray]


class Layer:
    """Base class: no parameters, no kinks."""

    params: dict[str, np.ndarray]

    def __init__(self):
        self.params = {}

    def forward(self, x: np.ndarray, training: bool) -> tuple[np.ndarray, Any]:
        """The layer's output for ``x``, and the cache its ``backward`` takes."""
        raise NotImplementedError

    def backward(
        self, grad_out: np.ndarray, cache: Any, need_input_grad: bool = True
    ) -> tuple[np.ndarray | None, Grads]:
        """(∂C/∂input or None when not needed, parameter gradients) from ∂C/∂output and ``forward``'s cache."""
        raise NotImplementedError

    def signature(self, cache: Any) -> list[np.ndarray]:
        """Discrete choices the forward pass that made ``cache`` took (ReLU signs, max-pool argmaxes).

        If a ±eps perturbation changes them, the loss has a kink between the
        two evaluations and a centred difference says nothing about the
        derivative there.
        """
        return []


def _init_weights(
    rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int, activation: str, dtype
) -> np.ndarray:
    """He normal for ReLU (keeps the activations' variance through ReLUs), Glorot uniform otherwise."""
    if activation == "relu":
        w = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    else:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, shape)
    return w.astype(dtype)


class ConvCache(NamedTuple):
    """What a conv layer's backward pass needs from its forward pass."""

    cols: np.ndarray  # im2col of the padded input, (C·kh·kw, Ho·Wo·N): reused by ∂C/∂w
    padded_shape: tuple[int, int]  # (H + 2p, W + 2p), the size the full convolution must give back
    act: Any  # the activation's cache; None when the output was z (its ReLU deferred: MaxPool.forward)


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

    def forward(self, x, training, activate=True):
        """x: (N, C, H, W) → a: (N, F, Ho, Wo), and a :class:`ConvCache`.

        ``activate=False`` returns z instead, for a max-pool above to apply the ReLU after it
        (``MaxPool.forward``'s ``then``); the backward pass then takes δ^l itself as ``grad_out``.
        """
        w = self.params["W"]
        kh, kw = w.shape[2:]
        xp = conv.pad(x, self.padding)
        cols = conv.im2col(xp, kh, kw, self.stride)
        z = conv.correlate_valid(xp, w, self.stride, cols=cols)
        np.add(z, self.params["b"][:, None, None], out=z)
        if not activate:
            return z, ConvCache(cols, xp.shape[2:], None)
        a, act_cache = self.act.forward(z, out=z)  # z is this layer's own and needed no more
        return a, ConvCache(cols, xp.shape[2:], act_cache)

    def backward(self, grad_out, cache, need_input_grad=True):
        """grad_out: (N, F, Ho, Wo) → ∂C/∂x (N, C, H, W) or None, and {"W": (F, C, kh, kw), "b": (F,)}."""
        w = self.params["W"]
        # δ^l = ∂C/∂a ⊙ σ'(z^l); a deferred ReLU was applied (and differentiated) by the pool above.
        delta = grad_out if cache.act is None else self.act.backward(grad_out, cache.act)
        rows = conv.delta_rows(delta)  # (F, Ho·Wo·N), for the weight gradient's GEMM and the bias
        grads = {
            "W": conv.weight_gradient(
                None, delta, self.stride, w.shape[2:], cols=cache.cols, rows=rows
            ),  # ∂C/∂w = a^{l-1} ⋆ δ^l
            "b": rows.sum(axis=1),
        }  # ∂C/∂b = Σ δ^l
        if not need_input_grad:
            return None, grads
        kernel = conv.rot180(w) if self.rotate_kernels else w
        grad_in = conv.convolve_full_rotated(delta, kernel, self.stride, cache.padded_shape)  # δ^l ∗_full rot180(w)
        return conv.unpad(grad_in, self.padding), grads

    def signature(self, cache):
        s = self.act.signature(cache.act)
        return [] if s is None else [s]


class DenseCache(NamedTuple):
    """What a dense layer's backward pass (and the loss, when it is the last layer) needs."""

    x: np.ndarray  # the input flattened, (N, inputs)
    x_shape: tuple[int, ...]  # the input's own shape, to hand ∂C/∂x back in it
    z: np.ndarray  # the weighted input, (N, units)
    act: Any  # the activation's cache


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
        """x: (N, C, H, W) or (N, inputs) → a: (N, units), and a :class:`DenseCache`."""
        flat = x.reshape(x.shape[0], -1)
        z = flat @ self.params["W"].T + self.params["b"]
        a, act_cache = self.act.forward(z)
        return a, DenseCache(flat, x.shape, z, act_cache)

    def backward(self, grad_out, cache, need_input_grad=True):
        """grad_out: (N, units) → ∂C/∂x in the input's shape or None, and {"W": (units, inputs), "b": (units,)}."""
        return self.backward_from_delta(
            self.act.backward(grad_out, cache.act), cache, need_input_grad
        )  # BP2: ⊙ σ'(z^l)

    def backward_from_delta(self, delta, cache, need_input_grad=True):
        """The backward pass from δ^l = ∂C/∂z^l (N, units) itself (the last layer gets δ^L from the loss)."""
        grads = {
            "W": delta.T @ cache.x,  # BP4: ∂C/∂w_jk = a_k^{l-1} δ_j^l
            "b": delta.sum(axis=0),
        }  # BP3
        if not need_input_grad:
            return None, grads
        w = self.params["W"]
        if cache.x.flags.c_contiguous:
            return (delta @ w).reshape(cache.x_shape), grads  # (w^l)^T δ^l
        # The input was a view of a batch-innermost conv or pool output: hand ∂C/∂x back in that
        # memory order, computed as the transposed product, so the layer below reads it contiguously.
        return (w.T @ delta.T).T.reshape(cache.x_shape), grads

    def loss_and_delta(self, loss: str, a: np.ndarray, y: np.ndarray, cache: DenseCache) -> tuple[float, np.ndarray]:
        """As the last layer: the loss C for labels ``y`` (N,) and δ^L = ∂C/∂z^L (N, units), from its output ``a``."""
        return loss_and_delta(loss, cache.z, a, y, self.act, cache.act)

    def signature(self, cache):
        s = self.act.signature(cache.act)
        return [] if s is None else [s]


class _Pool(Layer):
    """Shared window bookkeeping of the pooling layers.

    Pools are computed tap by tap: ``_tap(x, u, v)`` is the strided view of
    the entries that offset ``(u, v)`` of every window reads, shape (N, C, Ho, Wo).
    That needs no copy of the windows and works for any size and stride; with
    the batch innermost in memory (docs/engine-speed.md) each tap is a run of
    contiguous stretches of N numbers.  Results keep their input's memory order.
    """

    def __init__(self, size, stride):
        super().__init__()
        self.size, self.stride = size, stride

    def _tap(self, x, u, v):
        s = self.stride
        ho = output_size(x.shape[2], self.size, s)
        wo = output_size(x.shape[3], self.size, s)
        return x[:, :, u : u + s * (ho - 1) + 1 : s, v : v + s * (wo - 1) + 1 : s]

    def _taps(self):
        """Every window offset (u, v), row-major."""
        return ((u, v) for u in range(self.size) for v in range(self.size))

    def _scatter(self, contributions, grad):
        """∂C/∂x into ``grad`` (zeros of the input's shape): each ``(u, v, contribution)`` (N, C, Ho, Wo)
        added back where tap (u, v) read.

        Overlapping windows (stride < size) accumulate; floored-away rows or
        columns keep their zero.
        """
        for u, v, contribution in contributions:
            self._tap(grad, u, v)[...] += contribution
        return grad


class MaxPoolCache(NamedTuple):
    """What a max-pool's backward pass needs from its forward pass."""

    shape: tuple[int, ...]  # the input's shape
    winners: np.ndarray  # each window's winning tap u·size + v, (N, C, Ho, Wo) uint8
    then: Activation | None  # the ReLU applied after the max (the conv layer's, deferred), or None
    then_cache: Any  # that activation's cache


class MaxPool(_Pool):
    """Max over each size×size window; the delta goes back to the argmax only.

    Ties go to the first tap in row-major order, as in PyTorch.  The forward
    pass records each window's winning tap ``u·size + v`` (one byte per output,
    instead of keeping the input to search it again); the cache is a
    :class:`MaxPoolCache`.
    """

    def forward(self, x, training, then: Activation | None = None):
        """x: (N, C, H, W) → (N, C, Ho, Wo), and a :class:`MaxPoolCache`.

        ``then``: the ReLU of the conv layer below, applied to the pooled output instead of to that
        layer's whole output (``Conv2D.forward(activate=False)``).  ReLU is non-decreasing and exact,
        so max and ReLU commute: the output is the same numbers, the winners are the same wherever the
        window's maximum is positive, and where it is not the gradient is zero either way; ReLU and
        its backward pass then touch a quarter of the entries (of a 2×2 pool).
        """
        taps = [self._tap(x, u, v) for u, v in self._taps()]
        out = np.empty_like(taps[0])  # in the input's memory order
        winners = np.empty_like(out, dtype=np.uint8)

        def max_block(lo, hi):  # channels lo..hi
            t = [tap[:, lo:hi] for tap in taps]
            o, won = out[:, lo:hi], winners[:, lo:hi]
            if len(t) == 1:
                np.copyto(o, t[0])
                won.fill(0)
                return
            np.maximum(t[0], t[1], out=o)
            for tap in t[2:]:
                np.maximum(o, tap, out=o)
            # The winner is the first tap equal to the maximum, i.e. the number of taps before it that
            # are not: count them with a running "no tap so far was the maximum".  All uint8 (bool
            # arrays viewed as bytes), because mixed-type operations make NumPy buffer strided operands.
            missed = (t[0] != o).view(np.uint8)
            np.copyto(won, missed)
            for tap in t[1:-1]:
                missed &= (tap != o).view(np.uint8)
                won += missed

        pieces.over_pieces(max_block, out.shape[1], x.size)
        if then is None:
            return out, MaxPoolCache(x.shape, winners, None, None)
        out, then_cache = then.forward(out, out=out)
        return out, MaxPoolCache(x.shape, winners, then, then_cache)

    def backward(self, grad_out, cache, need_input_grad=True):
        """grad_out: (N, C, Ho, Wo) → ∂C/∂x (N, C, H, W) or None; no parameters."""
        if not need_input_grad:
            return None, {}
        shape, winners, then, then_cache = cache
        if then is not None:
            grad_out = then.backward(grad_out, then_cache)
        if self.stride == self.size:
            return self._tiled_backward(grad_out, shape, winners), {}
        grad = np.zeros_like(winners, dtype=grad_out.dtype, shape=shape)  # in the input's memory order
        return self._scatter(((u, v, grad_out * (winners == t)) for t, (u, v) in enumerate(self._taps())), grad), {}

    def _tiled_backward(self, grad_out, shape, winners):
        """∂C/∂x when the windows tile the input (stride = size): one pass, no accumulation.

        The covered part of the input, (N, C, Ho·k, Wo·k), is viewed as (N, C, Ho, k, Wo, k): window
        (i, j), tap (u, v).  Each entry gets ∂C/∂out of its window if it is that window's winner.
        """
        k, (n, c, ho, wo) = self.size, winners.shape
        h, w = shape[2:]
        covered = (h, w) == (ho * k, wo * k)
        make = np.empty_like if covered else np.zeros_like  # floored-away rows and columns get zero
        grad = make(winners, dtype=grad_out.dtype, shape=shape)  # in the input's memory order
        windows = grad[:, :, : ho * k, : wo * k].reshape(n, c, ho, k, wo, k)
        tap = np.arange(k * k, dtype=winners.dtype).reshape(k, 1, k)  # u·k + v on the (u, ·, v) axes
        won = np.empty_like(windows, dtype=bool)
        np.equal(winners[:, :, :, None, :, None], tap, out=won)
        np.multiply(grad_out[:, :, :, None, :, None], won, out=windows)
        return grad

    def signature(self, cache):
        return [cache.winners] if cache.then is None else [cache.winners, cache.then.signature(cache.then_cache)]


class AvgPool(_Pool):
    """Mean over each size×size window; the delta is shared equally by the window.

    The cache is the input's shape and dtype.
    """

    def forward(self, x, training):
        """x: (N, C, H, W) → (N, C, Ho, Wo), and the cache ``(x.shape, x.dtype)``."""
        out = self._tap(x, 0, 0).copy(order="K")
        for u, v in self._taps():
            if u or v:
                out += self._tap(x, u, v)
        out /= self.size * self.size
        return out, (x.shape, x.dtype)

    def backward(self, grad_out, cache, need_input_grad=True):
        """grad_out: (N, C, Ho, Wo) → ∂C/∂x (N, C, H, W) or None; no parameters."""
        if not need_input_grad:
            return None, {}
        shape, dtype = cache
        share = grad_out / (self.size * self.size)
        return self._scatter(
            ((u, v, share) for u, v in self._taps()), np.zeros_like(share, dtype=dtype, shape=shape)
        ), {}


class Dropout(Layer):
    """Inverted dropout: zero each unit with probability ``rate`` in training, scale the rest by 1/(1−rate).

    The masks are drawn from the network's generator, in forward order; the
    cache is the mask (None when nothing was dropped).
    """

    def __init__(self, rate, rng):
        super().__init__()
        self.rate, self.rng = rate, rng

    def forward(self, x, training):
        """x: (N, C, H, W) or (N, D) → the same shape, and the mask (or None)."""
        if not training or self.rate == 0:
            return x, None
        keep = 1.0 - self.rate
        mask = (self.rng.random(x.shape) < keep).astype(x.dtype) / np.asarray(keep, dtype=x.dtype)
        return x * mask, mask

    def backward(self, grad_out, cache, need_input_grad=True):
        """grad_out: the input's shape → ∂C/∂x, the same shape; no parameters."""
        return (grad_out if cache is None else grad_out * cache), {}


class Flatten(Layer):
    """(N, C, H, W) → (N, C·H·W) in C, H, W order.  The cache is the input's shape."""

    def forward(self, x, training):
        """x: (N, C, H, W) → (N, C·H·W), and the cache ``x.shape``."""
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, grad_out, cache, need_input_grad=True):
        """grad_out: (N, C·H·W) → ∂C/∂x (N, C, H, W); no parameters."""
        return grad_out.reshape(cache), {}

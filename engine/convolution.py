"""The three operations of a convolutional layer, named as they are derived.

Notation of Nielsen, *Neural Networks and Deep Learning*, ch. 2 and 6: layer
``l`` has weighted input ``z^l = w^l ⋆ a^{l-1} + b^l`` and activation
``a^l = σ(z^l)``; its error is ``δ^l = ∂C/∂z^l``.  For a fully connected layer
the backpropagation equations are

    δ^l      = ((w^{l+1})^T δ^{l+1}) ⊙ σ'(z^l)          (BP2)
    ∂C/∂w^l  = a^{l-1} δ^l                                (BP4)
    ∂C/∂b^l  = δ^l                                        (BP3)

and for a convolutional layer the matrix product becomes a correlation:

    z^l        = a^{l-1} ⋆ w^l + b^l                      forward: valid cross-correlation
    δ^{l-1}    = (δ^l ∗_full rot180(w^l)) ⊙ σ'(z^{l-1})   backward: full convolution, kernel rotated 180°
    ∂C/∂w^l    = a^{l-1} ⋆ δ^l                            weight gradient: valid correlation
    ∂C/∂b^l    = Σ_{x,y} δ^l

Each operation exists twice: a plain-loop ``*_reference`` that reads like the
equation, and the fast vectorised version (stride-trick windows + BLAS GEMMs
over the whole batch) that the network uses.  The tests hold the two equal.

Shapes: inputs ``(N, C, H, W)``, kernels ``(F, C, kh, kw)`` (PyTorch's
``Conv2d`` layout), deltas ``(N, F, Ho, Wo)``.  Padding is applied by the
caller (:func:`pad`) so that every function here is a *valid* operation on
the array it is given, exactly as in the derivation.

Memory order (docs/engine-speed.md).  The fast versions accept any strides, but
they are built around one layout: the batch axis innermost in memory, i.e. an
``(N, C, H, W)`` array whose memory is ``(C, H, W, N)`` (``x.transpose(1, 2, 3, 0)``
is C-contiguous; :func:`channels_major`).  Then every GEMM operand is a plain
reshape of an array that already exists: the im2col matrix is
``(C·kh·kw, Ho·Wo·N)``, the GEMM ``w (F, C·kh·kw) @ cols`` gives z directly in
that layout, δ in that layout *is* the ``(F, Ho·Wo·N)`` matrix both backward
GEMMs read, and the copies and tap-wise additions around the GEMMs run over
contiguous stretches of ``Wo·N`` numbers instead of single rows of ``Wo``.
Returned arrays are ``(N, ...)`` views of such memory; the layers pass them on
as they are, so the layout survives from one layer to the next.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import allocator
from .shapes import output_size

# A step's temporaries are reused by the next step instead of being faulted in afresh (engine/allocator.py).
allocator.keep_freed_memory()

__all__ = [
    "pad",
    "unpad",
    "dilate",
    "rot180",
    "output_size",
    "channels_major",
    "im2col",
    "delta_rows",
    "full_padding",
    "correlate_valid",
    "correlate_valid_reference",
    "convolve_full_rotated",
    "convolve_full_rotated_reference",
    "weight_gradient",
    "weight_gradient_reference",
]


def channels_major(x: np.ndarray) -> np.ndarray:
    """``x`` (N, C, H, W) with its memory in (C, H, W, N) order, the engine's layout (a copy only if it is not)."""
    return np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)


def _zeros_channels_major(shape: tuple[int, int, int, int], dtype) -> np.ndarray:
    """Zeros of shape (N, C, H, W) laid out in memory as (C, H, W, N)."""
    n, c, h, w = shape
    return np.zeros((c, h, w, n), dtype=dtype).transpose(3, 0, 1, 2)


def pad(x: np.ndarray, padding: int) -> np.ndarray:
    """Zero-pad the two spatial axes of ``(N, C, H, W)`` by ``padding`` on each side (in the engine's layout)."""
    if padding == 0:
        return x
    n, c, h, w = x.shape
    out = _zeros_channels_major((n, c, h + 2 * padding, w + 2 * padding), x.dtype)
    out[:, :, padding : padding + h, padding : padding + w] = x
    return out


def unpad(x: np.ndarray, padding: int) -> np.ndarray:
    """Crop ``padding`` from each side of the spatial axes (the inverse of :func:`pad`)."""
    if padding == 0:
        return x
    return x[:, :, padding:-padding, padding:-padding]


def rot180(kernel: np.ndarray) -> np.ndarray:
    """The kernel rotated by 180° in its two spatial axes: ``rot180(w)[f, c, u, v] = w[f, c, kh−1−u, kw−1−v]``."""
    return kernel[..., ::-1, ::-1]


def dilate(delta: np.ndarray, stride: int) -> np.ndarray:
    """Insert ``stride − 1`` zeros between neighbouring entries of the spatial axes.

    With stride ``s`` the forward pass only visits every ``s``-th window, so the
    delta of a strided layer is the delta of a stride-1 layer with the skipped
    positions set to zero.  ``(N, F, Ho, Wo) → (N, F, (Ho−1)s+1, (Wo−1)s+1)``.
    """
    if stride == 1:
        return delta
    n, f, ho, wo = delta.shape
    out = np.zeros((n, f, (ho - 1) * stride + 1, (wo - 1) * stride + 1), dtype=delta.dtype)
    out[:, :, ::stride, ::stride] = delta
    return out


def im2col(x: np.ndarray, kh: int, kw: int, stride: int = 1) -> np.ndarray:
    """Lay every window of ``x`` out as a column: ``(C·kh·kw, Ho·Wo·N)``.

    Row ``c·kh·kw + u·kw + v`` holds ``x[n, c, i·s+u, j·s+v]`` for every output
    position and sample ``(i, j, n)`` (in that order, the sample fastest); this
    turns a correlation over the whole batch into one matrix product with the
    kernel reshaped to ``(F, C·kh·kw)``.
    """
    xc = channels_major(x).transpose(1, 2, 3, 0)  # (C, H, W, N), C-contiguous
    c, h, w, n = xc.shape
    ho, wo = output_size(h, kh, stride), output_size(w, kw, stride)
    sc, sh, sw, sn = xc.strides
    # Every (c, u, v) row is the input shifted by (u, v): with the batch innermost that is a
    # copy of Wo·N contiguous numbers per output row (stride 1), not of Wo.
    windows = as_strided(xc, (c, kh, kw, ho, wo, n), (sc, sh, sw, sh * stride, sw * stride, sn), writeable=False)
    cols = np.empty(windows.shape, dtype=x.dtype)
    np.copyto(cols, windows)
    return cols.reshape(c * kh * kw, ho * wo * n)


# --- forward: z = a ⋆ w (valid cross-correlation) ------------------------------------------


def correlate_valid_reference(x: np.ndarray, w: np.ndarray, stride: int = 1) -> np.ndarray:
    """Valid cross-correlation, as a loop: ``z[n,f,i,j] = Σ_{c,u,v} x[n,c,i·s+u,j·s+v] · w[f,c,u,v]``.

    x: (N, C, H, W), w: (F, C, kh, kw) → (N, F, Ho, Wo).
    """
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    ho, wo = output_size(h, kh, stride), output_size(wd, kw, stride)
    z = np.zeros((n, f, ho, wo), dtype=np.result_type(x, w))
    for i in range(ho):
        for j in range(wo):
            window = x[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]  # (N, C, kh, kw)
            for k in range(f):
                z[:, k, i, j] = (window * w[k]).sum(axis=(1, 2, 3))
    return z


def correlate_valid(x: np.ndarray, w: np.ndarray, stride: int = 1, cols: np.ndarray | None = None) -> np.ndarray:
    """Valid cross-correlation ``x ⋆ w`` (fast): one GEMM over the im2col matrix of the whole batch.

    x: (N, C, H, W), w: (F, C, kh, kw) → (N, F, Ho, Wo).  ``cols`` may pass a
    precomputed ``im2col(x, kh, kw, stride)`` (the layer keeps it for the
    weight gradient).
    """
    f, c, kh, kw = w.shape
    n, _, h, wd = x.shape
    ho, wo = output_size(h, kh, stride), output_size(wd, kw, stride)
    if cols is None:
        cols = im2col(x, kh, kw, stride)
    z = w.reshape(f, c * kh * kw) @ cols  # (F, Ho·Wo·N)
    return z.reshape(f, ho, wo, n).transpose(3, 0, 1, 2)  # (N, F, Ho, Wo), a view: no copy


#: Bytes of tap maps :func:`convolve_full_rotated` computes per GEMM (at least one row of δ's positions):
#: glibc's mmap threshold as engine/allocator.py sets it, so the block comes from the heap and is reused.
TAPS_BLOCK = 32 << 20


# --- backward to the input: δ^{l-1} = δ^l ∗_full rot180(w) -------------------------------


def full_padding(delta: np.ndarray, stride: int, kh: int, kw: int, in_shape: tuple[int, int]) -> np.ndarray:
    """Dilate the delta by the stride and zero-pad it so that a *valid* correlation
    with a kh×kw kernel gives the full convolution, of spatial size ``in_shape``.

    The full convolution has size ``(Ho−1)s + k``; when the forward pass floored
    away rows or columns of the input, those got no gradient: they are the extra
    zeros padded at the bottom and right.
    """
    d = dilate(delta, stride)
    h, w = in_shape
    extra_h = h - ((delta.shape[2] - 1) * stride + kh)
    extra_w = w - ((delta.shape[3] - 1) * stride + kw)
    return np.pad(d, ((0, 0), (0, 0), (kh - 1, kh - 1 + extra_h), (kw - 1, kw - 1 + extra_w)))


def convolve_full_rotated_reference(
    delta: np.ndarray, w_rot: np.ndarray, stride: int, in_shape: tuple[int, int]
) -> np.ndarray:
    """The error passed back, as a loop: full convolution of δ with the rotated kernel.

    ``δ^{l-1}[n,c,y,x] = Σ_{f,u,v} δ̃[n,f,y+u,x+v] · rot180(w)[f,c,u,v]`` where
    ``δ̃`` is δ dilated by the stride and zero-padded by ``k−1`` (the "full" mode).
    Call with ``w_rot = rot180(w)``.  delta: (N, F, Ho, Wo), w_rot: (F, C, kh, kw),
    ``in_shape`` = (H, W) of the (padded) layer input → (N, C, H, W).
    """
    f, c, kh, kw = w_rot.shape
    d = full_padding(delta, stride, kh, kw, in_shape)
    n = delta.shape[0]
    h, wd = in_shape
    out = np.zeros((n, c, h, wd), dtype=np.result_type(delta, w_rot))
    for y in range(h):
        for x in range(wd):
            window = d[:, :, y : y + kh, x : x + kw]  # (N, F, kh, kw)
            for ch in range(c):
                out[:, ch, y, x] = (window * w_rot[:, ch]).sum(axis=(1, 2, 3))
    return out


def delta_rows(delta: np.ndarray) -> np.ndarray:
    """δ (N, F, Ho, Wo) laid out as (F, Ho·Wo·N), the layout both backward GEMMs read.

    A view when δ is in the engine's layout (as the layers make it), else a copy.
    """
    return delta.transpose(1, 2, 3, 0).reshape(delta.shape[1], -1)


def convolve_full_rotated(delta: np.ndarray, w_rot: np.ndarray, stride: int, in_shape: tuple[int, int]) -> np.ndarray:
    """The error passed back (fast): ``δ^l ∗_full rot180(w)``, the sum of the reference, reordered.

    The reference sums ``δ̃[n,f,y+u,x+v] · w_rot[f,c,u,v]`` over ``f, u, v``,
    where ``δ̃`` is the dilated and (k−1)-padded delta, mostly zeros.  Here part
    of that sum is one GEMM and the rest are additions of its results at the
    offsets where the kernel meets the non-zero entries of ``δ̃``: kernel row
    ``u`` meets δ's row ``i`` at ``y = i·s + (kh−1−u)``, kernel column ``v`` its
    column ``j`` at ``x = j·s + (kw−1−v)``.

    - Stride 1: the GEMM sums over ``f`` and the kernel columns ``v``.  Its right
      operand ``D[(f, v), (i, x, n)]`` is δ's rows placed once per kernel column
      at the offset where that column meets them (zero elsewhere: the "full"
      padding along x only), and ``(w_rot)^T`` is laid out with rows ``(c, u)``;
      each of the ``kh`` row maps is then added at its row offset.
    - Stride > 1: D would be mostly the dilation's zeros, so the GEMM sums over
      ``f`` alone, ``(w_rot)^T δ`` (BP2's transpose) with rows ``(c, u, v)``,
      and each of the ``kh·kw`` tap maps is added at its offset.

    Either way no padding row is multiplied.  Call with ``w_rot = rot180(w)``.
    delta: (N, F, Ho, Wo) → (N, C, H, W), ``in_shape`` = (H, W) of the (padded) layer input.
    """
    f, c, kh, kw = w_rot.shape
    n, _, ho, wo = delta.shape
    h, wd = in_shape
    dm = delta.transpose(1, 2, 3, 0)  # (F, Ho, Wo, N): a view in the engine's layout
    out = np.zeros((c, h, wd, n), dtype=np.result_type(w_rot, delta))  # δ^{l-1}, batch innermost
    s = stride
    if s == 1:
        w_t = np.ascontiguousarray(w_rot.transpose(1, 2, 0, 3)).reshape(c * kh, f * kw)  # rows (c, u), cols (f, v)
        per_row = (f * kw + c * kh) * wd * n * out.itemsize  # D and the row maps, both alive in the GEMM
    else:
        w_t = np.ascontiguousarray(w_rot.transpose(1, 2, 3, 0)).reshape(c * kh * kw, f)  # rows (c, u, v)
        per_row = c * kh * kw * wo * n * out.itemsize
        rows = delta_rows(delta)  # (F, Ho·Wo·N)
    # A block of δ's rows at a time, so that the temporaries stay under 32 MiB (above, they would be
    # mapped and faulted in afresh every step).  Each entry of out still receives its terms in the
    # same order.
    block = max(1, TAPS_BLOCK // per_row)
    for i0 in range(0, ho, block):
        i1 = min(i0 + block, ho)
        rows_out = s * (i1 - i0 - 1) + 1  # the rows of out one row offset covers
        if s == 1:
            d = np.empty((f, kw, i1 - i0, wd, n), dtype=out.dtype)
            for v in range(kw):
                x0 = kw - 1 - v
                d[:, v, :, :x0] = 0
                d[:, v, :, x0 : x0 + wo] = dm[:, i0:i1]
                d[:, v, :, x0 + wo :] = 0
            maps = (w_t @ d.reshape(f * kw, -1)).reshape(c, kh, i1 - i0, wd, n)  # Σ over f and v
            del d
            for u in range(kh):
                y0 = kh - 1 - u + i0
                out[:, y0 : y0 + rows_out] += maps[:, u]
        else:
            maps = (w_t @ rows[:, i0 * wo * n : i1 * wo * n]).reshape(c, kh, kw, i1 - i0, wo, n)  # Σ over f
            for u in range(kh):
                for v in range(kw):
                    y0, x0 = kh - 1 - u + s * i0, kw - 1 - v
                    out[:, y0 : y0 + rows_out : s, x0 : x0 + s * (wo - 1) + 1 : s] += maps[:, u, v]
        del maps
    return out.transpose(3, 0, 1, 2)


# --- weight gradient: ∂C/∂w = a ⋆ δ (valid correlation of input and delta) -----------------


def weight_gradient_reference(
    x: np.ndarray, delta: np.ndarray, stride: int, kernel_shape: tuple[int, int]
) -> np.ndarray:
    """∂C/∂w as a loop: valid correlation of the layer input with the (dilated) delta.

    ``∂C/∂w[f,c,u,v] = Σ_{n,i,j} x[n,c,i·s+u,j·s+v] · δ[n,f,i,j]``, summed over the batch.
    x: (N, C, H, W) padded input, delta: (N, F, Ho, Wo) → (F, C, kh, kw).
    """
    kh, kw = kernel_shape
    d = dilate(delta, stride)
    dh, dw = d.shape[2], d.shape[3]
    n, c = x.shape[:2]
    f = delta.shape[1]
    grad = np.zeros((f, c, kh, kw), dtype=np.result_type(x, delta))
    for u in range(kh):
        for v in range(kw):
            patch = x[:, :, u : u + dh, v : v + dw]  # (N, C, dh, dw): the inputs that met w[., ., u, v]
            for k in range(f):
                grad[k, :, u, v] = (patch * d[:, k : k + 1]).sum(axis=(0, 2, 3))
    return grad


def weight_gradient(
    x: np.ndarray | None,
    delta: np.ndarray,
    stride: int,
    kernel_shape: tuple[int, int],
    cols: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """∂C/∂w = a^{l-1} ⋆ δ^l (fast), one GEMM over batch and positions.

    The windows of the input that the forward pass met (``im2col``, reused
    from the forward pass when given as ``cols``, in which case ``x`` may be
    None) are correlated with the delta (``rows``: ``delta_rows(delta)``, if known).
    x: (N, C, H, W) padded input, delta: (N, F, Ho, Wo) → (F, C, kh, kw).
    """
    kh, kw = kernel_shape
    f = delta.shape[1]
    if cols is None:
        cols = im2col(x, kh, kw, stride)
    c = cols.shape[0] // (kh * kw)
    # Σ over positions and batch of δ (F, Ho·Wo·N) · cols^T (Ho·Wo·N, C·kh·kw): both operands have the
    # long summed axis contiguous, so BLAS reads them as they are (no transposed copy).  Computed as
    # the transpose of cols · δ^T (the same sums): OpenBLAS's float32 kernels run this orientation
    # 12–22 % faster on LeNet's shapes, float64 the same (docs/engine-speed.md).
    d = delta_rows(delta) if rows is None else rows
    return (cols @ d.T).T.reshape(f, c, kh, kw)

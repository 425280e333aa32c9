"""A backward trace for teaching: every array of one conv layer's backward pass.

For a small single-channel input and one kernel, it returns the input, the
kernel, the kernel rotated by 180°, the incoming delta δ^l, the outgoing delta
δ^{l-1} = δ^l ∗_full rot180(w), the weight gradient a^{l-1} ⋆ δ^l, and, for
contrast, the outgoing delta computed *without* the rotation.  Computed with
the loop references, which read like the equations.
"""

from __future__ import annotations

import numpy as np

from . import convolution as conv


def backward_trace(size: int = 5, kernel: int = 3, stride: int = 1, padding: int = 0, seed: int = 0) -> dict:
    """Arrays of one conv layer's backward pass, as nested lists (2-D, single channel).

    The incoming delta is the gradient of ``C = Σ z·g`` for a random ``g``, so
    every number is an exact function of the seed.
    """
    if not 1 <= kernel <= size + 2 * padding:
        raise ValueError(f"kernel {kernel} does not fit a {size}×{size} input with padding {padding}")
    rng = np.random.default_rng(seed)
    # Small integers keep the arithmetic easy to follow by hand.
    x = rng.integers(0, 4, (1, 1, size, size)).astype(np.float64)
    w = rng.integers(-2, 3, (1, 1, kernel, kernel)).astype(np.float64)
    while np.array_equal(w, conv.rot180(w)):  # a symmetric kernel would hide the rotation
        w = rng.integers(-2, 3, (1, 1, kernel, kernel)).astype(np.float64)
    xp = conv.pad(x, padding)
    z = conv.correlate_valid_reference(xp, w, stride)
    delta = rng.integers(-2, 3, z.shape).astype(np.float64)
    in_shape = xp.shape[2:]
    delta_out = conv.unpad(conv.convolve_full_rotated_reference(delta, conv.rot180(w), stride, in_shape), padding)
    unrotated = conv.unpad(conv.convolve_full_rotated_reference(delta, w, stride, in_shape), padding)
    grad_w = conv.weight_gradient_reference(xp, delta, stride, (kernel, kernel))
    as_list = lambda a: a[0, 0].tolist()  # noqa: E731
    return {
        "stride": stride,
        "padding": padding,
        "input": as_list(x),
        "kernel": as_list(w),
        "kernel_rotated": as_list(conv.rot180(w)),
        "output": as_list(z),
        "delta_in": as_list(delta),
        "delta_in_padded": as_list(conv.full_padding(delta, stride, kernel, kernel, in_shape)),
        "delta_out": as_list(delta_out),
        "delta_out_unrotated": as_list(unrotated),
        "weight_gradient": as_list(grad_w),
        "equations": {
            "forward": "z^l = a^{l-1} ⋆ w^l + b^l",
            "delta_out": "δ^{l-1} = δ^l ∗_full rot180(w^l)  (then ⊙ σ'(z^{l-1}))",
            "weight_gradient": "∂C/∂w^l = a^{l-1} ⋆ δ^l",
        },
    }

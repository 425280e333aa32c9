"""Tests of engine/convolution.py: the derivation-named conv ops.

Each op's fast version is held equal to its plain-loop ``*_reference`` and
both to PyTorch (``conv2d`` forward and its autograd gradients), over a seeded
list of random geometries: batch, channels, filters, odd and even sides,
non-square kernels, strides that floor away rows and columns, padding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.convolution import (
    convolve_full_rotated,
    convolve_full_rotated_reference,
    correlate_valid,
    correlate_valid_reference,
    dilate,
    im2col,
    output_size,
    pad,
    rot180,
    unpad,
    weight_gradient,
    weight_gradient_reference,
)
from tests.helpers import rel_err

FAST_VS_REFERENCE = {"rtol": 1e-10, "atol": 1e-12}
TORCH_FORWARD_RTOL = 1e-9
TORCH_GRAD_RTOL = 1e-7


def _make_configs(count: int = 25, seed: int = 20240611) -> list[dict]:
    """A seeded list of conv geometries whose output is at least 1×1.

    A few fixed corner cases come first (kernel = padded input, 1×1 kernel,
    stride 3 flooring rows and columns away, tall and wide kernels); the rest
    are random.
    """
    fixed = [
        dict(N=1, C=1, F=1, H=3, W=3, kh=3, kw=3, stride=1, padding=0),  # kernel covers the input: 1×1 output
        dict(N=2, C=3, F=4, H=5, W=4, kh=1, kw=1, stride=1, padding=0),  # 1×1 kernel
        dict(N=2, C=2, F=3, H=10, W=11, kh=2, kw=4, stride=3, padding=1),  # floored rows and columns
        dict(N=3, C=1, F=2, H=7, W=6, kh=5, kw=2, stride=2, padding=2),  # tall kernel, padding 2
        dict(N=1, C=3, F=1, H=4, W=9, kh=1, kw=5, stride=3, padding=0),  # wide kernel, stride 3
    ]
    rng = np.random.default_rng(seed)
    configs = list(fixed)
    while len(configs) < count:
        c = dict(
            N=int(rng.integers(1, 4)),
            C=int(rng.integers(1, 4)),
            F=int(rng.integers(1, 5)),
            H=int(rng.integers(3, 12)),
            W=int(rng.integers(3, 12)),
            kh=int(rng.integers(1, 6)),
            kw=int(rng.integers(1, 6)),
            stride=int(rng.integers(1, 4)),
            padding=int(rng.integers(0, 3)),
        )
        if (
            output_size(c["H"], c["kh"], c["stride"], c["padding"]) >= 1
            and output_size(c["W"], c["kw"], c["stride"], c["padding"]) >= 1
        ):
            configs.append(c)
    return configs


CONFIGS = _make_configs()


def _cid(c: dict) -> str:
    """A readable test id for a config."""
    return f"N{c['N']}C{c['C']}F{c['F']}-{c['H']}x{c['W']}-k{c['kh']}x{c['kw']}-s{c['stride']}-p{c['padding']}"


def _case(c: dict, seed: int):
    """Random float64 input x, kernel w and output delta for config ``c``; also the padded input."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((c["N"], c["C"], c["H"], c["W"]))
    w = rng.standard_normal((c["F"], c["C"], c["kh"], c["kw"]))
    xp = pad(x, c["padding"])
    ho = output_size(c["H"], c["kh"], c["stride"], c["padding"])
    wo = output_size(c["W"], c["kw"], c["stride"], c["padding"])
    delta = rng.standard_normal((c["N"], c["F"], ho, wo))
    return x, w, xp, delta


def _torch_conv(x: np.ndarray, w: np.ndarray, delta: np.ndarray, stride: int, padding: int):
    """PyTorch's forward conv2d and the autograd gradients of ``Σ out·delta`` w.r.t. x and w."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    out = torch.nn.functional.conv2d(xt, wt, stride=stride, padding=padding)
    out.backward(torch.from_numpy(delta))
    return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()


def test_configs_cover_the_interesting_geometries():
    """The seeded config list includes non-square kernels, every stride, padding, odd/even sides and floored rows."""
    assert len(CONFIGS) >= 25
    assert any(c["kh"] != c["kw"] for c in CONFIGS)
    assert {c["stride"] for c in CONFIGS} == {1, 2, 3}
    assert {c["padding"] for c in CONFIGS} == {0, 1, 2}
    assert any(c["H"] % 2 == 0 for c in CONFIGS) and any(c["H"] % 2 == 1 for c in CONFIGS)
    assert any((c["H"] + 2 * c["padding"] - c["kh"]) % c["stride"] for c in CONFIGS)  # rows floored away
    assert len({_cid(c) for c in CONFIGS}) == len(CONFIGS)


@pytest.mark.parametrize("c", CONFIGS, ids=_cid)
def test_correlate_valid_fast_equals_reference(c):
    """Forward z = a ⋆ w: the GEMM version equals the loop, with and without precomputed cols."""
    _, w, xp, _ = _case(c, 1)
    ref = correlate_valid_reference(xp, w, c["stride"])
    fast = correlate_valid(xp, w, c["stride"])
    assert (
        fast.shape
        == ref.shape
        == (
            c["N"],
            c["F"],
            output_size(c["H"], c["kh"], c["stride"], c["padding"]),
            output_size(c["W"], c["kw"], c["stride"], c["padding"]),
        )
    )
    np.testing.assert_allclose(fast, ref, **FAST_VS_REFERENCE)
    cols = im2col(xp, c["kh"], c["kw"], c["stride"])
    np.testing.assert_allclose(correlate_valid(xp, w, c["stride"], cols=cols), ref, **FAST_VS_REFERENCE)


@pytest.mark.parametrize("c", CONFIGS, ids=_cid)
def test_convolve_full_rotated_fast_equals_reference(c):
    """Backward δ^{l-1} = δ^l ∗_full rot180(w): the per-tap GEMM version equals the loop."""
    _, w, xp, delta = _case(c, 2)
    in_shape = xp.shape[2:]
    ref = convolve_full_rotated_reference(delta, rot180(w), c["stride"], in_shape)
    fast = convolve_full_rotated(delta, rot180(w), c["stride"], in_shape)
    assert fast.shape == ref.shape == xp.shape
    np.testing.assert_allclose(fast, ref, **FAST_VS_REFERENCE)


@pytest.mark.parametrize("stride", [1, 2])
def test_convolve_full_rotated_in_blocks_of_rows_gives_the_same_numbers(monkeypatch, stride):
    """Blocks of δ's rows (what keeps a batch-256 step's temporaries under 32 MiB) change no bit:
    one row at a time equals all rows at once, in both the stride-1 and the strided formulation."""
    import engine.convolution as convolution

    rng = np.random.default_rng(5)
    w = rng.standard_normal((6, 3, 3, 2))
    delta = rng.standard_normal((4, 6, 5, 7))
    in_shape = ((5 - 1) * stride + 3 + 1, (7 - 1) * stride + 2)  # a floored row at the bottom
    whole = convolve_full_rotated(delta, rot180(w), stride, in_shape)
    monkeypatch.setattr(convolution, "TAPS_BLOCK", 1)
    np.testing.assert_array_equal(convolve_full_rotated(delta, rot180(w), stride, in_shape), whole)
    ref = convolve_full_rotated_reference(delta, rot180(w), stride, in_shape)
    np.testing.assert_allclose(whole, ref, **FAST_VS_REFERENCE)


@pytest.mark.parametrize("c", CONFIGS, ids=_cid)
def test_weight_gradient_fast_equals_reference(c):
    """∂C/∂w = a ⋆ δ: the GEMM version equals the loop, with and without precomputed cols."""
    _, _, xp, delta = _case(c, 3)
    kernel = (c["kh"], c["kw"])
    ref = weight_gradient_reference(xp, delta, c["stride"], kernel)
    fast = weight_gradient(xp, delta, c["stride"], kernel)
    assert fast.shape == ref.shape == (c["F"], c["C"], c["kh"], c["kw"])
    np.testing.assert_allclose(fast, ref, **FAST_VS_REFERENCE)
    cols = im2col(xp, c["kh"], c["kw"], c["stride"])
    np.testing.assert_allclose(weight_gradient(None, delta, c["stride"], kernel, cols=cols), ref, **FAST_VS_REFERENCE)


@pytest.mark.parametrize("c", CONFIGS, ids=_cid)
def test_ops_equal_torch(c):
    """Fast and reference ops equal torch's conv2d forward and its autograd input and weight gradients."""
    x, w, xp, delta = _case(c, 4)
    s, p = c["stride"], c["padding"]
    t_out, t_dx, t_dw = _torch_conv(x, w, delta, s, p)

    for fn in (correlate_valid, correlate_valid_reference):
        z = fn(xp, w, s)
        assert z.shape == t_out.shape
        assert rel_err(z, t_out) <= TORCH_FORWARD_RTOL, fn.__name__

    for fn in (convolve_full_rotated, convolve_full_rotated_reference):
        dx = unpad(fn(delta, rot180(w), s, xp.shape[2:]), p)
        assert dx.shape == t_dx.shape
        assert rel_err(dx, t_dx) <= TORCH_GRAD_RTOL, fn.__name__

    for fn in (weight_gradient, weight_gradient_reference):
        dw = fn(xp, delta, s, (c["kh"], c["kw"]))
        assert dw.shape == t_dw.shape
        assert rel_err(dw, t_dw) <= TORCH_GRAD_RTOL, fn.__name__


@pytest.mark.parametrize(
    "c", [CONFIGS[2], CONFIGS[3], dict(N=2, C=2, F=3, H=7, W=8, kh=3, kw=2, stride=1, padding=1)], ids=_cid
)
def test_unrotated_kernel_gives_the_wrong_input_gradient(c):
    """The ablation: passing w instead of rot180(w) is far from the true gradient for a non-symmetric kernel,
    and exact for a kernel that is symmetric under the 180° rotation (so the rotation is the only difference)."""
    x, w, xp, delta = _case(c, 5)
    s, p = c["stride"], c["padding"]
    assert not np.allclose(w, rot180(w))
    _, t_dx, _ = _torch_conv(x, w, delta, s, p)
    for fn in (convolve_full_rotated, convolve_full_rotated_reference):
        wrong = unpad(fn(delta, w, s, xp.shape[2:]), p)
        assert rel_err(wrong, t_dx) > 0.05, fn.__name__
        right = unpad(fn(delta, rot180(w), s, xp.shape[2:]), p)
        assert rel_err(right, t_dx) <= TORCH_GRAD_RTOL, fn.__name__

    w_sym = w + rot180(w)
    _, t_dx_sym, _ = _torch_conv(x, w_sym, delta, s, p)
    unrotated = unpad(convolve_full_rotated(delta, w_sym, s, xp.shape[2:]), p)
    assert rel_err(unrotated, t_dx_sym) <= TORCH_GRAD_RTOL


def test_rot180_twice_is_identity_and_rotates_the_spatial_axes():
    """rot180 maps w[f,c,u,v] to w[f,c,kh−1−u,kw−1−v]; applied twice it is the identity."""
    w = np.random.default_rng(6).standard_normal((3, 2, 4, 3))
    r = rot180(w)
    assert r.shape == w.shape
    np.testing.assert_array_equal(rot180(r), w)
    for u in range(4):
        for v in range(3):
            np.testing.assert_array_equal(r[:, :, u, v], w[:, :, 3 - u, 2 - v])
    np.testing.assert_array_equal(r, np.rot90(w, 2, axes=(2, 3)))


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("ho,wo", [(1, 1), (1, 4), (3, 2), (4, 5)])
def test_dilate_shape_and_positions(stride, ho, wo):
    """dilate puts δ[i, j] at (i·s, j·s) of a ((Ho−1)s+1, (Wo−1)s+1) grid and zeros everywhere else."""
    delta = np.random.default_rng(7).uniform(1, 2, (2, 3, ho, wo))  # no zeros in δ itself
    d = dilate(delta, stride)
    assert d.shape == (2, 3, (ho - 1) * stride + 1, (wo - 1) * stride + 1)
    assert d.dtype == delta.dtype
    for i in range(ho):
        for j in range(wo):
            np.testing.assert_array_equal(d[:, :, i * stride, j * stride], delta[:, :, i, j])
    assert np.count_nonzero(d) == delta.size
    if stride == 1:
        np.testing.assert_array_equal(d, delta)


def test_pad_unpad_roundtrip():
    """unpad inverts pad, and pad adds zeros around the two spatial axes only."""
    x = np.random.default_rng(8).standard_normal((2, 3, 4, 5))
    for p in (0, 1, 2):
        xp = pad(x, p)
        assert xp.shape == (2, 3, 4 + 2 * p, 5 + 2 * p)
        np.testing.assert_array_equal(unpad(xp, p), x)
        assert np.abs(xp).sum() == pytest.approx(np.abs(x).sum())


def test_output_size_matches_torch():
    """output_size(size, kernel, stride, padding) is torch's conv2d output side over a grid of geometries."""
    checked = 0
    for size in range(1, 13):
        for kernel in range(1, 6):
            for stride in range(1, 4):
                for padding in range(0, 3):
                    if size + 2 * padding < kernel:
                        continue
                    out = torch.nn.functional.conv2d(
                        torch.zeros(1, 1, size, size + 1),
                        torch.zeros(1, 1, kernel, kernel),
                        stride=stride,
                        padding=padding,
                    )
                    assert out.shape[2] == output_size(size, kernel, stride, padding), (size, kernel, stride, padding)
                    assert out.shape[3] == output_size(size + 1, kernel, stride, padding), (
                        size,
                        kernel,
                        stride,
                        padding,
                    )
                    checked += 1
    assert checked > 400

"""The engine proves its own gradients: centred differences against backpropagation.

For every parameter tensor and for the input of every layer, each entry is
moved by ±eps and the loss recomputed in float64:
``n = (C(θ+eps) − C(θ−eps)) / 2eps``, compared with the analytic ``a`` by the
relative error ``|a − n| / max(|a| + |n|, tiny)`` (docs/reference/results.md).

Rounding: each loss evaluation is exact only to a few units in its last
place, so a centred difference cannot resolve gradients below about
``ulp(C) / eps`` (≈1e-10 for C≈1, eps=1e-6).  An entry fails when its
relative error is above the tolerance *and* its absolute difference is above
that noise floor (×64); ``max_relative_error`` is reported as results.md defines
it, over every entry that is not at a kink.

Kinks: ReLU and max-pool make the loss piecewise smooth.  If moving an entry
by ±eps flips the sign of a ReLU's input or moves a max-pool's argmax, the
centred difference straddles a kink and measures nothing about the
derivative, so such entries are counted as kinks and left out of the verdict.

``rotate_kernels=False`` runs the same check with the backward pass using the
kernel unrotated: it must fail, which shows the rotation is not a convention.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .constants import GRADCHECK_DEFAULTS, GRADCHECK_DTYPE
from .network import Network

TINY = 1e-12  # below this both gradients are zero for all that float64 can tell
TOLERANCE = 1e-6  # a float64 centred difference with eps=1e-6 lands far below this where smooth
NOISE_ULPS = 64  # rounding in one loss evaluation, in units of the loss's last place (generous)


def relative_error(analytic: np.ndarray, numeric: np.ndarray, tiny: float = TINY) -> np.ndarray:
    """``|a − n| / max(|a| + |n|, tiny)`` element-wise."""
    return np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), tiny)


def _same(sig_a: list[np.ndarray], sig_b: list[np.ndarray]) -> bool:
    return all(np.array_equal(p, q) for p, q in zip(sig_a, sig_b, strict=True))


class Stopped(Exception):
    """The check was asked to stop (its job was cancelled)."""


def _numeric(target: np.ndarray, loss_at: Callable[[], tuple[float, list]], eps: float, base_sig, should_stop):
    """Centred differences for every entry of ``target`` (changed in place and restored).

    ``loss_at()`` gives the loss and the kink signature at the current value
    of ``target``.  Returns the numeric gradient and a boolean mask of the
    entries at a kink.
    """
    numeric = np.zeros_like(target)
    kinks = np.zeros(target.shape, dtype=bool)
    flat, num_flat, kink_flat = target.reshape(-1), numeric.reshape(-1), kinks.reshape(-1)
    for k in range(flat.size):
        if should_stop is not None and k % 64 == 0 and should_stop():
            raise Stopped()
        old = flat[k]
        flat[k] = old + eps
        plus, sig_plus = loss_at()
        flat[k] = old - eps
        minus, sig_minus = loss_at()
        flat[k] = old
        num_flat[k] = (plus - minus) / (2 * eps)
        kink_flat[k] = not (_same(sig_plus, base_sig) and _same(sig_minus, base_sig))
    return numeric, kinks


def _entry(
    layer: int,
    param: str,
    analytic: np.ndarray,
    numeric: np.ndarray,
    kinks: np.ndarray,
    tolerance: float,
    noise_floor: float,
) -> dict:
    err = relative_error(analytic, numeric)
    err[kinks] = 0.0
    failures = (err > tolerance) & (np.abs(analytic - numeric) > noise_floor)
    worst = np.unravel_index(int(np.argmax(err)), err.shape) if err.size else ()
    return {
        "layer": layer,
        "param": param,
        "max_relative_error": float(err.max()) if err.size else 0.0,
        "worst_index": [int(i) for i in worst],
        "checked": int(err.size - kinks.sum()),
        "kinks": int(kinks.sum()),
        "failures": int(failures.sum()),
        "max_abs_gradient": float(np.abs(analytic).max()) if analytic.size else 0.0,
    }


def gradcheck(
    model_spec: dict,
    batch_size: int = GRADCHECK_DEFAULTS["batch_size"],
    eps: float = GRADCHECK_DEFAULTS["eps"],
    seed: int = GRADCHECK_DEFAULTS["seed"],
    rotate_kernels: bool = GRADCHECK_DEFAULTS["rotate_kernels"],
    tolerance: float = TOLERANCE,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """Check every gradient of the network of ``model_spec`` on a random batch (report: docs/reference/results.md).

    The batch is drawn from ``seed``: inputs uniform in [0, 1), labels uniform
    over the output units.  Dropout is off (``training=False``) so the loss is
    a deterministic function of the parameters.  ``should_stop`` is polled
    while it runs; if it returns True the check raises :class:`Stopped`.
    """
    net = Network.from_spec(model_spec, seed=seed, dtype=GRADCHECK_DTYPE)
    net.set_rotate_kernels(rotate_kernels)
    rng = np.random.default_rng([seed, 2])
    x = rng.random((batch_size, *net.input_shape))
    classes = net.plan[-1].out_shape[0]
    y = rng.integers(0, classes, size=batch_size)

    # Analytic: one backward pass, keeping the gradient of every layer's input.
    inputs = _layer_inputs(net, x)
    _, grads, input_grads = net.loss_and_all_gradients(x, y)
    _, caches = net.forward_cached(x)
    base_sig = [net.signature(caches[i:], start=i) for i in range(len(net.layers))]

    def loss_at(a: np.ndarray, start: int) -> tuple[float, list]:
        """The loss and the kink signature of layers ``start``.. with ``a`` fed to layer ``start``."""
        out, caches = net.forward_cached(a, start=start)
        return net.loss_and_delta(out, y, caches)[0], net.signature(caches, start)

    noise_floor = NOISE_ULPS * np.finfo(np.float64).eps * max(abs(loss_at(x, 0)[0]), 1.0) / eps
    judge = dict(tolerance=tolerance, noise_floor=noise_floor)

    layers = []
    for key, param in net.params.items():
        _, i, name = key.split(".")
        numeric, kinks = _numeric(param, lambda: loss_at(x, 0), eps, base_sig[0], should_stop)
        layers.append(_entry(int(i), name, grads[key], numeric, kinks, **judge))
    for i, a in enumerate(inputs):
        numeric, kinks = _numeric(a, lambda a=a, i=i: loss_at(a, i), eps, base_sig[i], should_stop)
        layers.append(_entry(i, "input", input_grads[i], numeric, kinks, **judge))
    layers.sort(key=lambda e: (e["layer"], ["W", "b", "input"].index(e["param"])))

    max_err = max((e["max_relative_error"] for e in layers), default=0.0)
    failures = sum(e["failures"] for e in layers)
    return {
        "passed": failures == 0,
        "max_relative_error": max_err,
        "rotate_kernels": rotate_kernels,
        "failures": failures,
        "tolerance": tolerance,
        "noise_floor": noise_floor,
        "eps": eps,
        "batch_size": batch_size,
        "kinks": int(sum(e["kinks"] for e in layers)),
        "layers": layers,
    }


def _layer_inputs(net: Network, x: np.ndarray) -> list[np.ndarray]:
    """The input of every layer for batch ``x`` (copies, so they can be perturbed)."""
    inputs, a = [], np.asarray(x, dtype=net.dtype)
    for layer in net.layers:
        inputs.append(a.copy())
        a, _ = layer.forward(a, False)
    return inputs

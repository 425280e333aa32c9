"""The engine proves its gradients: gradcheck passes with rotation, fails without, reports kinks."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from engine import convolution as conv
from engine import gradcheck, gradient_check
from engine.trace import backward_trace
from tests.helpers import example

SPECS = {
    "relu-maxpool": example("gradcheck")["model"],
    "strided-padded-sigmoid-quadratic": {
        "input_shape": [2, 9, 8],
        "layers": [
            {"type": "conv", "filters": 3, "kernel": [3, 2], "stride": 2, "padding": 1, "activation": "sigmoid"},
            {"type": "avgpool", "size": 2, "stride": 1},
            {"type": "conv", "filters": 2, "kernel": 2, "activation": "tanh"},
            {"type": "flatten"},
            {"type": "dense", "units": 4, "activation": "sigmoid"},
        ],
        "loss": "quadratic",
    },
    "sigmoid-cross-entropy": {
        "input_shape": [1, 7, 7],
        "layers": [
            {"type": "conv", "filters": 2, "kernel": 3, "activation": "linear"},
            {"type": "dropout", "rate": 0.5},
            {"type": "dense", "units": 6, "activation": "tanh"},
            {"type": "dense", "units": 3, "activation": "sigmoid"},
        ],
        "loss": "cross_entropy",
    },
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_gradients_pass_with_rotated_kernels(name):
    """Every parameter and every layer input agrees with centred differences."""
    report = gradcheck(SPECS[name], batch_size=2, eps=1e-6, seed=0)
    assert report["passed"], report
    assert report["max_relative_error"] < 1e-5
    n_conv = sum(layer["type"] == "conv" for layer in SPECS[name]["layers"])
    params = [(e["layer"], e["param"]) for e in report["layers"]]
    assert len([p for p in params if p[1] in ("W", "b")]) == 2 * (
        n_conv + sum(layer["type"] == "dense" for layer in SPECS[name]["layers"])
    )
    assert len([p for p in params if p[1] == "input"]) == len(SPECS[name]["layers"])


@pytest.mark.parametrize("name", sorted(SPECS))
def test_ablation_without_rotation_fails_loudly(name):
    """The backward pass with the kernel not rotated is wrong, by a lot."""
    report = gradcheck(SPECS[name], batch_size=2, eps=1e-6, seed=0, rotate_kernels=False)
    assert not report["passed"]
    assert report["rotate_kernels"] is False
    assert report["max_relative_error"] >= 1e-2
    # The last conv layer's own weights do not depend on the rotation; what lies below it does.
    first_input = next(e for e in report["layers"] if e["layer"] == 0 and e["param"] == "input")
    assert first_input["max_relative_error"] >= 1e-2


def test_kinks_are_detected_counted_and_excluded(monkeypatch):
    """ReLU zeros feeding a max-pool: a ±eps nudge moves the argmax; those entries are kinks.

    Counting them as failures would fail an otherwise correct check: their
    centred difference is not a derivative.
    """
    report = gradcheck(SPECS["relu-maxpool"], batch_size=2, eps=1e-6, seed=0)
    assert report["kinks"] > 0
    assert report["kinks"] == sum(e["kinks"] for e in report["layers"])
    assert report["passed"]

    gc = gradient_check
    real_entry = gc._entry
    seen = []

    def entry_counting_kinks(layer, param, analytic, numeric, kinks, **judge):
        # The same entry without the kink mask: kinked entries disagree grossly.
        seen.append(float(gc.relative_error(analytic, numeric)[kinks].max()) if kinks.any() else 0.0)
        return real_entry(layer, param, analytic, numeric, kinks, **judge)

    monkeypatch.setattr(gc, "_entry", entry_counting_kinks)
    gradcheck(SPECS["relu-maxpool"], batch_size=2, eps=1e-6, seed=0)
    assert max(seen) > 1e-3


def test_report_shape_matches_spec():
    """results.md: passed, max_relative_error, rotate_kernels, layers with layer/param/error/worst_index."""
    report = gradcheck(SPECS["sigmoid-cross-entropy"])
    assert set(report) >= {"passed", "max_relative_error", "rotate_kernels", "layers"}
    for e in report["layers"]:
        assert set(e) >= {"layer", "param", "max_relative_error", "worst_index"}
        assert e["param"] in ("W", "b", "input")
    w0 = next(e for e in report["layers"] if e["layer"] == 0 and e["param"] == "W")
    assert len(w0["worst_index"]) == 4


def test_backward_trace_shows_the_rotation():
    """The teaching trace: rotated kernel is the 180° turn, and the outgoing delta uses it."""
    t = backward_trace(size=5, kernel=3, seed=3)
    w, wr = np.array(t["kernel"]), np.array(t["kernel_rotated"])
    assert np.array_equal(wr, w[::-1, ::-1])
    assert not np.array_equal(np.array(t["delta_out"]), np.array(t["delta_out_unrotated"]))
    x = np.array(t["input"])[None, None]
    delta = np.array(t["delta_in"])[None, None]
    # The outgoing delta is the true gradient of C = Σ z·δ with respect to the input: check one entry numerically.
    z = lambda xx: float((conv.correlate_valid_reference(xx, w[None, None]) * delta).sum())  # noqa: E731
    bumped = x.copy()
    bumped[0, 0, 2, 1] += 1.0  # z is linear in x: a unit step gives the exact derivative
    assert z(bumped) - z(x) == pytest.approx(t["delta_out"][2][1])
    assert np.array(t["weight_gradient"]).shape == (3, 3)


def test_the_function_does_not_shadow_its_module():
    """``engine.gradcheck`` is the function (as the README imports it); its module has its own name."""
    import engine

    assert engine.gradcheck is gradient_check.gradcheck and callable(engine.gradcheck)
    assert sys.modules["engine.gradient_check"] is gradient_check
    assert "engine.gradcheck" not in sys.modules


def test_a_running_check_stops_when_asked():
    """A gradcheck job can be cancelled: the stop hook is polled between perturbations."""
    from engine.gradient_check import Stopped

    calls = []
    with pytest.raises(Stopped):
        gradcheck(SPECS["relu-maxpool"], should_stop=lambda: calls.append(1) or len(calls) > 2)
    assert len(calls) == 3

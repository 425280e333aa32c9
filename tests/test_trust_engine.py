"""Divergence triage and layer health in the engine (docs/trust.md)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from engine import Network, validate_job_spec
from engine.datasets import Dataset, load_builtin, split_dataset
from engine.jobs import Hooks, run_job
from engine.optimizers import make_optimizer
from engine.training import SNAPSHOT_EVERY, Trainer
from engine.watch import HISTORY_STEPS, Diverged, Watch, json_safe


def _spec(lr: float, epochs: int = 2, layers=None, loss: str = "quadratic", batch_size: int = 32) -> dict:
    layers = layers or [
        {"type": "flatten"},
        {"type": "dense", "units": 32, "activation": "relu"},
        {"type": "dense", "units": 10, "activation": "linear"},
    ]
    return validate_job_spec(
        {
            "type": "train",
            "name": "trust",
            "model": {"input_shape": [1, 8, 8], "layers": layers, "loss": loss},
            "data": {"dataset": "digits"},
            "train": {
                "epochs": epochs,
                "batch_size": batch_size,
                "seed": 0,
                "optimizer": {"type": "sgd", "lr": lr, "momentum": 0.9},
            },
        }
    )


def _run(spec):
    points = []
    outcome = run_job(spec, Hooks(on_metric=lambda *p: points.append(p)))
    return outcome, points


def test_learning_rate_far_too_large_ends_diverged_with_a_triage():
    outcome, points = _run(_spec(lr=5.0))
    assert outcome.status == "failed"
    assert outcome.error.startswith("diverged")
    t = outcome.triage
    json.dumps(t, allow_nan=False)  # JSON-safe all through
    assert t["phase"] in ("forward", "backward", "update")
    assert 0 <= t["layer"] < 3 and t["layer_type"] in ("flatten", "dense")
    assert f"layer {t['layer']}" in outcome.error and t["phase"] in outcome.error
    # It stopped in the step where it happened: the last train_loss point is that step, none after.
    steps = [s for name, s, _ in points if name == "train_loss"]
    assert steps[-1] == t["step"] and steps == list(range(1, t["step"] + 1))
    assert all(math.isfinite(v) for name, _, v in points[:-1] if name == "train_loss")
    # The ring buffer: bounded, ends with the diverging step, norms of every layer.
    assert 2 <= len(t["history"]) <= 17
    assert t["history"][-1]["step"] == t["step"]
    assert [r["step"] for r in t["history"]] == list(range(t["step"] - len(t["history"]) + 1, t["step"] + 1))
    assert {"activation", "delta", "grad", "weight"} <= set(t["history"][0]["layers"][2])
    gc = t["gradcheck"]
    assert gc["passed"] is True and gc["max_relative_error"] < 1e-6 and gc["at_step"] < t["step"]
    assert "learning rate" in t["hint"] and "5.0" in t["hint"]


def test_a_huge_input_scale_is_named_in_the_hint():
    spec = _spec(lr=0.1, epochs=1)
    ds = load_builtin("digits", 0)
    big = Dataset(ds.X * 1e30, ds.y, ds.classes, name="big")
    spec["data"]["dataset"] = "big"
    outcome = run_job(spec, Hooks(), resolve_dataset=lambda name: big)
    assert outcome.status == "failed" and outcome.error.startswith("diverged")
    assert "input scale" in outcome.triage["hint"]


def test_watch_names_the_first_layer_and_phase():
    w = Watch(3)
    w.begin(7, 0)
    w.activation(0, np.ones((2, 3), dtype=np.float32))
    with pytest.raises(Diverged) as info:
        w.activation(1, np.array([[1.0, np.inf]], dtype=np.float32))
    assert (info.value.step, info.value.layer, info.value.phase) == (7, 1, "forward")
    w.begin(8, 0)
    with pytest.raises(Diverged) as info:
        w.grads(2, {"W": np.ones(3), "b": np.array([np.nan])})
    assert (info.value.layer, info.value.phase, info.value.param) == (2, "backward", "b")
    w.begin(9, 0)
    with pytest.raises(Diverged) as info:
        w.weights({"layers.0.W": np.ones(2), "layers.2.W": np.array([-np.inf])})
    assert (info.value.layer, info.value.phase) == (2, "update")


def test_large_finite_float32_is_not_divergence():
    """A float32 sum of squares overflows for entries near 1e20, but the values themselves are finite."""
    w = Watch(1)
    w.begin(1, 0)
    with np.errstate(over="ignore"):  # the trainer runs its steps so
        w.activation(0, np.full(4, 1e20, dtype=np.float32))
    assert w.current["layers"][0]["activation"] == pytest.approx(2e20, rel=1e-6)


def test_json_safe_spells_non_finite_numbers():
    assert json_safe({"a": [np.float32(np.nan), math.inf, -math.inf, 1.5, np.int64(2)]}) == {
        "a": ["nan", "inf", "-inf", 1.5, 2]
    }


def test_layer_health_series_equal_the_engines_own_gradients_for_one_step():
    """One epoch of one batch: the series at step 1 are those of net.loss_and_gradients at the initial weights."""
    layers = [
        {"type": "conv", "filters": 4, "kernel": 3, "activation": "relu"},
        {"type": "maxpool", "size": 2},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ]
    spec = _spec(lr=0.05, epochs=1, layers=layers, loss="cross_entropy", batch_size=2048)
    outcome, points = _run(spec)
    assert outcome.status == "succeeded"
    got = {name: (step, value) for name, step, value in points if name.startswith("layers.")}
    assert set(got) == {f"layers.{i}.{s}" for i in (0, 2) for s in ("weight_norm", "grad_norm", "update_ratio")} | {
        "layers.0.dead_relu"
    }
    assert all(step == 1 for step, _ in got.values())

    # The same network, batch and order by hand.
    net = Network(spec["model"], seed=0, dtype="float32")
    w0 = {k: v.copy() for k, v in net.params.items()}
    splits = split_dataset(load_builtin("digits", 0), 0.2, 0.1, 0)
    x, y = splits["train"]
    order = np.random.default_rng([0, 1]).permutation(len(x))
    x, y = x[order].astype(np.float32), y[order]
    _, grads = net.loss_and_gradients(x, y, training=True)
    for i in (0, 2):
        g = grads[f"layers.{i}.W"]
        assert got[f"layers.{i}.grad_norm"][1] == pytest.approx(float(np.linalg.norm(g)), rel=1e-5)
        # Plain SGD's first step with momentum is w - lr g.
        w1 = w0[f"layers.{i}.W"] - 0.05 * g
        assert got[f"layers.{i}.weight_norm"][1] == pytest.approx(float(np.linalg.norm(w1)), rel=1e-5)
        ratio = np.linalg.norm(0.05 * g) / np.linalg.norm(w0[f"layers.{i}.W"])
        assert got[f"layers.{i}.update_ratio"][1] == pytest.approx(float(ratio), rel=1e-4)
    out, caches = net.forward_cached(x, training=True)
    alive = caches[0].act.any(axis=(0, 2, 3))
    assert got["layers.0.dead_relu"][1] == pytest.approx(1 - alive.mean())


class _WatchEveryStep(Trainer):
    """The trainer as it would be if every step ran under the full watch: the replay's yardstick."""

    def _step(self, x, y):
        return self._watched_step(x, y, health=False)[0]


def _diverge(trainer_class, lr=4.0, epochs=3):
    spec = _spec(lr=lr, epochs=epochs, batch_size=16)
    net = Network(spec["model"], seed=0, dtype="float32")
    trainer = trainer_class(
        net, make_optimizer(spec["train"]["optimizer"], net.params), epochs=epochs, batch_size=16, seed=0
    )
    x, y = split_dataset(load_builtin("digits", 0), 0.2, 0.1, 0)["train"]
    points = []
    with pytest.raises(Diverged) as info:
        trainer.run(x.astype(np.float32), y, on_metric=lambda *p: points.append(p))
    return info.value, trainer, points


def test_the_replay_finds_what_watching_every_step_finds():
    """The cheap test plus the replay from a snapshot names the same step, layer and phase, with the
    same per-layer norms of the steps before, as a full watch on every step; here the replay starts
    in the epoch before the diverging one, so it also re-draws the next epoch's shuffle."""
    exc, trainer, points = _diverge(Trainer)
    ref_exc, ref_trainer, ref_points = _diverge(_WatchEveryStep)
    where = lambda e: (e.step, e.epoch, e.layer, e.phase, e.quantity, e.param)  # noqa: E731
    assert where(exc) == where(ref_exc) and exc.epoch == 2
    replayed_from = trainer.snapshots[0]
    assert replayed_from.epoch == 0 and exc.step - replayed_from.step > SNAPSHOT_EVERY  # from epoch 1, the older one
    history, ref_history = trainer.watch.report_history(), ref_trainer.watch.report_history()
    assert len(history) == HISTORY_STEPS + 1 and history == ref_history
    assert points == ref_points
    assert trainer.last_finite[0] == ref_trainer.last_finite[0] == 79  # the end of epoch 1
    for key, value in trainer.last_finite[1].items():
        assert np.array_equal(value, ref_trainer.last_finite[1][key])


def test_a_divergence_the_replay_cannot_reproduce_is_reported_as_the_cheap_test_saw_it():
    """Non-deterministic input (a batch that is non-finite only when first read): no replayed step
    diverges, so the report names the loss of the last layer in the forward pass of the failing step."""

    class FlakyInputs:
        def __init__(self, x, poisoned_read):
            self.x, self.reads, self.poisoned_read = x, 0, poisoned_read

        def __len__(self):
            return len(self.x)

        def __getitem__(self, idx):
            self.reads += 1
            batch = self.x[idx].copy()
            if self.reads == self.poisoned_read:
                batch[0, 0, 0, 0] = np.inf
            return batch

    spec = _spec(lr=0.01, epochs=1, batch_size=16)
    net = Network(spec["model"], seed=0, dtype="float32")
    trainer = Trainer(net, make_optimizer(spec["train"]["optimizer"], net.params), epochs=1, batch_size=16, seed=0)
    x, y = split_dataset(load_builtin("digits", 0), 0.2, 0.1, 0)["train"]
    with pytest.raises(Diverged) as info:
        trainer.run(FlakyInputs(x.astype(np.float32), poisoned_read=20), y)
    e = info.value
    assert (e.step, e.layer, e.phase, e.quantity) == (20, 2, "forward", "loss")
    assert np.isinf(e.batch[0][0, 0, 0, 0])  # the batch the failing step read

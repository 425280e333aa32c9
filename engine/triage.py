"""The triage report of a diverged training run (docs/trust.md).

Built once, after :class:`~engine.watch.Diverged` stopped a run: where the
first non-finite value appeared, the per-layer norms of the last steps (the
watch's ring buffer), a spot gradient check at the last finite parameters
(is the backward pass right, or is the step too big?) and a plain-language
hint.  Everything in it is JSON-safe (non-finite numbers as strings).
"""

from __future__ import annotations

import math

import numpy as np

from .gradient_check import NOISE_ULPS, TOLERANCE, relative_error
from .network import Network
from .watch import Diverged, json_safe

SPOT_BATCH = 4  # samples of the diverging batch the spot check uses
SPOT_ENTRIES = 12  # entries checked per parameter tensor (the largest gradients, then random)
SPOT_EPS = 1e-6
INPUT_SCALE_LIMIT = 100.0  # |x| beyond this is an input-scale problem, not a learning-rate one
SATURATED = 0.9  # fraction of sigmoid/tanh outputs within 1e-3 of a bound that counts as saturated


def spot_gradcheck(
    model: dict,
    params: dict[str, np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    seed: int = 0,
    entries: int = SPOT_ENTRIES,
    eps: float = SPOT_EPS,
) -> dict:
    """engine.gradcheck's centred differences in float64 on a few entries of every parameter tensor.

    The network of ``model`` gets ``params``; the loss is that of batch (x, y)
    without dropout.  Checked are the ``entries`` largest analytic gradients
    of each tensor plus random others (a full check of a training-size model
    would take minutes).  Entries whose ±eps moves change a ReLU sign or a
    max-pool argmax are kinks and not judged, as in engine.gradcheck.
    """
    net = Network(model, seed=seed, dtype="float64")
    net.load_params({k: v.astype(np.float64) for k, v in params.items()})
    x = np.asarray(x, dtype=np.float64)
    loss, grads = net.loss_and_gradients(x, y)
    if not math.isfinite(loss):
        return {
            "passed": None,
            "loss": json_safe(loss),
            "reason": "the loss at the last finite parameters is itself not finite on this batch",
        }
    _, caches = net.forward_cached(x)
    base_sig = net.signature(caches)
    noise_floor = NOISE_ULPS * np.finfo(np.float64).eps * max(abs(loss), 1.0) / eps
    rng = np.random.default_rng([seed, 3])
    tensors, worst, failures, kinks = [], 0.0, 0, 0

    def loss_sig():
        out, c = net.forward_cached(x)
        return net.loss_and_delta(out, y, c)[0], net.signature(c)

    for key, param in net.params.items():
        flat, g = param.reshape(-1), grads[key].reshape(-1)
        order = np.argsort(-np.abs(g), kind="stable")
        pick = list(order[: entries // 2]) + list(
            rng.choice(g.size, size=min(g.size, entries - entries // 2), replace=False)
        )
        pick = list(dict.fromkeys(int(k) for k in pick))
        errs = []
        for k in pick:
            old = flat[k]
            flat[k] = old + eps
            plus, sig_p = loss_sig()
            flat[k] = old - eps
            minus, sig_m = loss_sig()
            flat[k] = old
            same = all(np.array_equal(a, b) for a, b in zip(sig_p, base_sig, strict=True)) and all(
                np.array_equal(a, b) for a, b in zip(sig_m, base_sig, strict=True)
            )
            if not same:
                kinks += 1
                continue
            numeric = (plus - minus) / (2 * eps)
            err = float(relative_error(np.asarray(g[k]), np.asarray(numeric)))
            if err > TOLERANCE and abs(g[k] - numeric) > noise_floor:
                failures += 1
            errs.append(err)
        tensor_worst = max(errs, default=0.0)
        worst = max(worst, tensor_worst)
        tensors.append(
            {
                "param": key,
                "checked": len(errs),
                "max_relative_error": tensor_worst,
                "grad_norm": float(np.linalg.norm(g)),
            }
        )
    grad_norm = math.sqrt(sum(float(np.dot(g.reshape(-1), g.reshape(-1))) for g in grads.values()))
    return json_safe(
        {
            "passed": failures == 0,
            "max_relative_error": worst,
            "failures": failures,
            "kinks": kinks,
            "tolerance": TOLERANCE,
            "eps": eps,
            "batch_size": int(len(x)),
            "loss": loss,
            "grad_norm": grad_norm,
            "params": tensors,
        }
    )


def _saturation(net: Network, x: np.ndarray) -> dict[int, float]:
    """Per sigmoid/tanh layer: the fraction of its outputs within 1e-3 of a bound, for batch ``x``."""
    out = {}
    a = np.asarray(x, dtype=net.dtype)
    for i, layer in enumerate(net.layers):
        a, _ = layer.forward(a, False)
        act = getattr(layer, "act", None)
        if act is not None and act.name in ("sigmoid", "tanh") and a.size:
            with np.errstate(all="ignore"):
                edge = np.abs(a) > 1 - 1e-3 if act.name == "tanh" else (a < 1e-3) | (a > 1 - 1e-3)
            out[i] = float(edge.mean())
    return out


def _growth(history: list[dict]) -> tuple[float | None, int]:
    """How many times the total gradient norm grew from the first to the last complete step of the buffer,
    and over how many steps."""
    totals = []
    for record in history:
        gs = [layer["grad"] for layer in record["layers"] if isinstance(layer["grad"], float)]
        if gs and record.get("loss") is not None:
            totals.append(math.sqrt(sum(g * g for g in gs)))
    if len(totals) < 2 or totals[0] == 0:
        return None, len(totals)
    return totals[-1] / totals[0], len(totals)


def build_triage(
    exc: Diverged, net: Network, spec: dict, history: list[dict], last_finite: tuple[int, dict[str, np.ndarray]] | None
) -> dict:
    """The triage report (docs/trust.md) for a run stopped by ``exc`` (with ``exc.batch`` attached by the trainer)."""
    train = spec["train"]
    lr = train["optimizer"].get("lr")
    x, y = getattr(exc, "batch", (None, None))
    layer_spec = spec["model"]["layers"][exc.layer]
    report = {
        "step": exc.step,
        "epoch": exc.epoch,
        "layer": exc.layer,
        "layer_type": layer_spec["type"],
        "phase": exc.phase,
        "quantity": exc.quantity,
        "param": exc.param,
        "learning_rate": lr,
        "optimizer": train["optimizer"]["type"],
        "history": history,
        "gradcheck": None,
        "hint": "",
    }
    hints = []
    if x is not None:
        with np.errstate(all="ignore"):
            finite_input = bool(np.isfinite(x).all())
            scale = float(np.abs(x[np.isfinite(x)]).max()) if x.size and np.isfinite(x).any() else 0.0
        report["input_max_abs"] = scale
        if not finite_input:
            hints.append("The input batch itself holds non-finite values: check the dataset.")
        elif scale > INPUT_SCALE_LIMIT:
            hints.append(
                f"Exploding input scale: inputs reach |x| = {scale:.3g}; scale them to [0, 1] or "
                "standardise them before training."
            )
    if last_finite is not None and x is not None and np.isfinite(x).all():
        step, params = last_finite
        gc = spot_gradcheck(spec["model"], params, x[:SPOT_BATCH], y[:SPOT_BATCH], seed=train["seed"])
        report["gradcheck"] = {"at_step": step, **gc}
        if gc.get("passed") is False:
            hints.append(
                f"The backward pass disagrees with finite differences at the last finite parameters "
                f"(max relative error {gc['max_relative_error']:.3g}): a gradient bug, not the step size."
            )
        check = Network(spec["model"], seed=train["seed"], dtype=net.dtype.name)
        check.load_params(params)
        for i, frac in _saturation(check, x[:64]).items():
            if frac >= SATURATED:
                act = spec["model"]["layers"][i].get("activation")
                hints.append(
                    f"Layer {i}'s {act} is saturated ({frac:.0%} of its outputs at a bound): its "
                    "gradient vanishes while the weights feeding it keep growing; lower the learning "
                    "rate, or use ReLU or a smaller initial scale."
                )
    growth, steps = _growth(history)
    if growth is not None:
        report["grad_norm_growth"] = growth
    if not any(h.startswith(("The input", "Exploding", "The backward")) for h in hints):
        if growth is not None and growth > 10:
            hints.append(
                f"The gradient norm grew ×{growth:.3g} over the last {steps} steps while the "
                f"learning rate stayed {lr}: each step overshoots and feeds the next; lower the "
                f"learning rate (try {lr / 10:g}) or clip gradients."
            )
        else:
            hints.append(
                f"The learning rate {lr} is too large for these gradients: one update moved the "
                f"weights past where the loss is finite; lower it (try {lr / 10:g})."
            )
    report["hint"] = " ".join(hints)
    return json_safe(report)

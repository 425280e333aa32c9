"""Run one job spec (docs/reference/job-spec.md) in this process: ``convlab run`` and the workers share this.

The spec must already be validated (``validate_job_spec``).  Everything the
caller wants to hear about goes through :class:`Hooks`: metric points,
progress, per-epoch checkpoints, and a stop flag that is read between
batches.  Nothing here knows about HTTP, Celery or databases.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .datasets import BUILTIN, Dataset, load_builtin, split_dataset
from .gradient_check import Stopped, gradcheck
from .network import Network
from .optimizers import make_optimizer
from .trace import backward_trace
from .training import Trainer
from .triage import build_triage
from .watch import Diverged, json_safe


@dataclass
class Hooks:
    """What a running job reports, and how it is told to stop.  Every hook is optional."""

    on_metric: Callable[[str, int, float], None] | None = None
    on_progress: Callable[[int, int, int], None] | None = None  # epoch, step, total_steps
    on_checkpoint: Callable[[bytes, int], None] | None = None  # checkpoint bytes, epochs done
    should_stop: Callable[[], bool] | None = None


@dataclass
class Outcome:
    """``status`` is ``succeeded``, ``cancelled`` or ``failed`` (a diverged run: ``error`` starts with
    ``diverged``, ``triage`` is its report); ``weights`` the ``weights.npz`` bytes of a train job."""

    status: str
    result: dict | None = None
    weights: bytes | None = None
    metrics: dict[str, list] = field(default_factory=dict)
    error: str | None = None
    triage: dict | None = None


def weights_to_bytes(params: dict[str, np.ndarray]) -> bytes:
    """``net.params`` as ``weights.npz`` (docs/reference/weights.md: same keys, PyTorch layouts)."""
    buf = io.BytesIO()
    np.savez(buf, **params)
    return buf.getvalue()


def weights_from_bytes(blob: bytes) -> dict[str, np.ndarray]:
    """Read a ``weights.npz`` back (never unpickles)."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_data(data: dict, seed: int, resolve: Callable[[str], Dataset] | None = None) -> Dataset:
    """The dataset a spec's ``data.dataset`` names: a built-in, or whatever ``resolve`` makes of the id."""
    name = data["dataset"]
    if name in BUILTIN:
        return load_builtin(name, seed)
    if resolve is None:
        raise ValueError(f"data.dataset: unknown dataset {name!r}")
    return resolve(name)


def run_job(
    spec: dict,
    hooks: Hooks | None = None,
    *,
    checkpoint: bytes | None = None,
    resolve_dataset: Callable[[str], Dataset] | None = None,
) -> Outcome:
    """Run a validated train or gradcheck spec to its end (or until ``hooks.should_stop``)."""
    hooks = hooks or Hooks()
    if spec["type"] == "gradcheck":
        gc = spec["gradcheck"]
        try:
            report = gradcheck(
                spec["model"],
                batch_size=gc["batch_size"],
                eps=gc["eps"],
                seed=gc["seed"],
                rotate_kernels=gc["rotate_kernels"],
                should_stop=hooks.should_stop,
            )
        except Stopped:
            return Outcome("cancelled")
        report["trace"] = _trace_for(spec["model"], gc["seed"])
        return Outcome("succeeded", result=json_safe(report))
    return _train(spec, hooks, checkpoint, resolve_dataset)


def _trace_for(model: dict, seed: int) -> dict:
    """The teaching trace with the first conv layer's kernel, stride and padding (3×3 if there is none)."""
    conv = next((layer for layer in model["layers"] if layer["type"] == "conv"), None)
    kernel, stride, padding = 3, 1, 0
    if conv is not None:
        kernel, stride, padding = max(conv["kernel"]), conv["stride"], min(conv["padding"], 2)
    kernel = min(kernel, 5)
    return backward_trace(size=kernel + 3, kernel=kernel, stride=min(stride, 2), padding=padding, seed=seed)


def _train(spec: dict, hooks: Hooks, checkpoint: bytes | None, resolve) -> Outcome:
    train = spec["train"]
    seed = train["seed"]
    net = Network(spec["model"], seed=seed, dtype=train["dtype"])
    ds = load_data(spec["data"], seed, resolve)
    splits = {
        k: (x.astype(net.dtype, copy=False), y)
        for k, (x, y) in split_dataset(
            ds, spec["data"]["test_fraction"], spec["data"]["validation_fraction"], seed
        ).items()
    }
    optimizer = make_optimizer(train["optimizer"], net.params, train["weight_decay"])
    trainer = Trainer(net, optimizer, epochs=train["epochs"], batch_size=train["batch_size"], seed=seed)
    if checkpoint is not None:
        trainer.restore(checkpoint)

    x_train, y_train = splits["train"]
    batches = trainer.batches_per_epoch(len(x_train))
    total_steps = batches * train["epochs"]
    last_progress = [0.0]

    def on_batch_end(t: Trainer):
        # Progress at most a few times a second: the hook may write to a database.
        now = time.monotonic()
        if hooks.on_progress and (now - last_progress[0] > 0.25 or t.state.batch == batches):
            last_progress[0] = now
            hooks.on_progress(t.state.epoch, t.state.step, total_steps)
        return bool(hooks.should_stop and hooks.should_stop())

    def on_epoch_end(t: Trainer):
        if hooks.on_progress:
            hooks.on_progress(t.state.epoch, t.state.step, total_steps)
        if hooks.on_checkpoint:
            hooks.on_checkpoint(t.checkpoint(), t.state.epoch)
        return bool(hooks.should_stop and hooks.should_stop())

    try:
        finished = trainer.run(
            x_train,
            y_train,
            *splits["val"],
            on_metric=hooks.on_metric,
            on_epoch_end=on_epoch_end,
            on_batch_end=on_batch_end,
        )
    except Diverged as exc:
        triage = build_triage(exc, net, spec, trainer.watch.report_history(), trainer.last_finite)
        return Outcome("failed", error=f"diverged: {exc}", triage=triage)
    if not finished:
        return Outcome("cancelled", result=None, weights=weights_to_bytes(net.params))
    return Outcome("succeeded", result=_train_result(net, trainer, splits), weights=weights_to_bytes(net.params))


def _train_result(net: Network, trainer: Trainer, splits: dict) -> dict:
    """The train result (docs/reference/results.md), from the test split (and the last validation)."""
    x_test, y_test = splits["test"]
    classes = net.plan[-1].out_shape[0]
    confusion = np.zeros((classes, classes), dtype=np.int64)
    test_loss = test_acc = None
    if len(x_test):
        test_loss, test_acc, pred = net.evaluate(x_test, y_test, trainer.batch_size)
        np.add.at(confusion, (y_test, pred), 1)
    return json_safe(
        {
            "test_accuracy": test_acc,
            "test_loss": test_loss,
            "val_accuracy": trainer.state.history.get("val_accuracy"),
            "val_loss": trainer.state.history.get("val_loss"),
            "train_loss": trainer.state.history.get("train_loss"),
            "epochs_completed": trainer.state.epoch,
            "train_seconds": round(trainer.state.seconds, 3),
            "parameter_count": net.parameter_count,
            "confusion_matrix": confusion.tolist(),
        }
    )

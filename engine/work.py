"""How much work a job spec asks for: an estimate of its floating-point operations, before it runs.

The service checks it against a user's compute limit at submit (docs/reference/job-spec.md,
"Compute estimate").  It is an estimate of the same kind as the batch-memory one
(:func:`engine.shapes.estimate_batch_memory`): from the shapes alone, counting the
multiply-adds of the layers that dominate (convolutions and dense layers as 2 operations per
multiply-add, pooling as one per window element, activations one per output), never running
anything.  Standard library only (the API imports it).
"""

from __future__ import annotations

import math

from .builtin_datasets import BUILTIN_DATASETS
from .shapes import LayerPlan, plan_model

__all__ = ["forward_flops", "estimate_job_flops", "TRAIN_PASSES"]

# A training step is a forward pass, the backward pass (input delta and weight gradient: about
# twice the forward's work) and the update; evaluation each epoch adds a forward pass over the
# held-out samples.  Counting every sample of the dataset in both bounds the splits from above.
TRAIN_PASSES = 4


def forward_flops(plans: list[LayerPlan]) -> int:
    """Operations of one forward pass of ONE sample through the planned layers."""
    total = 0
    for p in plans:
        out = math.prod(p.out_shape)
        t = p.layer["type"]
        if t == "conv":
            _, c, kh, kw = p.param_shapes["W"]
            total += 2 * out * c * kh * kw
        elif t == "dense":
            total += 2 * out * math.prod(p.in_shape)
        elif t in ("maxpool", "avgpool"):
            total += out * p.layer["size"] ** 2
        total += out  # activation, dropout mask, bias
    return total


def dataset_samples(dataset: str, uploaded: int | None = None) -> int | None:
    """Samples of a built-in dataset, or ``uploaded`` (an uploaded dataset's count) for another id."""
    info = BUILTIN_DATASETS.get(dataset)
    return info["samples"] if info is not None else uploaded


def estimate_job_flops(spec: dict, samples: int | None) -> int:
    """Estimated operations of a whole NORMALISED job spec (``samples``: its dataset's size).

    train: ``TRAIN_PASSES × forward × samples × epochs``.  gradcheck: two forward passes of the
    batch per perturbed entry (every parameter, and every entry of every layer's input for each
    sample of the batch) plus the analytic pass.
    """
    plans = plan_model(spec["model"])
    fwd = forward_flops(plans)
    if spec["type"] == "train":
        return TRAIN_PASSES * fwd * (samples or 0) * spec["train"]["epochs"]
    batch = spec["gradcheck"]["batch_size"]
    entries = sum(p.parameter_count for p in plans) + batch * sum(math.prod(p.in_shape) for p in plans)
    return (2 * entries + TRAIN_PASSES) * fwd * batch

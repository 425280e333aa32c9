"""Shape inference: what each layer of a model makes of its input, before any array exists.

The spec validator uses it to reject impossible geometry and to bound a
job's cost; :class:`engine.network.Network` builds its layers from the same
plans; the convolution and pooling code compute their output sides with
:func:`output_size`, the one copy of the formula.  Standard library only.

Shapes are per sample: spatial ``(C, H, W)`` or flat ``(D,)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from .constants import ITEMSIZE
from .errors import SpecError

__all__ = [
    "LayerPlan",
    "output_size",
    "infer_shapes",
    "plan_model",
    "parameter_count",
    "estimate_batch_memory",
    "layer_batch_elements",
    "multiply_adds",
    "SPATIAL_LAYERS",
    "PARAM_COPIES",
]

#: Layers that need a spatial (C, H, W) input.
SPATIAL_LAYERS = ("conv", "maxpool", "avgpool")
# Params, grads and up to two optimizer moments (Adam); the trainer's copy of the last epoch's
# parameters (triage) and its two divergence snapshots of params and moments (engine.training).
PARAM_COPIES = 4 + 1 + 2 * 3


def output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output side of a window sliding over ``size``: ``floor((size + 2·padding − kernel) / stride) + 1``.

    As PyTorch's ``Conv2d`` and ``MaxPool2d`` compute it; windows that would
    run past the (padded) edge are dropped.
    """
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class LayerPlan:
    """Shape inference result for one layer (per sample: (C, H, W) or (D,))."""

    index: int
    layer: dict
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    param_shapes: dict[str, tuple[int, ...]]

    @property
    def parameter_count(self) -> int:
        """Trainable scalars of this layer."""
        return sum(math.prod(s) for s in self.param_shapes.values())


def infer_shapes(model: Mapping, path: str = "model") -> tuple[list[LayerPlan], dict | None]:
    """Walk normalised layers; returns the plans and the first geometric error (``{"path", "message"}``) or None.

    Stops at the first error because later shapes are undefined after it.
    """
    plans: list[LayerPlan] = []
    shape = tuple(model["input_shape"])
    for i, layer in enumerate(model["layers"]):
        lpath = f"{path}.layers[{i}]"
        t = layer["type"]
        if t in SPATIAL_LAYERS and len(shape) != 3:
            return plans, {
                "path": lpath,
                "message": f"{t} needs a spatial (C, H, W) input, but the previous layer "
                f"outputs a flat vector of {shape[0]}",
            }
        params: dict[str, tuple[int, ...]] = {}
        if t == "conv":
            c, h, w = shape
            kh, kw = layer["kernel"]
            p, s = layer["padding"], layer["stride"]
            if kh > h + 2 * p or kw > w + 2 * p:
                return plans, {"path": f"{lpath}.kernel", "message": _too_large(kh, kw, h, w, p)}
            out = (layer["filters"], output_size(h, kh, s, p), output_size(w, kw, s, p))
            params = {"W": (layer["filters"], c, kh, kw), "b": (layer["filters"],)}
        elif t in ("maxpool", "avgpool"):
            c, h, w = shape
            k, s = layer["size"], layer["stride"]
            if k > h or k > w:
                return plans, {"path": f"{lpath}.size", "message": _too_large(k, k, h, w, 0)}
            out = (c, output_size(h, k, s), output_size(w, k, s))
        elif t == "dense":
            inputs = math.prod(shape)  # implicit flatten in (C, H, W) order
            out = (layer["units"],)
            params = {"W": (layer["units"], inputs), "b": (layer["units"],)}
        elif t == "flatten":
            out = (math.prod(shape),)
        else:  # dropout keeps the shape
            out = shape
        plans.append(LayerPlan(i, dict(layer), shape, out, params))
        shape = out
    return plans, None


def _side(h: int, w: int) -> str:
    return f"{h}×{w}"


def _too_large(kh: int, kw: int, h: int, w: int, padding: int) -> str:
    k = str(kh) if kh == kw else _side(kh, kw)
    if padding:
        return (
            f"{k} is larger than the {_side(h, w)} input with padding {padding} "
            f"({_side(h + 2 * padding, w + 2 * padding)})"
        )
    return f"{k} is larger than the {_side(h, w)} input"


def plan_model(model: dict) -> list[LayerPlan]:
    """Shape inference for a NORMALISED model (output of :func:`engine.spec.validate_model_spec`).

    One :class:`LayerPlan` per entry of ``model["layers"]``. Shapes are per
    sample: spatial ``(C, H, W)`` or flat ``(D,)``; a dense layer after a
    spatial layer flattens implicitly in (C, H, W) order, ``flatten`` makes
    ``(C*H*W,)``. Conv ``W`` is ``(F, C, kh, kw)``, dense ``W`` is ``(units, inputs)``.
    Raises :class:`SpecError` if the geometry is impossible.
    """
    plans, error = infer_shapes(model, "model")
    if error:
        raise SpecError([error])
    return plans


def parameter_count(model: dict) -> int:
    """Number of trainable scalars of a normalised model."""
    return sum(p.parameter_count for p in plan_model(model))


def layer_batch_elements(plan: LayerPlan, batch_size: int) -> int:
    """Array elements one layer holds for a batch (forward + backward), as :func:`estimate_batch_memory` counts them.

    Its input and output activations, and for a conv layer the im2col buffer
    of the forward pass (N·Ho·Wo·C·kh·kw) and of the backward full
    convolution (N·H·W·F·kh·kw, H, W the layer's input size).
    """
    n = batch_size
    elements = n * (math.prod(plan.in_shape) + math.prod(plan.out_shape))
    if plan.layer["type"] == "conv":
        f, c, kh, kw = plan.param_shapes["W"]
        _, h, w = plan.in_shape
        _, ho, wo = plan.out_shape
        elements += n * ho * wo * c * kh * kw
        elements += n * h * w * f * kh * kw
    return elements


def multiply_adds(plan: LayerPlan) -> int:
    """Multiply-adds of one layer's forward pass for one sample (conv and dense; other layers count 0).

    Conv: F·Ho·Wo·C·kh·kw; dense: units·inputs (as torchinfo's "Mult-Adds" counts the weight layers).
    """
    if plan.layer["type"] == "conv":
        f, c, kh, kw = plan.param_shapes["W"]
        _, ho, wo = plan.out_shape
        return f * ho * wo * c * kh * kw
    if plan.layer["type"] == "dense":
        return math.prod(plan.param_shapes["W"])
    return 0


def estimate_batch_memory(model: dict, batch_size: int, dtype: str) -> int:
    """Conservative bytes needed for one batch (forward + backward) of a normalised model.

    Per layer: :func:`layer_batch_elements` (activations and im2col buffers);
    all times the itemsize. Plus :data:`PARAM_COPIES` copies of the
    parameters (what the trainer holds besides the batch's arrays).
    """
    plans = plan_model(model)
    elements = sum(layer_batch_elements(p, batch_size) for p in plans)
    params = sum(p.parameter_count for p in plans)
    return (elements + PARAM_COPIES * params) * ITEMSIZE[dtype]

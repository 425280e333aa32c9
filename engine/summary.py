"""A model summary (as Keras' ``model.summary()``): each layer's output shape, parameters,
multiply-adds and memory per batch, with totals and the limits.

It is computed by the validator's own code: the spec is validated by
:func:`engine.spec.validate_job_spec` (its errors are the summary's errors),
layers are read by the validator's layer check and their shapes come from
:func:`engine.shapes.infer_shapes`; memory is :func:`engine.shapes.layer_batch_elements`,
the terms of :func:`engine.shapes.estimate_batch_memory` that the batch-memory
limit is checked against.  A spec that is not valid still gets a summary of
the layers that can be read, with every error attached to its layer, so an
editor can mark the offending one as the user types.

Standard library only, like :mod:`engine.spec`: the API process imports it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .constants import GRADCHECK_DEFAULTS, GRADCHECK_DTYPE, ITEMSIZE, TRAIN_DEFAULTS
from .errors import ErrorList, SpecError
from .fields import is_int
from .shapes import PARAM_COPIES, infer_shapes, layer_batch_elements, multiply_adds
from .spec import MODEL_FIELDS, Limits, _check_layer, validate_job_spec

__all__ = ["model_summary", "layer_index"]

_LAYER_PATH = re.compile(r"^model\.layers\[(\d+)\]")


def layer_index(path: str) -> int | None:
    """The index of the layer an error path is about (``model.layers[2].kernel`` → 2), else None."""
    m = _LAYER_PATH.match(path)
    return int(m.group(1)) if m else None


def _run_settings(spec: Mapping, limits: Limits) -> tuple[int | None, str]:
    """(batch size, dtype) of the run the memory is estimated for, from the raw spec where readable."""
    if spec.get("type") == "gradcheck":
        section = spec.get("gradcheck") if isinstance(spec.get("gradcheck"), Mapping) else {}
        batch = section.get("batch_size", GRADCHECK_DEFAULTS["batch_size"])
        return (batch if is_int(batch) and 1 <= batch <= limits.max_gradcheck_batch else None), GRADCHECK_DTYPE
    section = spec.get("train") if isinstance(spec.get("train"), Mapping) else {}
    batch = section.get("batch_size")
    dtype = section.get("dtype", TRAIN_DEFAULTS["dtype"])
    return (
        (batch if is_int(batch) and 1 <= batch <= limits.max_batch_size else None),
        dtype if dtype in ITEMSIZE else TRAIN_DEFAULTS["dtype"],
    )


def model_summary(
    spec: Any, limits: Limits | None = None, *, datasets: Callable[[str], tuple[int, ...] | None] | None = None
) -> dict[str, Any]:
    """Summarise a job spec's model (docs/reference/http-api.md#model-summary).

    Returns ``{"valid", "errors", "input_shape", "batch_size", "dtype", "layers", "totals", "limits"}``.
    ``layers`` has one row per entry of ``model.layers`` with ``output_shape``,
    ``parameters``, ``multiply_adds`` (forward, per sample) and ``memory_bytes``
    (per batch); those are ``null`` from the first layer whose shape cannot be
    computed on.  Each row's ``errors`` are the validation messages about that
    layer.  ``totals.complete`` is false when some layers could not be summed.
    The memory total adds :data:`~engine.shapes.PARAM_COPIES` copies of the
    parameters, as the validator's estimate does.  ``batch_size`` is ``null``
    (and memory is per sample) when the spec has no valid batch size.
    """
    limits = limits or Limits()
    errors: list[dict[str, str]] = []
    try:
        validate_job_spec(spec, limits, datasets=datasets)
    except SpecError as exc:
        errors = list(exc.details)
    spec = spec if isinstance(spec, Mapping) else {}
    model = spec.get("model") if isinstance(spec.get("model"), Mapping) else {}
    batch, dtype = _run_settings(spec, limits)
    scratch = ErrorList()  # the errors that matter are the validator's, above
    input_shape = (
        MODEL_FIELDS["input_shape"].read(scratch, model, "input_shape", "model", limits)
        if "input_shape" in model
        else None
    )
    raw_layers = model.get("layers")
    raw_layers = list(raw_layers)[: limits.max_layers] if isinstance(raw_layers, (list, tuple)) else []
    layers = [
        _check_layer(scratch, layer, f"model.layers[{i}]", limits, i == len(raw_layers) - 1)[1]
        for i, layer in enumerate(raw_layers)
    ]
    readable = next((i for i, layer in enumerate(layers) if layer is None), len(layers))

    plans = []
    if input_shape is not None and readable:
        plans, geometry = infer_shapes({"input_shape": input_shape, "layers": layers[:readable]}, "model")
        if geometry and geometry not in errors:
            errors.append(geometry)  # found even where the validator stops early (a later layer is invalid)

    by_layer: dict[int, list[dict[str, str]]] = {}
    for e in errors:
        i = layer_index(e["path"])
        if i is not None:
            by_layer.setdefault(i, []).append(e)

    itemsize = ITEMSIZE[dtype]
    n = batch or 1
    rows = []
    for i, raw in enumerate(raw_layers):
        row: dict[str, Any] = {
            "index": i,
            "path": f"model.layers[{i}]",
            "type": raw.get("type") if isinstance(raw, Mapping) and isinstance(raw.get("type"), str) else None,
            "layer": layers[i],
            "output_shape": None,
            "parameters": None,
            "multiply_adds": None,
            "memory_bytes": None,
            "errors": by_layer.get(i, []),
        }
        if i < len(plans):
            p = plans[i]
            row.update(
                output_shape=list(p.out_shape),
                parameters=p.parameter_count,
                multiply_adds=multiply_adds(p),
                memory_bytes=layer_batch_elements(p, n) * itemsize,
            )
        rows.append(row)

    params = sum(p.parameter_count for p in plans)
    totals = {
        "parameters": params,
        "multiply_adds": sum(multiply_adds(p) for p in plans),
        "memory_bytes": (sum(layer_batch_elements(p, n) for p in plans) + PARAM_COPIES * params) * itemsize,
        "complete": bool(raw_layers) and len(plans) == len(raw_layers),
    }
    shown_limits = {
        "max_parameters": limits.max_parameters,
        "max_batch_memory_bytes": limits.max_batch_memory_bytes,
        "max_layers": limits.max_layers,
    }
    if spec.get("type") == "gradcheck":
        shown_limits["max_gradcheck_parameters"] = limits.max_gradcheck_parameters
        shown_limits["max_gradcheck_entries"] = limits.max_gradcheck_entries
    return {
        "valid": not errors,
        "errors": errors,
        "input_shape": input_shape,
        "batch_size": batch,
        "dtype": dtype,
        "layers": rows,
        "totals": totals,
        "limits": shown_limits,
    }

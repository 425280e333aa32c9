"""The job spec (SPEC.md §1): validation, normalisation, shape inference, JSON Schema.

This module is the single source of truth for what a job spec may contain.
The engine (``Network.from_spec``), the ``convlab run`` CLI and the HTTP API
all validate through :func:`validate_job_spec` / :func:`validate_model_spec`,
and the API's OpenAPI document embeds :func:`job_spec_schema`, so the rules
below exist once.

Validation is strict and exhaustive:

* every error is collected (not just the first) and raised together as one
  :class:`SpecError` whose ``details`` are ``{"path", "message"}`` pairs with
  paths like ``model.layers[2].kernel`` or ``train.optimizer.lr``;
* unknown fields are errors (a typo such as ``momentun`` must not silently
  fall back to a default);
* types are exact: ``true`` is not an integer and ``5.0`` is not an integer;
* every size a user controls is bounded by :class:`Limits`, because a spec
  arrives from the network and is executed by a worker with finite memory.

The result of validation is a *new*, normalised dict with every default
filled in, so code downstream never has to know the defaults.  Validating a
normalised spec again returns an equal dict.

Only numpy-free stdlib code lives here: the API process imports it without
pulling in the numeric stack.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "SpecError", "Limits", "LayerPlan",
    "JOB_TYPES", "LAYER_TYPES", "ACTIVATIONS", "LOSSES", "OPTIMIZERS", "DTYPES",
    "BUILTIN_DATASETS", "GRADCHECK_DEFAULTS",
    "validate_job_spec", "validate_model_spec", "plan_model",
    "parameter_count", "estimate_batch_memory",
    "job_spec_schema", "JOB_SPEC_SCHEMA",
]

JOB_TYPES = ("train", "gradcheck")
LAYER_TYPES = ("conv", "maxpool", "avgpool", "dense", "dropout", "flatten")
ACTIVATIONS = ("relu", "sigmoid", "tanh", "softmax", "linear")
LOSSES = ("cross_entropy", "quadratic")
OPTIMIZERS = ("sgd", "adam")
DTYPES = ("float32", "float64")
ITEMSIZE = {"float32": 4, "float64": 8}

#: Built-in datasets: per-sample shape (C, H, W) and number of classes.
BUILTIN_DATASETS: dict[str, dict[str, Any]] = {
    "digits": {"shape": (1, 8, 8), "classes": 10},
    "mnist-5k": {"shape": (1, 28, 28), "classes": 10},
    "synthetic": {"shape": (1, 12, 12), "classes": 4},
}

GRADCHECK_DEFAULTS = {"batch_size": 2, "eps": 1e-6, "seed": 0, "rotate_kernels": True}
DATA_DEFAULTS = {"test_fraction": 0.2, "validation_fraction": 0.1}
ADAM_DEFAULTS = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}

MAX_SEED = 2**32 - 1
MAX_TAG_LENGTH = 64
MAX_FRACTION_SUM = 0.9          # test + validation must leave at least 10 % to train on
MAX_GRADCHECK_EPS = 1e-2
PARAM_COPIES = 4                # params, grads and up to two optimizer moments (Adam)

_REQUIRED = object()            # sentinel: a field without a default


# --------------------------------------------------------------------------- errors

class SpecError(ValueError):
    """Invalid spec.

    ``details`` is a list of ``{"path": str, "message": str}``, one per problem
    (the API returns it verbatim under ``error.details``); ``str(err)`` joins
    them as ``path: message`` lines.
    """

    def __init__(self, details: list[dict]):
        self.details = [{"path": str(d["path"]), "message": str(d["message"])} for d in details]
        super().__init__("\n".join(_format_detail(d) for d in self.details))

    def __reduce__(self):
        # Celery/multiprocessing pickle exceptions; the default reduce would
        # call SpecError(str) and lose the structured details.
        return (type(self), (self.details,))


def _format_detail(d: dict) -> str:
    return f"{d['path']}: {d['message']}" if d["path"] else d["message"]


class _Errors:
    """Accumulates ``(path, message)`` pairs so that validation can report everything at once."""

    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, path: str, message: str) -> None:
        self.items.append({"path": path, "message": message})

    def __len__(self) -> int:
        return len(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise SpecError(self.items)


# --------------------------------------------------------------------------- limits

@dataclass(frozen=True)
class Limits:
    """Upper bounds on everything a spec controls (a spec is untrusted input).

    Defaults:

    ==========================  ==========  =============================================
    max_layers                  32          entries in ``model.layers``
    max_filters                 512         conv ``filters``
    max_kernel                  15          conv ``kernel`` side, pool ``size``, conv ``padding``
    max_units                   4096        dense ``units``
    max_input_side              128         ``input_shape`` H and W (also bounds ``stride``)
    max_input_channels          16          ``input_shape`` C
    max_parameters              5_000_000   total trainable parameters
    max_batch_memory_bytes      1 GiB       :func:`estimate_batch_memory` of one batch
    max_epochs                  500         ``train.epochs``
    max_batch_size              2048        ``train.batch_size``
    max_tags                    16          entries in ``tags`` (each ≤ 64 characters)
    max_name_length             200         ``name`` and ``data.dataset``
    max_gradcheck_batch         16          ``gradcheck.batch_size``
    max_gradcheck_parameters    20_000      parameters of a gradcheck model (2 forwards each)
    max_gradcheck_entries       60_000      parameters + batch × every layer's input entries (2 forwards each)
    ==========================  ==========  =============================================
    """

    max_layers: int = 32
    max_filters: int = 512
    max_kernel: int = 15
    max_units: int = 4096
    max_input_side: int = 128
    max_input_channels: int = 16
    max_parameters: int = 5_000_000
    max_batch_memory_bytes: int = 1 << 30
    max_epochs: int = 500
    max_batch_size: int = 2048
    max_tags: int = 16
    max_name_length: int = 200
    max_gradcheck_batch: int = 16
    max_gradcheck_parameters: int = 20_000
    max_gradcheck_entries: int = 60_000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{f.name} must be a positive integer, got {value!r}")

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> Limits:
        """Build from a config mapping; unknown keys are ignored, values are coerced with ``int()``
        (so environment strings like ``"64"`` work)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in m.items() if k in known})


# --------------------------------------------------------------------------- small helpers

def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _json_type(x: Any) -> str:
    """The JSON name of a value's type, for messages ("got boolean")."""
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "boolean"
    if isinstance(x, int):
        return "integer"
    if isinstance(x, float):
        return "number"
    if isinstance(x, str):
        return "string"
    if isinstance(x, (list, tuple)):
        return "array"
    if isinstance(x, Mapping):
        return "object"
    return type(x).__name__


def _is_int(x: Any) -> bool:
    # bool is a subclass of int in Python but not an integer in a spec.
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return (_is_int(x) or isinstance(x, float)) and math.isfinite(x)


def _quote_list(values) -> str:
    return ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values)


def _object(errs: _Errors, obj: Any, path: str, allowed: tuple[str, ...], what: str = "an object") -> Mapping | None:
    """Check ``obj`` is an object and report every key not in ``allowed``; None if not an object."""
    if not isinstance(obj, Mapping):
        errs.add(path, f"must be {what}, got {_json_type(obj)}")
        return None
    for key in obj:
        if key not in allowed:
            errs.add(_join(path, str(key)), "unknown field")
    return obj


def _missing(errs: _Errors, obj: Mapping, key: str, path: str, default: Any) -> bool:
    """True when ``key`` is absent; reports it if it has no default."""
    if key in obj:
        return False
    if default is _REQUIRED:
        errs.add(_join(path, key), "required field")
    return True


def _int(errs: _Errors, obj: Mapping, key: str, path: str, lo: int, hi: int,
         default: Any = _REQUIRED, limit_name: str | None = None) -> int | None:
    """An integer field in [lo, hi]; None when missing (without default) or invalid."""
    if _missing(errs, obj, key, path, default):
        return None if default is _REQUIRED else default
    return _int_value(errs, obj[key], _join(path, key), lo, hi, limit_name)


def _int_value(errs: _Errors, x: Any, path: str, lo: int, hi: int, limit_name: str | None = None) -> int | None:
    if not _is_int(x):
        errs.add(path, f"must be an integer, got {_json_type(x)} {_short_repr(x)}")
        return None
    if x < lo:
        errs.add(path, f"must be at least {lo}, got {x}")
        return None
    if x > hi:
        suffix = f" ({limit_name})" if limit_name else ""
        errs.add(path, f"{x} is over the limit of {hi}{suffix}")
        return None
    return x


def _float(errs: _Errors, obj: Mapping, key: str, path: str, *, lo: float | None = None,
           lo_open: bool = False, hi: float | None = None, hi_open: bool = False,
           default: Any = _REQUIRED) -> float | None:
    """A finite number field within the given (open or closed) bounds; integers are accepted."""
    if _missing(errs, obj, key, path, default):
        return None if default is _REQUIRED else float(default)
    x, p = obj[key], _join(path, key)
    if not _is_number(x):
        errs.add(p, f"must be a finite number, got {_json_type(x)} {_short_repr(x)}")
        return None
    low_bad = lo is not None and (x <= lo if lo_open else x < lo)
    high_bad = hi is not None and (x >= hi if hi_open else x > hi)
    if low_bad or high_bad:
        errs.add(p, f"must be in {_interval(lo, lo_open, hi, hi_open)}, got {x}")
        return None
    return float(x)


def _interval(lo, lo_open, hi, hi_open) -> str:
    if hi is None:
        return f"{'(' if lo_open else '['}{lo}, ∞)"
    return f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"


def _enum(errs: _Errors, obj: Mapping, key: str, path: str, choices: tuple[str, ...],
          default: Any = _REQUIRED) -> str | None:
    if _missing(errs, obj, key, path, default):
        return None if default is _REQUIRED else default
    x = obj[key]
    if not isinstance(x, str) or x not in choices:
        errs.add(_join(path, key), f"must be one of {_quote_list(choices)}, got {_short_repr(x)}")
        return None
    return x


def _bool(errs: _Errors, obj: Mapping, key: str, path: str, default: Any = _REQUIRED) -> bool | None:
    if _missing(errs, obj, key, path, default):
        return None if default is _REQUIRED else default
    x = obj[key]
    if not isinstance(x, bool):
        errs.add(_join(path, key), f"must be a boolean, got {_json_type(x)} {_short_repr(x)}")
        return None
    return x


def _string(errs: _Errors, x: Any, path: str, max_length: int, allow_empty: bool = True) -> str | None:
    if not isinstance(x, str):
        errs.add(path, f"must be a string, got {_json_type(x)}")
        return None
    if not allow_empty and not x:
        errs.add(path, "must not be empty")
        return None
    if len(x) > max_length:
        errs.add(path, f"is {len(x)} characters long, over the limit of {max_length}")
        return None
    return x


def _short_repr(x: Any) -> str:
    r = repr(x) if not isinstance(x, bool) else ("true" if x else "false")
    if x is None:
        r = "null"
    return r if len(r) <= 40 else r[:37] + "..."


def _side(h: int, w: int) -> str:
    return f"{h}×{w}"


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


# --------------------------------------------------------------------------- layers

_LAYER_FIELDS = {
    "conv": ("type", "filters", "kernel", "stride", "padding", "activation"),
    "maxpool": ("type", "size", "stride"),
    "avgpool": ("type", "size", "stride"),
    "dense": ("type", "units", "activation"),
    "dropout": ("type", "rate"),
    "flatten": ("type",),
}
_SPATIAL_ONLY = ("conv", "maxpool", "avgpool")
_PARAMETRIC = ("conv", "dense")


def _check_layer(errs: _Errors, layer: Any, path: str, limits: Limits, is_last: bool) -> tuple[str | None, dict | None]:
    """Validate one layer's own fields. Returns (type or None, normalised layer or None).

    The type is returned even when other fields are invalid so that the
    structural checks (order of layers) can still run and report.
    """
    if not isinstance(layer, Mapping):
        errs.add(path, f"must be an object, got {_json_type(layer)}")
        return None, None
    ltype = _enum(errs, layer, "type", path, LAYER_TYPES)
    if ltype is None:
        return None, None
    allowed = _LAYER_FIELDS[ltype]
    for key in layer:
        if key not in allowed:
            errs.add(_join(path, str(key)), "unknown field")
    before = len(errs)
    out: dict[str, Any] = {"type": ltype}
    if ltype == "conv":
        out["filters"] = _int(errs, layer, "filters", path, 1, limits.max_filters, limit_name="max_filters")
        out["kernel"] = _kernel(errs, layer, path, limits)
        out["stride"] = _int(errs, layer, "stride", path, 1, limits.max_input_side, default=1)
        out["padding"] = _int(errs, layer, "padding", path, 0, limits.max_kernel, default=0)
        out["activation"] = _activation(errs, layer, path, "relu", is_last)
    elif ltype in ("maxpool", "avgpool"):
        out["size"] = _int(errs, layer, "size", path, 1, limits.max_kernel, limit_name="max_kernel")
        # stride defaults to the size (non-overlapping windows), as in PyTorch.
        out["stride"] = _int(errs, layer, "stride", path, 1, limits.max_input_side,
                             default=out["size"] if out["size"] is not None else 1)
    elif ltype == "dense":
        out["units"] = _int(errs, layer, "units", path, 1, limits.max_units, limit_name="max_units")
        # The last layer's activation defines the output (softmax vs sigmoid vs linear):
        # no silent default there.
        out["activation"] = _activation(errs, layer, path, _REQUIRED if is_last else "relu", is_last)
    elif ltype == "dropout":
        out["rate"] = _float(errs, layer, "rate", path, lo=0.0, hi=1.0, hi_open=True)
    return ltype, (out if len(errs) == before else None)


def _kernel(errs: _Errors, layer: Mapping, path: str, limits: Limits) -> list[int] | None:
    """``kernel``: an int k (meaning k×k) or [kh, kw]; normalised to [kh, kw]."""
    if _missing(errs, layer, "kernel", path, _REQUIRED):
        return None
    k, p = layer["kernel"], _join(path, "kernel")
    if _is_int(k):
        v = _int_value(errs, k, p, 1, limits.max_kernel, "max_kernel")
        return None if v is None else [v, v]
    if isinstance(k, (list, tuple)) and len(k) == 2:
        vals = [_int_value(errs, v, f"{p}[{i}]", 1, limits.max_kernel, "max_kernel") for i, v in enumerate(k)]
        return None if None in vals else vals
    errs.add(p, f"must be an integer or an array [kh, kw] of two integers, got {_json_type(k)} {_short_repr(k)}")
    return None


def _activation(errs: _Errors, layer: Mapping, path: str, default: Any, is_last: bool) -> str | None:
    act = _enum(errs, layer, "activation", path, ACTIVATIONS, default=default)
    if act == "softmax" and not is_last:
        errs.add(_join(path, "activation"), "softmax is only allowed on the last layer")
        return None
    return act


# --------------------------------------------------------------------------- shape inference

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
        return sum(math.prod(s) for s in self.param_shapes.values())


def _infer(model: Mapping, path: str) -> tuple[list[LayerPlan], dict | None]:
    """Walk the normalised layers; returns the plans and the first geometric error (or None).

    Stops at the first error because later shapes are undefined after it.
    """
    plans: list[LayerPlan] = []
    shape = tuple(model["input_shape"])
    for i, layer in enumerate(model["layers"]):
        lpath = f"{path}.layers[{i}]"
        t = layer["type"]
        if t in _SPATIAL_ONLY and len(shape) != 3:
            return plans, {"path": lpath, "message": f"{t} needs a spatial (C, H, W) input, "
                                                     f"but the previous layer outputs a flat vector of {shape[0]}"}
        params: dict[str, tuple[int, ...]] = {}
        if t == "conv":
            c, h, w = shape
            kh, kw = layer["kernel"]
            p, s = layer["padding"], layer["stride"]
            if kh > h + 2 * p or kw > w + 2 * p:
                return plans, {"path": f"{lpath}.kernel", "message": _too_large(kh, kw, h, w, p)}
            out = (layer["filters"], (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1)
            params = {"W": (layer["filters"], c, kh, kw), "b": (layer["filters"],)}
        elif t in ("maxpool", "avgpool"):
            c, h, w = shape
            k, s = layer["size"], layer["stride"]
            if k > h or k > w:
                return plans, {"path": f"{lpath}.size", "message": _too_large(k, k, h, w, 0)}
            out = (c, (h - k) // s + 1, (w - k) // s + 1)
        elif t == "dense":
            inputs = math.prod(shape)       # implicit flatten in (C, H, W) order
            out = (layer["units"],)
            params = {"W": (layer["units"], inputs), "b": (layer["units"],)}
        elif t == "flatten":
            out = (math.prod(shape),)
        else:                               # dropout keeps the shape
            out = shape
        plans.append(LayerPlan(i, dict(layer), shape, out, params))
        shape = out
    return plans, None


def _too_large(kh: int, kw: int, h: int, w: int, padding: int) -> str:
    k = str(kh) if kh == kw else _side(kh, kw)
    if padding:
        padded = _side(h + 2 * padding, w + 2 * padding)
        return f"{k} is larger than the {_side(h, w)} input with padding {padding} ({padded})"
    return f"{k} is larger than the {_side(h, w)} input"


def plan_model(model: dict) -> list[LayerPlan]:
    """Shape inference for a NORMALISED model (output of :func:`validate_model_spec`).

    One :class:`LayerPlan` per entry of ``model["layers"]``. Shapes are per
    sample: spatial ``(C, H, W)`` or flat ``(D,)``; a dense layer after a
    spatial layer flattens implicitly in (C, H, W) order, ``flatten`` makes
    ``(C*H*W,)``. Conv ``W`` is ``(F, C, kh, kw)``, dense ``W`` is ``(units, inputs)``.
    Raises :class:`SpecError` if the geometry is impossible.
    """
    plans, error = _infer(model, "model")
    if error:
        raise SpecError([error])
    return plans


def parameter_count(model: dict) -> int:
    """Number of trainable scalars of a normalised model."""
    return sum(p.parameter_count for p in plan_model(model))


def estimate_batch_memory(model: dict, batch_size: int, dtype: str) -> int:
    """Conservative bytes needed for one batch (forward + backward) of a normalised model.

    Per layer: the input and output activations, and for conv layers the
    im2col buffer of the forward pass (N·Ho·Wo·C·kh·kw) and of the backward
    full convolution (N·H·W·F·kh·kw, H, W the layer's input size); all times
    the itemsize. Plus 4 copies of the parameters (weights, gradients, two
    optimizer moments).
    """
    itemsize = ITEMSIZE[dtype]
    n = batch_size
    elements = 0
    params = 0
    for p in plan_model(model):
        elements += n * (math.prod(p.in_shape) + math.prod(p.out_shape))
        if p.layer["type"] == "conv":
            f, c, kh, kw = p.param_shapes["W"]
            _, h, w = p.in_shape
            _, ho, wo = p.out_shape
            elements += n * ho * wo * c * kh * kw
            elements += n * h * w * f * kh * kw
        params += p.parameter_count
    return (elements + PARAM_COPIES * params) * itemsize


# --------------------------------------------------------------------------- model

def _check_model(errs: _Errors, model: Any, limits: Limits, path: str) -> tuple[dict | None, list[LayerPlan] | None]:
    """Validate and normalise a model; returns (model, plans), either None when invalid."""
    m = _object(errs, model, path, ("input_shape", "layers", "loss"))
    if m is None:
        return None, None
    before = len(errs)
    input_shape = _input_shape(errs, m, path, limits)
    loss = _enum(errs, m, "loss", path, LOSSES)
    layers, types = _layers(errs, m, path, limits)
    order_ok = _check_order(errs, types, path)
    if layers and layers[-1] is not None and loss is not None:
        _check_loss(errs, loss, layers, path)
    # Geometry is checked (and reported) even when unrelated fields are wrong,
    # as long as everything it depends on is valid.
    plans = None
    if order_ok and input_shape is not None and layers is not None and None not in layers:
        plans, error = _infer({"input_shape": input_shape, "layers": layers}, path)
        if error:
            errs.add(error["path"], error["message"])
            plans = None
    if plans is not None:
        n_params = sum(p.parameter_count for p in plans)
        if n_params > limits.max_parameters:
            errs.add(path, f"the model has {n_params:,} parameters, over the limit of {limits.max_parameters:,}")
    if len(errs) != before:
        return None, None
    return {"input_shape": input_shape, "layers": layers, "loss": loss}, plans


def _check_loss(errs: _Errors, loss: str, layers: list[dict], path: str) -> None:
    """cross_entropy is defined on probabilities: the last layer must be softmax or sigmoid."""
    last = layers[-1]
    act = last.get("activation")
    if loss == "cross_entropy" and last["type"] == "dense" and act not in ("softmax", "sigmoid"):
        errs.add(_join(path, "loss"),
                 f"cross_entropy needs the last layer's activation to be softmax or sigmoid, "
                 f"but layer {len(layers) - 1} uses {act} (use quadratic, or change the activation)")


def _input_shape(errs: _Errors, m: Mapping, path: str, limits: Limits) -> list[int] | None:
    if _missing(errs, m, "input_shape", path, _REQUIRED):
        return None
    shape, p = m["input_shape"], _join(path, "input_shape")
    if not isinstance(shape, (list, tuple)) or len(shape) != 3:
        errs.add(p, f"must be an array [C, H, W] of three integers, got {_json_type(shape)} {_short_repr(shape)}")
        return None
    bounds = [(limits.max_input_channels, "max_input_channels"),
              (limits.max_input_side, "max_input_side"), (limits.max_input_side, "max_input_side")]
    vals = [_int_value(errs, v, f"{p}[{i}]", 1, hi, name)
            for i, (v, (hi, name)) in enumerate(zip(shape, bounds, strict=True))]
    return None if None in vals else vals


def _layers(errs: _Errors, m: Mapping, path: str, limits: Limits) -> tuple[list | None, list]:
    if _missing(errs, m, "layers", path, _REQUIRED):
        return None, []
    layers, p = m["layers"], _join(path, "layers")
    if not isinstance(layers, (list, tuple)):
        errs.add(p, f"must be an array of layers, got {_json_type(layers)}")
        return None, []
    if not layers:
        errs.add(p, "must contain at least one layer")
        return None, []
    if len(layers) > limits.max_layers:
        errs.add(p, f"{len(layers)} layers is over the limit of {limits.max_layers}")
        return None, []
    checked = [_check_layer(errs, layer, f"{p}[{i}]", limits, i == len(layers) - 1)
               for i, layer in enumerate(layers)]
    return [c[1] for c in checked], [c[0] for c in checked]


def _check_order(errs: _Errors, types: list[str | None], path: str) -> bool:
    """Rules on the sequence of layer types. Returns False if a spatial layer follows a flat one."""
    ok = True
    flat_since: int | None = None
    for i, t in enumerate(types):
        if t in ("dense", "flatten") and flat_since is None:
            flat_since = i
        elif t in _SPATIAL_ONLY and flat_since is not None:
            errs.add(f"{path}.layers[{i}]",
                     f"{t} needs a spatial (C, H, W) input, but layer {flat_since} "
                     f"({types[flat_since]}) already made it a flat vector")
            ok = False
    if types and types[-1] is not None and types[-1] != "dense":
        errs.add(f"{path}.layers[{len(types) - 1}]", f"the last layer must be dense, got {types[-1]}")
    return ok


def validate_model_spec(model: Any, limits: Limits = Limits(), path: str = "model") -> dict:
    """Validate a model spec (``input_shape``, ``layers``, ``loss``) and return it normalised.

    Defaults filled in: conv ``stride`` 1, ``padding`` 0, ``activation`` relu,
    ``kernel`` as ``[kh, kw]``; pool ``stride`` = ``size``; dense ``activation``
    relu except on the last layer, where it is required. Raises :class:`SpecError`.
    """
    errs = _Errors()
    out, _ = _check_model(errs, model, limits, path)
    errs.raise_if_any()
    return out


# --------------------------------------------------------------------------- job sections

def _check_data(errs: _Errors, data: Any, path: str, limits: Limits) -> dict | None:
    d = _object(errs, data, path, ("dataset", "test_fraction", "validation_fraction"))
    if d is None:
        return None
    before = len(errs)
    dataset = None
    if not _missing(errs, d, "dataset", path, _REQUIRED):
        dataset = _string(errs, d["dataset"], _join(path, "dataset"), limits.max_name_length, allow_empty=False)
    test = _float(errs, d, "test_fraction", path, lo=0.0, hi=1.0, hi_open=True, default=DATA_DEFAULTS["test_fraction"])
    val = _float(errs, d, "validation_fraction", path, lo=0.0, hi=1.0, hi_open=True,
                 default=DATA_DEFAULTS["validation_fraction"])
    if test is not None and val is not None and test + val >= MAX_FRACTION_SUM:
        errs.add(path, f"test_fraction + validation_fraction must be below {MAX_FRACTION_SUM}, got {test + val:g}")
    if len(errs) != before:
        return None
    return {"dataset": dataset, "test_fraction": test, "validation_fraction": val}


def _check_optimizer(errs: _Errors, opt: Any, path: str) -> dict | None:
    if not isinstance(opt, Mapping):
        errs.add(path, f"must be an object, got {_json_type(opt)}")
        return None
    before = len(errs)
    otype = _enum(errs, opt, "type", path, OPTIMIZERS)
    if otype is None:
        return None
    allowed = ("type", "lr", "momentum") if otype == "sgd" else ("type", "lr", "beta1", "beta2", "eps")
    _object(errs, opt, path, allowed)
    out: dict[str, Any] = {"type": otype, "lr": _float(errs, opt, "lr", path, lo=0.0, lo_open=True)}
    if otype == "sgd":
        out["momentum"] = _float(errs, opt, "momentum", path, lo=0.0, hi=1.0, hi_open=True, default=0.0)
    else:
        for key in ("beta1", "beta2"):
            out[key] = _float(errs, opt, key, path, lo=0.0, hi=1.0, hi_open=True, default=ADAM_DEFAULTS[key])
        out["eps"] = _float(errs, opt, "eps", path, lo=0.0, lo_open=True, default=ADAM_DEFAULTS["eps"])
    return out if len(errs) == before else None


def _check_train(errs: _Errors, train: Any, path: str, limits: Limits) -> dict | None:
    t = _object(errs, train, path, ("epochs", "batch_size", "seed", "dtype", "optimizer", "weight_decay"))
    if t is None:
        return None
    before = len(errs)
    out = {
        "epochs": _int(errs, t, "epochs", path, 1, limits.max_epochs, limit_name="max_epochs"),
        "batch_size": _int(errs, t, "batch_size", path, 1, limits.max_batch_size, limit_name="max_batch_size"),
        "seed": _int(errs, t, "seed", path, 0, MAX_SEED, default=0),
        "dtype": _enum(errs, t, "dtype", path, DTYPES, default="float32"),
        "optimizer": (None if _missing(errs, t, "optimizer", path, _REQUIRED)
                      else _check_optimizer(errs, t["optimizer"], _join(path, "optimizer"))),
        # weight_decay is the L2 coefficient λ; above 1 it would dominate any loss.
        "weight_decay": _float(errs, t, "weight_decay", path, lo=0.0, hi=1.0, default=0.0),
    }
    return out if len(errs) == before else None


def _check_gradcheck(errs: _Errors, gc: Any, path: str, limits: Limits) -> dict | None:
    g = _object(errs, gc, path, tuple(GRADCHECK_DEFAULTS))
    if g is None:
        return None
    before = len(errs)
    out = {
        "batch_size": _int(errs, g, "batch_size", path, 1, limits.max_gradcheck_batch,
                           default=GRADCHECK_DEFAULTS["batch_size"], limit_name="max_gradcheck_batch"),
        "eps": _float(errs, g, "eps", path, lo=0.0, lo_open=True, hi=MAX_GRADCHECK_EPS,
                      default=GRADCHECK_DEFAULTS["eps"]),
        "seed": _int(errs, g, "seed", path, 0, MAX_SEED, default=GRADCHECK_DEFAULTS["seed"]),
        "rotate_kernels": _bool(errs, g, "rotate_kernels", path, default=GRADCHECK_DEFAULTS["rotate_kernels"]),
    }
    return out if len(errs) == before else None


def _check_tags(errs: _Errors, tags: Any, path: str, limits: Limits) -> list[str] | None:
    if not isinstance(tags, (list, tuple)):
        errs.add(path, f"must be an array of strings, got {_json_type(tags)}")
        return None
    if len(tags) > limits.max_tags:
        errs.add(path, f"{len(tags)} tags is over the limit of {limits.max_tags}")
        return None
    before = len(errs)
    seen: set[str] = set()
    for i, tag in enumerate(tags):
        s = _string(errs, tag, f"{path}[{i}]", MAX_TAG_LENGTH, allow_empty=False)
        if s is not None:
            if s in seen:
                errs.add(f"{path}[{i}]", f"duplicate tag {s!r}")
            seen.add(s)
    return list(tags) if len(errs) == before else None


# --------------------------------------------------------------------------- job

_JOB_FIELDS = ("type", "name", "tags", "model", "data", "train", "gradcheck")


def validate_job_spec(obj: Any, limits: Limits = Limits(), *,
                      datasets: Callable[[str], tuple[int, ...] | None] | None = None) -> dict:
    """Validate a whole job spec (SPEC §1) and return a NEW normalised dict.

    Every default is filled in (see :func:`validate_model_spec` for the model;
    ``train``: seed 0, dtype float32, weight_decay 0, sgd momentum 0, adam
    beta1 0.9 / beta2 0.999 / eps 1e-8; ``data``: test_fraction 0.2,
    validation_fraction 0.1; ``gradcheck``: :data:`GRADCHECK_DEFAULTS`;
    ``tags`` []; an empty ``name`` becomes ``"{type}-{dataset}"``).

    A train job needs ``model``, ``data``, ``train``; a gradcheck job needs
    ``model`` and ``gradcheck`` (``data`` is optional there and unused by the
    check itself, ``train`` is rejected).

    ``datasets`` resolves dataset ids that are not built-in to their sample
    shape ``(C, H, W)``, or None if unknown. With it, unknown ids are errors;
    without it, any non-built-in id is accepted unchecked.

    Collects ALL errors and raises one :class:`SpecError` with every one.
    """
    errs = _Errors()
    job = _object(errs, obj, "", _JOB_FIELDS, what="a JSON object")
    if job is None:
        errs.raise_if_any()
    jtype = _enum(errs, job, "type", "", JOB_TYPES)

    name = None
    if "name" in job:
        name = _string(errs, job["name"], "name", limits.max_name_length)
    tags = _check_tags(errs, job["tags"], "tags", limits) if "tags" in job else []

    model, plans = (None, None)
    if not _missing(errs, job, "model", "", _REQUIRED):
        model, plans = _check_model(errs, job["model"], limits, "model")

    data = None
    if (jtype == "train" or "data" in job) and not _missing(errs, job, "data", "", _REQUIRED):
        data = _check_data(errs, job["data"], "data", limits)

    section = None
    if jtype == "train":
        if not _missing(errs, job, "train", "", _REQUIRED):
            section = _check_train(errs, job["train"], "train", limits)
        if "gradcheck" in job:
            errs.add("gradcheck", "not allowed in a train job")
    elif jtype == "gradcheck":
        if not _missing(errs, job, "gradcheck", "", _REQUIRED):
            section = _check_gradcheck(errs, job["gradcheck"], "gradcheck", limits)
        if "train" in job:
            errs.add("train", "not allowed in a gradcheck job")
    else:
        # Unknown type: still check whatever sections are present, to report everything at once.
        if "train" in job:
            _check_train(errs, job["train"], "train", limits)
        if "gradcheck" in job:
            _check_gradcheck(errs, job["gradcheck"], "gradcheck", limits)

    if model is not None and data is not None:
        _check_dataset_fit(errs, model, data["dataset"], datasets)
    if plans is not None and section is not None:
        _check_cost(errs, jtype, plans, model, section, limits)

    errs.raise_if_any()
    out: dict[str, Any] = {"type": jtype, "name": name or _default_name(jtype, data, limits), "tags": tags,
                           "model": model}
    if data is not None:
        out["data"] = data
    out[jtype] = section
    return out


def _default_name(jtype: str, data: dict | None, limits: Limits) -> str:
    name = f"{jtype}-{data['dataset']}" if data else jtype
    return name[:limits.max_name_length]


def _dataset_info(dataset: str, datasets: Callable[[str], tuple[int, ...] | None] | None,
                  ) -> tuple[bool, tuple | None, int | None]:
    """(known, shape, classes) of a dataset id; known is True when no resolver is given."""
    if dataset in BUILTIN_DATASETS:
        info = BUILTIN_DATASETS[dataset]
        return True, tuple(info["shape"]), info["classes"]
    if datasets is None:
        return True, None, None
    shape = datasets(dataset)
    return shape is not None, (tuple(shape) if shape is not None else None), None


def _check_dataset_fit(errs: _Errors, model: dict, dataset: str, datasets) -> None:
    """The model's input must match the dataset's sample shape, and its outputs its classes."""
    known, shape, classes = _dataset_info(dataset, datasets)
    if not known:
        errs.add("data.dataset", f"unknown dataset {dataset!r}")
        return
    if shape is not None and tuple(model["input_shape"]) != shape:
        errs.add("model.input_shape",
                 f"{list(model['input_shape'])} does not match the sample shape {list(shape)} of dataset {dataset!r}")
    last = len(model["layers"]) - 1
    units = model["layers"][last]["units"]
    if classes is not None and units != classes:
        errs.add(f"model.layers[{last}].units",
                 f"the last layer has {units} units but dataset {dataset!r} has {classes} classes")


def _check_cost(errs: _Errors, jtype: str, plans: list[LayerPlan], model: dict, section: dict, limits: Limits) -> None:
    """Bounds that depend on the model and the run together: batch memory, gradcheck size."""
    if jtype == "train":
        dtype, path = section["dtype"], "train.batch_size"
    else:
        dtype, path = "float64", "gradcheck.batch_size"     # gradcheck always runs in float64
        n_params = sum(p.parameter_count for p in plans)
        if n_params > limits.max_gradcheck_parameters:
            errs.add("model", f"the model has {n_params:,} parameters, over the gradcheck limit of "
                              f"{limits.max_gradcheck_parameters:,} (the check runs 2 forward passes per parameter)")
        # Every entry of every layer's input is perturbed too, for each sample of the batch.
        inputs = section["batch_size"] * sum(math.prod(p.in_shape) for p in plans)
        if n_params + inputs > limits.max_gradcheck_entries:
            errs.add(path, f"the check would perturb {n_params + inputs:,} entries ({n_params:,} parameters and "
                           f"{inputs:,} layer-input entries for a batch of {section['batch_size']}), over the "
                           f"limit of {limits.max_gradcheck_entries:,}")
    mem = estimate_batch_memory(model, section["batch_size"], dtype)
    if mem > limits.max_batch_memory_bytes:
        errs.add(path, f"one batch of {section['batch_size']} needs an estimated {_mb(mem)} ({dtype}), "
                       f"over the limit of {_mb(limits.max_batch_memory_bytes)}")


# --------------------------------------------------------------------------- JSON Schema

def _s_int(lo: int, hi: int, default: Any = None, description: str | None = None) -> dict:
    s: dict[str, Any] = {"type": "integer", "minimum": lo, "maximum": hi}
    if default is not None:
        s["default"] = default
    if description:
        s["description"] = description
    return s


def _s_num(default: Any = None, description: str | None = None, **bounds: float) -> dict:
    s: dict[str, Any] = {"type": "number", **bounds}
    if default is not None:
        s["default"] = default
    if description:
        s["description"] = description
    return s


def _s_obj(properties: dict, required: list[str], description: str | None = None) -> dict:
    s: dict[str, Any] = {"type": "object", "properties": properties, "required": required,
                         "additionalProperties": False}
    if description:
        s["description"] = description
    return s


def _s_enum(values: tuple[str, ...], default: str | None = None, description: str | None = None) -> dict:
    s: dict[str, Any] = {"type": "string", "enum": list(values)}
    if default is not None:
        s["default"] = default
    if description:
        s["description"] = description
    return s


def _layer_schemas(limits: Limits) -> list[dict]:
    kernel = _s_int(1, limits.max_kernel)
    stride = _s_int(1, limits.max_input_side, description="default 1 for conv, the pool size for pooling")
    activation = _s_enum(ACTIVATIONS,
                         description="default relu; required on the last layer; softmax only on the last layer")
    conv = _s_obj({
        "type": {"const": "conv"},
        "filters": _s_int(1, limits.max_filters),
        "kernel": {"oneOf": [kernel, {"type": "array", "items": kernel, "minItems": 2, "maxItems": 2}],
                   "description": "k (k×k) or [kh, kw]"},
        "stride": stride,
        "padding": _s_int(0, limits.max_kernel, default=0),
        "activation": activation,
    }, ["type", "filters", "kernel"])
    pools = [_s_obj({"type": {"const": t}, "size": _s_int(1, limits.max_kernel), "stride": stride},
                    ["type", "size"]) for t in ("maxpool", "avgpool")]
    dense = _s_obj({"type": {"const": "dense"}, "units": _s_int(1, limits.max_units), "activation": activation},
                   ["type", "units"], description="flattens a spatial input implicitly, in (C, H, W) order")
    dropout = _s_obj({"type": {"const": "dropout"}, "rate": _s_num(minimum=0, exclusiveMaximum=1)}, ["type", "rate"])
    flatten = _s_obj({"type": {"const": "flatten"}}, ["type"])
    return [conv, *pools, dense, dropout, flatten]


def job_spec_schema(limits: Limits = Limits()) -> dict:
    """JSON Schema (draft 2020-12, usable as an OpenAPI 3.1 schema object) of a job spec.

    Self-contained (no ``$ref``) so it can be embedded anywhere in an OpenAPI
    document. It expresses the per-field rules and bounds of ``limits``;
    cross-field rules (output sizes, softmax only last, the last layer is
    dense, cross_entropy needs softmax/sigmoid, parameter and memory limits,
    dataset shape) are enforced by :func:`validate_job_spec` only. Note that
    JSON Schema's ``integer`` admits ``5.0``; the validator does not.
    """
    seed = _s_int(0, MAX_SEED, default=0)
    model = _s_obj({
        "input_shape": {"type": "array", "minItems": 3, "maxItems": 3, "description": "[C, H, W]",
                        "prefixItems": [_s_int(1, limits.max_input_channels),
                                        _s_int(1, limits.max_input_side), _s_int(1, limits.max_input_side)],
                        "items": False},
        "layers": {"type": "array", "minItems": 1, "maxItems": limits.max_layers,
                   "items": {"oneOf": _layer_schemas(limits)}, "description": "the last layer must be dense"},
        "loss": _s_enum(LOSSES, description="cross_entropy needs a softmax or sigmoid last layer"),
    }, ["input_shape", "layers", "loss"],
        description=f"at most {limits.max_parameters} parameters")
    data = _s_obj({
        "dataset": {"type": "string", "minLength": 1, "maxLength": limits.max_name_length,
                    "description": f"built-in ({', '.join(BUILTIN_DATASETS)}) or the id of an uploaded dataset"},
        "test_fraction": _s_num(default=DATA_DEFAULTS["test_fraction"], minimum=0, exclusiveMaximum=1),
        "validation_fraction": _s_num(default=DATA_DEFAULTS["validation_fraction"], minimum=0, exclusiveMaximum=1),
    }, ["dataset"], description=f"test_fraction + validation_fraction < {MAX_FRACTION_SUM}")
    sgd = _s_obj({"type": {"const": "sgd"}, "lr": _s_num(exclusiveMinimum=0),
                  "momentum": _s_num(default=0.0, minimum=0, exclusiveMaximum=1)}, ["type", "lr"])
    adam = _s_obj({"type": {"const": "adam"}, "lr": _s_num(exclusiveMinimum=0),
                   "beta1": _s_num(default=ADAM_DEFAULTS["beta1"], minimum=0, exclusiveMaximum=1),
                   "beta2": _s_num(default=ADAM_DEFAULTS["beta2"], minimum=0, exclusiveMaximum=1),
                   "eps": _s_num(default=ADAM_DEFAULTS["eps"], exclusiveMinimum=0)}, ["type", "lr"])
    train = _s_obj({
        "epochs": _s_int(1, limits.max_epochs),
        "batch_size": _s_int(1, limits.max_batch_size,
                             description=f"estimated batch memory at most {limits.max_batch_memory_bytes} bytes"),
        "seed": seed,
        "dtype": _s_enum(DTYPES, default="float32"),
        "optimizer": {"oneOf": [sgd, adam]},
        "weight_decay": _s_num(default=0.0, minimum=0, maximum=1),
    }, ["epochs", "batch_size", "optimizer"])
    gradcheck = _s_obj({
        "batch_size": _s_int(1, limits.max_gradcheck_batch, default=GRADCHECK_DEFAULTS["batch_size"]),
        "eps": _s_num(default=GRADCHECK_DEFAULTS["eps"], exclusiveMinimum=0, maximum=MAX_GRADCHECK_EPS),
        "seed": seed,
        "rotate_kernels": {"type": "boolean", "default": True},
    }, [], description=f"runs in float64; model at most {limits.max_gradcheck_parameters} parameters")
    common = {
        "name": {"type": "string", "maxLength": limits.max_name_length, "default": "",
                 "description": "empty: derived from type and dataset"},
        "tags": {"type": "array", "maxItems": limits.max_tags, "uniqueItems": True, "default": [],
                 "items": {"type": "string", "minLength": 1, "maxLength": MAX_TAG_LENGTH}},
        "model": model,
        "data": data,
    }
    train_job = _s_obj({"type": {"const": "train"}, **common, "train": train},
                       ["type", "model", "data", "train"], description="train job")
    gradcheck_job = _s_obj({"type": {"const": "gradcheck"}, **common, "gradcheck": gradcheck},
                           ["type", "model", "gradcheck"], description="gradcheck job (data optional, unused)")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "convlab job spec",
        "oneOf": [train_job, gradcheck_job],
    }


JOB_SPEC_SCHEMA = job_spec_schema()

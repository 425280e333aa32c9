"""The job spec contract (docs/reference/job-spec.md): its limits, its validation and its JSON Schema.

What a job spec may contain is decided here, once.  The engine
(``Network.from_spec``), the ``convlab run`` CLI and the HTTP API all validate
through :func:`validate_job_spec` / :func:`validate_model_spec`, and the API's
OpenAPI document embeds :func:`job_spec_schema`.

Rules exist once: every per-field rule (type, bounds, default, whether it is
required, which keys an object allows) is written in the field tables below
(``DATA_FIELDS``, ``TRAIN_FIELDS``, ``LAYER_FIELDS`` ...), built from the
declarative fields of :mod:`engine.fields`.  The validator reads values
through those tables and :func:`job_spec_schema` is generated from the same
tables, so a bound or a default cannot be changed in one and not the other.
Generation was chosen over a second hand-written schema checked by a test:
a test only notices drift after someone has written it twice, generation
leaves nothing to drift.  What the tables cannot state (which sections a job
type needs, the list of layers) is written once on each side, and
``tests/test_spec_schema.py`` runs the validator and the schema on the same
generated specs and fails where they disagree on anything the schema can
express.  Rules across fields (output sizes, softmax only last, the last
layer is dense, cross_entropy needs softmax/sigmoid, parameter and memory
limits, dataset shape) are the validator's alone.

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

Shape inference lives in :mod:`engine.shapes`, the vocabulary and defaults in
:mod:`engine.constants`.  This module and everything it imports are
standard library only (no NumPy): the API process imports it without pulling
in the numeric stack (``tests/test_spec.py`` checks this in a subprocess).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .builtin_datasets import BUILTIN_DATASETS  # re-exported: the spec's view of the built-ins
from .constants import (
    ACTIVATIONS,
    ADAM_DEFAULTS,
    DATA_DEFAULTS,
    DTYPES,
    GRADCHECK_DEFAULTS,
    GRADCHECK_DTYPE,
    JOB_TYPES,
    LAYER_TYPES,
    LOSSES,
    OPTIMIZERS,
    SGD_DEFAULTS,
    TRAIN_DEFAULTS,
)
from .errors import ErrorList, SpecError
from .fields import (
    REQUIRED,
    Bool,
    Const,
    Enum,
    Field,
    Int,
    Number,
    Str,
    Table,
    Variants,
    check_object,
    is_int,
    join,
    json_type,
    read_table,
    short_repr,
    table_schema,
)
from .shapes import SPATIAL_LAYERS, LayerPlan, estimate_batch_memory, infer_shapes

__all__ = [
    "SpecError",
    "Limits",
    "JOB_TYPES",
    "LAYER_TYPES",
    "ACTIVATIONS",
    "LOSSES",
    "OPTIMIZERS",
    "DTYPES",
    "BUILTIN_DATASETS",
    "GRADCHECK_DEFAULTS",
    "validate_job_spec",
    "validate_model_spec",
    "job_spec_schema",
    "JOB_SPEC_SCHEMA",
]


MAX_SEED = 2**32 - 1
MAX_TAG_LENGTH = 64
MAX_FRACTION_SUM = 0.9  # test + validation must leave at least 10 % to train on
MAX_GRADCHECK_EPS = 1e-2
MAX_PRIORITY = 10  # |priority|: orders one user's own jobs only (fair share orders the users)


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


# --------------------------------------------------------------------------- fields of the spec's own shape


@dataclass(frozen=True)
class Kernel(Field):
    """``kernel``: an int k (meaning k×k) or [kh, kw]; normalised to [kh, kw]."""

    side: Int = Int(lo=1, hi="max_kernel")

    def check(self, errs, k, path, limits):
        if is_int(k):
            v = self.side.check(errs, k, path, limits)
            return None if v is None else [v, v]
        if isinstance(k, (list, tuple)) and len(k) == 2:
            vals = [self.side.check(errs, v, f"{path}[{i}]", limits) for i, v in enumerate(k)]
            return None if None in vals else vals
        errs.add(path, f"must be an integer or an array [kh, kw] of two integers, got {json_type(k)} {short_repr(k)}")
        return None

    def value_schema(self, limits):
        side = self.side.schema(limits)
        return {"oneOf": [side, {"type": "array", "items": side, "minItems": 2, "maxItems": 2}]}


@dataclass(frozen=True)
class InputShape(Field):
    """``input_shape``: [C, H, W], each an integer within its own limit."""

    items: tuple[Int, ...] = (
        Int(lo=1, hi="max_input_channels"),
        Int(lo=1, hi="max_input_side"),
        Int(lo=1, hi="max_input_side"),
    )

    def check(self, errs, shape, path, limits):
        if not isinstance(shape, (list, tuple)) or len(shape) != len(self.items):
            errs.add(path, f"must be an array [C, H, W] of three integers, got {json_type(shape)} {short_repr(shape)}")
            return None
        vals = [
            item.check(errs, v, f"{path}[{i}]", limits)
            for i, (v, item) in enumerate(zip(shape, self.items, strict=True))
        ]
        return None if None in vals else vals

    def value_schema(self, limits):
        n = len(self.items)
        return {
            "type": "array",
            "minItems": n,
            "maxItems": n,
            "prefixItems": [item.schema(limits) for item in self.items],
            "items": False,
        }


@dataclass(frozen=True)
class Tags(Field):
    """``tags``: distinct non-empty strings, at most ``max_tags`` of them."""

    item: Str = Str(max_length=MAX_TAG_LENGTH, allow_empty=False)

    def normalise(self, value):
        return list(value)

    def check(self, errs, tags, path, limits):
        if not isinstance(tags, (list, tuple)):
            errs.add(path, f"must be an array of strings, got {json_type(tags)}")
            return None
        if len(tags) > limits.max_tags:
            errs.add(path, f"{len(tags)} tags is over the limit of {limits.max_tags}")
            return None
        before = len(errs)
        seen: set[str] = set()
        for i, tag in enumerate(tags):
            s = self.item.check(errs, tag, f"{path}[{i}]", limits)
            if s is not None:
                if s in seen:
                    errs.add(f"{path}[{i}]", f"duplicate tag {s!r}")
                seen.add(s)
        return list(tags) if len(errs) == before else None

    def value_schema(self, limits):
        return {"type": "array", "maxItems": limits.max_tags, "uniqueItems": True, "items": self.item.schema(limits)}


# --------------------------------------------------------------------------- the tables: every per-field rule

SEED = Int(default=TRAIN_DEFAULTS["seed"], lo=0, hi=MAX_SEED)
ACTIVATION = Enum(
    default="relu",
    choices=ACTIVATIONS,
    description="default relu; required on the last layer; softmax only on the last layer",
)
# Strides are bounded by the input side (a longer stride sees one window); the message does not name the limit.
CONV_STRIDE = Int(default=1, lo=1, hi="max_input_side", cite_limit=False)
# A pool's stride defaults to its size (non-overlapping windows), as in PyTorch.
POOL_STRIDE = Int(
    default=lambda layer: layer.get("size") or 1,
    lo=1,
    hi="max_input_side",
    cite_limit=False,
    description="default: the pool size",
)


def _fraction(default: float | None = None) -> Number:
    return Number(default=REQUIRED if default is None else default, lo=0.0, hi=1.0, hi_open=True)


def _pool(kind: str) -> Table:
    return {"type": Const(choices=(kind,)), "size": Int(lo=1, hi="max_kernel"), "stride": POOL_STRIDE}


LAYER_FIELDS: dict[str, Table] = {
    "conv": {
        "type": Const(choices=("conv",)),
        "filters": Int(lo=1, hi="max_filters"),
        "kernel": Kernel(description="k (k×k) or [kh, kw]"),
        "stride": CONV_STRIDE,
        "padding": Int(default=0, lo=0, hi="max_kernel", cite_limit=False),
        "activation": ACTIVATION,
    },
    "maxpool": _pool("maxpool"),
    "avgpool": _pool("avgpool"),
    "dense": {"type": Const(choices=("dense",)), "units": Int(lo=1, hi="max_units"), "activation": ACTIVATION},
    "dropout": {"type": Const(choices=("dropout",)), "rate": _fraction()},
    "flatten": {"type": Const(choices=("flatten",))},
}
LAYER_DESCRIPTIONS = {"dense": "flattens a spatial input implicitly, in (C, H, W) order"}
LAYER_TYPE = Enum(choices=LAYER_TYPES)

MODEL_FIELDS: Table = {
    "input_shape": InputShape(description="[C, H, W]"),
    "layers": Field(description="the last layer must be dense"),  # a list of layers: see _check_layers
    "loss": Enum(choices=LOSSES, description="cross_entropy needs a softmax or sigmoid last layer"),
}

DATA_FIELDS: Table = {
    "dataset": Str(
        max_length="max_name_length",
        allow_empty=False,
        description=f"built-in ({', '.join(BUILTIN_DATASETS)}) or the id of an uploaded dataset",
    ),
    "test_fraction": _fraction(DATA_DEFAULTS["test_fraction"]),
    "validation_fraction": _fraction(DATA_DEFAULTS["validation_fraction"]),
}

OPTIMIZER_FIELDS: dict[str, Table] = {
    "sgd": {
        "type": Const(choices=("sgd",)),
        "lr": Number(lo=0.0, lo_open=True),
        "momentum": _fraction(SGD_DEFAULTS["momentum"]),
    },
    "adam": {
        "type": Const(choices=("adam",)),
        "lr": Number(lo=0.0, lo_open=True),
        "beta1": _fraction(ADAM_DEFAULTS["beta1"]),
        "beta2": _fraction(ADAM_DEFAULTS["beta2"]),
        "eps": Number(default=ADAM_DEFAULTS["eps"], lo=0.0, lo_open=True),
    },
}

TRAIN_FIELDS: Table = {
    "epochs": Int(lo=1, hi="max_epochs"),
    "batch_size": Int(
        lo=1, hi="max_batch_size", description="estimated batch memory at most {limits.max_batch_memory_bytes} bytes"
    ),
    "seed": SEED,
    "dtype": Enum(default=TRAIN_DEFAULTS["dtype"], choices=DTYPES),
    "optimizer": Variants(variants=OPTIMIZER_FIELDS),
    # weight_decay is the L2 coefficient λ; above 1 it would dominate any loss.
    "weight_decay": Number(default=TRAIN_DEFAULTS["weight_decay"], lo=0.0, hi=1.0),
}

GRADCHECK_FIELDS: Table = {
    "batch_size": Int(default=GRADCHECK_DEFAULTS["batch_size"], lo=1, hi="max_gradcheck_batch"),
    "eps": Number(default=GRADCHECK_DEFAULTS["eps"], lo=0.0, lo_open=True, hi=MAX_GRADCHECK_EPS),
    "seed": Int(default=GRADCHECK_DEFAULTS["seed"], lo=0, hi=MAX_SEED),
    "rotate_kernels": Bool(default=GRADCHECK_DEFAULTS["rotate_kernels"]),
}

JOB_FIELDS: Table = {
    "type": Enum(choices=JOB_TYPES),
    "name": Str(default="", max_length="max_name_length", description="empty: derived from type and dataset"),
    "tags": Tags(default=[]),
    "priority": Int(
        default=0, lo=-MAX_PRIORITY, hi=MAX_PRIORITY, description="higher runs first among the same user's queued jobs"
    ),
    "model": Field(),
    "data": Field(),
    "train": Field(),
    "gradcheck": Field(),
}


# --------------------------------------------------------------------------- layers


def _check_layer(
    errs: ErrorList, layer: Any, path: str, limits: Limits, is_last: bool
) -> tuple[str | None, dict | None]:
    """Validate one layer's own fields. Returns (type or None, normalised layer or None).

    The type is returned even when other fields are invalid so that the
    structural checks (order of layers) can still run and report.
    """
    if not isinstance(layer, Mapping):
        errs.add(path, f"must be an object, got {json_type(layer)}")
        return None, None
    ltype = LAYER_TYPE.read(errs, layer, "type", path, limits)
    if ltype is None:
        return None, None
    table = LAYER_FIELDS[ltype]
    check_object(errs, layer, path, table)
    before = len(errs)
    # The last layer's activation defines the output (softmax vs sigmoid vs linear): no silent default there.
    defaults = {"activation": REQUIRED} if ltype == "dense" and is_last else None
    out = {"type": ltype, **read_table(errs, layer, path, table, limits, defaults, skip=("type",))}
    if out.get("activation") == "softmax" and not is_last:
        errs.add(join(path, "activation"), "softmax is only allowed on the last layer")
    return ltype, (out if len(errs) == before else None)


def _check_layers(errs: ErrorList, m: Mapping, path: str, limits: Limits) -> tuple[list | None, list]:
    if "layers" not in m:
        errs.add(join(path, "layers"), "required field")
        return None, []
    layers, p = m["layers"], join(path, "layers")
    if not isinstance(layers, (list, tuple)):
        errs.add(p, f"must be an array of layers, got {json_type(layers)}")
        return None, []
    if not layers:
        errs.add(p, "must contain at least one layer")
        return None, []
    if len(layers) > limits.max_layers:
        errs.add(p, f"{len(layers)} layers is over the limit of {limits.max_layers}")
        return None, []
    checked = [_check_layer(errs, layer, f"{p}[{i}]", limits, i == len(layers) - 1) for i, layer in enumerate(layers)]
    return [c[1] for c in checked], [c[0] for c in checked]


def _check_order(errs: ErrorList, types: list[str | None], path: str) -> bool:
    """Rules on the sequence of layer types. Returns False if a spatial layer follows a flat one."""
    ok = True
    flat_since: int | None = None
    for i, t in enumerate(types):
        if t in ("dense", "flatten") and flat_since is None:
            flat_since = i
        elif t in SPATIAL_LAYERS and flat_since is not None:
            errs.add(
                f"{path}.layers[{i}]",
                f"{t} needs a spatial (C, H, W) input, but layer {flat_since} "
                f"({types[flat_since]}) already made it a flat vector",
            )
            ok = False
    if types and types[-1] is not None and types[-1] != "dense":
        errs.add(f"{path}.layers[{len(types) - 1}]", f"the last layer must be dense, got {types[-1]}")
    return ok


# --------------------------------------------------------------------------- model


def _check_model(errs: ErrorList, model: Any, limits: Limits, path: str) -> tuple[dict | None, list[LayerPlan] | None]:
    """Validate and normalise a model; returns (model, plans), either None when invalid."""
    m = check_object(errs, model, path, MODEL_FIELDS)
    if m is None:
        return None, None
    before = len(errs)
    input_shape = MODEL_FIELDS["input_shape"].read(errs, m, "input_shape", path, limits)
    loss = MODEL_FIELDS["loss"].read(errs, m, "loss", path, limits)
    layers, types = _check_layers(errs, m, path, limits)
    order_ok = _check_order(errs, types, path)
    if layers and layers[-1] is not None and loss is not None:
        _check_loss(errs, loss, layers, path)
    # Geometry is checked (and reported) even when unrelated fields are wrong,
    # as long as everything it depends on is valid.
    plans = None
    if order_ok and input_shape is not None and layers is not None and None not in layers:
        plans, error = infer_shapes({"input_shape": input_shape, "layers": layers}, path)
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


def _check_loss(errs: ErrorList, loss: str, layers: list[dict], path: str) -> None:
    """cross_entropy is defined on probabilities: the last layer must be softmax or sigmoid."""
    last = layers[-1]
    act = last.get("activation")
    if loss == "cross_entropy" and last["type"] == "dense" and act not in ("softmax", "sigmoid"):
        errs.add(
            join(path, "loss"),
            f"cross_entropy needs the last layer's activation to be softmax or sigmoid, "
            f"but layer {len(layers) - 1} uses {act} (use quadratic, or change the activation)",
        )


def validate_model_spec(model: Any, limits: Limits = Limits(), path: str = "model") -> dict:
    """Validate a model spec (``input_shape``, ``layers``, ``loss``) and return it normalised.

    Defaults filled in: conv ``stride`` 1, ``padding`` 0, ``activation`` relu,
    ``kernel`` as ``[kh, kw]``; pool ``stride`` = ``size``; dense ``activation``
    relu except on the last layer, where it is required. Raises :class:`SpecError`.
    """
    errs = ErrorList()
    out, _ = _check_model(errs, model, limits, path)
    errs.raise_if_any()
    return out


# --------------------------------------------------------------------------- job sections


def _check_section(errs: ErrorList, obj: Any, path: str, table: Table, limits: Limits) -> dict | None:
    """An object whose keys are exactly a table's, read field by field; None if anything is invalid."""
    d = check_object(errs, obj, path, table)
    if d is None:
        return None
    before = len(errs)
    out = read_table(errs, d, path, table, limits)
    return out if len(errs) == before else None


def _check_data(errs: ErrorList, data: Any, path: str, limits: Limits) -> dict | None:
    d = check_object(errs, data, path, DATA_FIELDS)
    if d is None:
        return None
    before = len(errs)
    out = read_table(errs, d, path, DATA_FIELDS, limits)
    test, val = out["test_fraction"], out["validation_fraction"]
    if test is not None and val is not None and test + val >= MAX_FRACTION_SUM:
        errs.add(path, f"test_fraction + validation_fraction must be below {MAX_FRACTION_SUM}, got {test + val:g}")
    return out if len(errs) == before else None


def _check_train(errs: ErrorList, train: Any, path: str, limits: Limits) -> dict | None:
    return _check_section(errs, train, path, TRAIN_FIELDS, limits)


def _check_gradcheck(errs: ErrorList, gc: Any, path: str, limits: Limits) -> dict | None:
    return _check_section(errs, gc, path, GRADCHECK_FIELDS, limits)


# --------------------------------------------------------------------------- job


def validate_job_spec(
    obj: Any, limits: Limits = Limits(), *, datasets: Callable[[str], tuple[int, ...] | None] | None = None
) -> dict:
    """Validate a whole job spec (docs/reference/job-spec.md) and return a NEW normalised dict.

    Every default is filled in (see :func:`validate_model_spec` for the model;
    ``train``: :data:`~engine.constants.TRAIN_DEFAULTS`, sgd
    :data:`~engine.constants.SGD_DEFAULTS`, adam :data:`~engine.constants.ADAM_DEFAULTS`;
    ``data``: :data:`~engine.constants.DATA_DEFAULTS`; ``gradcheck``:
    :data:`~engine.constants.GRADCHECK_DEFAULTS`; ``tags`` []; an empty
    ``name`` becomes ``"{type}-{dataset}"``).

    A train job needs ``model``, ``data``, ``train``; a gradcheck job needs
    ``model`` and ``gradcheck`` (``data`` is optional there and unused by the
    check itself, ``train`` is rejected).

    ``datasets`` resolves dataset ids that are not built-in to their sample
    shape ``(C, H, W)``, or None if unknown. With it, unknown ids are errors;
    without it, any non-built-in id is accepted unchecked.

    Collects ALL errors and raises one :class:`SpecError` with every one.
    """
    errs = ErrorList()
    job = check_object(errs, obj, "", JOB_FIELDS, what="a JSON object")
    if job is None:
        errs.raise_if_any()
    jtype = JOB_FIELDS["type"].read(errs, job, "type", "", limits)
    name = JOB_FIELDS["name"].read(errs, job, "name", "", limits)
    tags = JOB_FIELDS["tags"].read(errs, job, "tags", "", limits)
    priority = JOB_FIELDS["priority"].read(errs, job, "priority", "", limits)

    model, plans = (None, None)
    if "model" in job:
        model, plans = _check_model(errs, job["model"], limits, "model")
    else:
        errs.add("model", "required field")

    data = None
    if jtype == "train" or "data" in job:
        if "data" in job:
            data = _check_data(errs, job["data"], "data", limits)
        else:
            errs.add("data", "required field")

    section = None
    if jtype == "train":
        if "train" in job:
            section = _check_train(errs, job["train"], "train", limits)
        else:
            errs.add("train", "required field")
        if "gradcheck" in job:
            errs.add("gradcheck", "not allowed in a train job")
    elif jtype == "gradcheck":
        if "gradcheck" in job:
            section = _check_gradcheck(errs, job["gradcheck"], "gradcheck", limits)
        else:
            errs.add("gradcheck", "required field")
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
    out: dict[str, Any] = {
        "type": jtype,
        "name": name or _default_name(jtype, data, limits),
        "tags": tags,
        "priority": priority,
        "model": model,
    }
    if data is not None:
        out["data"] = data
    out[jtype] = section
    return out


def _default_name(jtype: str, data: dict | None, limits: Limits) -> str:
    name = f"{jtype}-{data['dataset']}" if data else jtype
    return name[: limits.max_name_length]


def _dataset_info(
    dataset: str, datasets: Callable[[str], tuple[int, ...] | None] | None
) -> tuple[bool, tuple | None, int | None]:
    """(known, shape, classes) of a dataset id; known is True when no resolver is given."""
    if dataset in BUILTIN_DATASETS:
        info = BUILTIN_DATASETS[dataset]
        return True, tuple(info["shape"]), info["classes"]
    if datasets is None:
        return True, None, None
    shape = datasets(dataset)
    return shape is not None, (tuple(shape) if shape is not None else None), None


def _check_dataset_fit(errs: ErrorList, model: dict, dataset: str, datasets) -> None:
    """The model's input must match the dataset's sample shape, and its outputs its classes."""
    known, shape, classes = _dataset_info(dataset, datasets)
    if not known:
        errs.add("data.dataset", f"unknown dataset {dataset!r}")
        return
    if shape is not None and tuple(model["input_shape"]) != shape:
        errs.add(
            "model.input_shape",
            f"{list(model['input_shape'])} does not match the sample shape {list(shape)} of dataset {dataset!r}",
        )
    last = len(model["layers"]) - 1
    units = model["layers"][last]["units"]
    if classes is not None and units != classes:
        errs.add(
            f"model.layers[{last}].units",
            f"the last layer has {units} units but dataset {dataset!r} has {classes} classes",
        )


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


def _check_cost(
    errs: ErrorList, jtype: str, plans: list[LayerPlan], model: dict, section: dict, limits: Limits
) -> None:
    """Bounds that depend on the model and the run together: batch memory, gradcheck size."""
    if jtype == "train":
        dtype, path = section["dtype"], "train.batch_size"
    else:
        dtype, path = GRADCHECK_DTYPE, "gradcheck.batch_size"
        n_params = sum(p.parameter_count for p in plans)
        if n_params > limits.max_gradcheck_parameters:
            errs.add(
                "model",
                f"the model has {n_params:,} parameters, over the gradcheck limit of "
                f"{limits.max_gradcheck_parameters:,} (the check runs 2 forward passes per parameter)",
            )
        # Every entry of every layer's input is perturbed too, for each sample of the batch.
        inputs = section["batch_size"] * sum(math.prod(p.in_shape) for p in plans)
        if n_params + inputs > limits.max_gradcheck_entries:
            errs.add(
                path,
                f"the check would perturb {n_params + inputs:,} entries ({n_params:,} parameters and "
                f"{inputs:,} layer-input entries for a batch of {section['batch_size']}), over the "
                f"limit of {limits.max_gradcheck_entries:,}",
            )
    mem = estimate_batch_memory(model, section["batch_size"], dtype)
    if mem > limits.max_batch_memory_bytes:
        errs.add(
            path,
            f"one batch of {section['batch_size']} needs an estimated {_mb(mem)} ({dtype}), "
            f"over the limit of {_mb(limits.max_batch_memory_bytes)}",
        )


# --------------------------------------------------------------------------- JSON Schema, from the same tables


def _layer_schemas(limits: Limits) -> list[dict]:
    return [table_schema(table, limits, LAYER_DESCRIPTIONS.get(kind)) for kind, table in LAYER_FIELDS.items()]


def job_spec_schema(limits: Limits = Limits()) -> dict:
    """JSON Schema (draft 2020-12, usable as an OpenAPI 3.1 schema object) of a job spec.

    Generated from the field tables the validator reads, for the bounds of
    ``limits``.  Self-contained (no ``$ref``) so it can be embedded anywhere in
    an OpenAPI document. It expresses the per-field rules; cross-field rules
    (output sizes, softmax only last, the last layer is dense, cross_entropy
    needs softmax/sigmoid, parameter and memory limits, dataset shape) are
    enforced by :func:`validate_job_spec` only. Note that JSON Schema's
    ``integer`` admits ``5.0``; the validator does not.
    """
    layers = {
        "type": "array",
        "minItems": 1,
        "maxItems": limits.max_layers,
        "items": {"oneOf": _layer_schemas(limits)},
        "description": MODEL_FIELDS["layers"].description,
    }
    model = table_schema(MODEL_FIELDS, limits, f"at most {limits.max_parameters} parameters", {"layers": layers})
    data = table_schema(DATA_FIELDS, limits, f"test_fraction + validation_fraction < {MAX_FRACTION_SUM}")
    train = table_schema(TRAIN_FIELDS, limits)
    gradcheck = table_schema(
        GRADCHECK_FIELDS,
        limits,
        f"runs in {GRADCHECK_DTYPE}; model at most {limits.max_gradcheck_parameters} parameters",
    )

    def job(kind: str, section: dict, required: list[str], description: str) -> dict:
        table = {k: f for k, f in JOB_FIELDS.items() if k not in JOB_TYPES or k == kind}
        s = table_schema(
            table, limits, description, {"type": {"const": kind}, "model": model, "data": data, kind: section}
        )
        s["required"] = required
        return s

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "convlab job spec",
        "oneOf": [
            job("train", train, ["type", "model", "data", "train"], "train job"),
            job("gradcheck", gradcheck, ["type", "model", "gradcheck"], "gradcheck job (data optional, unused)"),
        ],
    }


JOB_SPEC_SCHEMA = job_spec_schema()

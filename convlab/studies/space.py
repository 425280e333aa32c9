"""The study spec (docs/reference/studies.md): validation with field paths, the space, and trial specs.

A space key is a field path into the base job spec, written as validation
errors write them (``train.optimizer.lr``, ``model.layers[0].filters``).
Every trial spec a study can make is checked before the study is accepted:
grid studies check every combination, the others every corner of the space
(each dimension at its ends, each choice value); see docs/studies.md.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import SpecError

ALGORITHMS = ("grid", "random", "tpe")
DISTRIBUTIONS = ("choice", "uniform", "log_uniform", "int_uniform")
PRUNERS = ("none", "median", "asha")
METRICS = {"val_accuracy": "maximize", "val_loss": "minimize"}  # per-epoch series -> natural direction
DIRECTIONS = ("maximize", "minimize")

MAX_DIMENSIONS = 16
MAX_CHOICES = 64
MAX_TRIALS = 1000  # configurations
MAX_SEEDS = 10
MAX_JOBS = 2000  # trial jobs of one study (configurations x seeds)
MAX_CONCURRENT = 256
MAX_CORNERS = 4096  # trial specs checked at submission

_FIELDS = {"name", "base", "space", "algorithm", "objective", "max_trials", "max_concurrent", "seeds", "pruner", "seed"}
_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


def parse_path(path: str) -> list[str | int] | None:
    """``model.layers[0].filters`` -> ``["model", "layers", 0, "filters"]``; None if not a field path."""
    tokens: list[str | int] = []
    for part in path.split("."):
        m = _TOKEN.fullmatch(part)
        if m is None:
            return None
        tokens.append(m.group(1))
        tokens.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return tokens


def _resolve_parent(spec: Any, tokens: list[str | int]) -> tuple[Any, str | int] | None:
    """The container holding the path's last token, and that token; None if the path leads nowhere."""
    node = spec
    for tok in tokens[:-1]:
        if isinstance(tok, int):
            if not isinstance(node, list) or tok >= len(node):
                return None
        elif not isinstance(node, Mapping) or tok not in node:
            return None
        node = node[tok]
    last = tokens[-1]
    if isinstance(last, int):
        return (node, last) if isinstance(node, list) and last < len(node) else None
    return (node, last) if isinstance(node, Mapping) else None


def apply_params(base: Mapping, params: Mapping[str, Any]) -> dict:
    """A deep copy of ``base`` with each ``path: value`` of ``params`` set (paths checked beforehand)."""
    spec = copy.deepcopy(dict(base))
    for path, value in params.items():
        container, key = _resolve_parent(spec, parse_path(path))
        container[key] = value
    return spec


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_dimension(errs: list, base: Mapping, key: str, dim: Any, algorithm: str) -> dict | None:
    """One dimension of the space, normalised; problems appended to ``errs`` as (path, message)."""
    where = f"space[{key}]"
    tokens = parse_path(key) if isinstance(key, str) else None
    if not tokens:
        errs.append((where, "not a field path (write it as validation errors do: model.layers[0].filters)"))
        return None
    if tokens[0] in ("type", "name", "tags") or tokens[:2] == ["train", "seed"]:
        errs.append((where, f"{key} cannot be searched (use seeds for train.seed)"))
        return None
    if _resolve_parent(base, tokens) is None:
        errs.append((where, f"{key} is not a field of base (lists must already have that item, objects exist)"))
        return None
    if not isinstance(dim, Mapping):
        errs.append((where, "must be an object with a type"))
        return None
    kind = dim.get("type")
    if kind not in DISTRIBUTIONS:
        errs.append((f"{where}.type", f"must be one of {', '.join(DISTRIBUTIONS)}; got {kind!r}"))
        return None
    allowed = {"type", "values"} if kind == "choice" else {"type", "low", "high"}
    for extra in sorted(set(dim) - allowed):
        errs.append((f"{where}.{extra}", f"unknown field for {kind}"))
    if kind == "choice":
        values = dim.get("values")
        if not isinstance(values, list) or not 1 <= len(values) <= MAX_CHOICES:
            errs.append((f"{where}.values", f"must be a list of 1 to {MAX_CHOICES} values"))
            return None
        for i, v in enumerate(values):
            if not (v is None or isinstance(v, (str, bool)) or _number(v)):
                errs.append((f"{where}.values[{i}]", "must be a number, string, boolean or null"))
        if len({repr(v) for v in values}) != len(values):
            errs.append((f"{where}.values", "values must be distinct"))
        return {"type": kind, "values": values}
    if algorithm == "grid":
        errs.append((f"{where}.type", f"grid searches choice dimensions only; got {kind}"))
        return None
    low, high = dim.get("low"), dim.get("high")
    check = _int if kind == "int_uniform" else _number
    what = "an integer" if kind == "int_uniform" else "a finite number"
    ok = True
    for name, v in (("low", low), ("high", high)):
        if not check(v):
            errs.append((f"{where}.{name}", f"must be {what}; got {v!r}"))
            ok = False
    if not ok:
        return None
    if low >= high:
        errs.append((f"{where}.high", f"must be greater than low ({low}); got {high}"))
        return None
    if kind == "log_uniform" and low <= 0:
        errs.append((f"{where}.low", f"must be > 0 for log_uniform; got {low}"))
        return None
    return {"type": kind, "low": low, "high": high}


def _int_field(errs: list, body: Mapping, key: str, default: Any, low: int, high: int) -> Any:
    value = body.get(key, default)
    if value is None:
        return None
    if not _int(value) or not low <= value <= high:
        errs.append((key, f"must be an integer from {low} to {high}; got {value!r}"))
        return None
    return value


def _check_pruner(errs: list, pruner: Any) -> dict | None:
    if pruner is None:
        return {"type": "none"}
    if not isinstance(pruner, Mapping) or pruner.get("type") not in PRUNERS:
        errs.append(("pruner.type", f"must be one of {', '.join(PRUNERS)}"))
        return None
    options = {
        "none": {},
        "median": {"n_startup_trials": (1, 0, 100), "n_warmup_steps": (0, 0, 1000)},
        "asha": {"min_resource": (1, 1, 1000), "reduction_factor": (3, 2, 100)},
    }[pruner["type"]]
    out = {"type": pruner["type"]}
    for extra in sorted(set(pruner) - set(options) - {"type"}):
        errs.append((f"pruner.{extra}", f"unknown field for pruner {pruner['type']}"))
    for name, (default, low, high) in options.items():
        value = pruner.get(name, default)
        if not _int(value) or not low <= value <= high:
            errs.append((f"pruner.{name}", f"must be an integer from {low} to {high}; got {value!r}"))
        out[name] = value
    return out


def grid_size(space: Mapping[str, dict]) -> int:
    """How many combinations a grid over ``space`` (choice dimensions) has."""
    return math.prod(len(d["values"]) for d in space.values())


def grid_params(space: Mapping[str, dict], index: int) -> dict[str, Any]:
    """The ``index``-th combination of the grid, in a fixed order (the last key varies fastest)."""
    params = {}
    for key in reversed(list(space)):
        values = space[key]["values"]
        index, i = divmod(index, len(values))
        params[key] = values[i]
    return dict(reversed(list(params.items())))


def corner_params(space: Mapping[str, dict]) -> list[dict[str, Any]]:
    """The points checked before a study is accepted: each choice value x each numeric dimension's ends."""
    ends = [d["values"] if d["type"] == "choice" else [d["low"], d["high"]] for d in space.values()]
    return [dict(zip(space, combo, strict=True)) for combo in itertools.product(*ends)]


def trial_spec(study: Mapping, params: Mapping[str, Any], seed_index: int, number: int) -> dict:
    """The raw job spec of trial ``number``: base + params, ``train.seed`` = base seed + ``seed_index``."""
    spec = apply_params(study["base"], params)
    train = spec.setdefault("train", {})
    if isinstance(train, dict):
        train["seed"] = int(train.get("seed", 0)) + seed_index
    spec["name"] = f"{study['name']}-{number}"[:200]
    return spec


def _format_params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} = {v!r}" for k, v in params.items())


def validate_study(body: Any, validate: Callable[[dict], dict], workers: int) -> dict:
    """Validate a study spec and every trial spec it can make; return the normalised study spec.

    ``validate(job_spec)`` is the job spec validator (raises :class:`SpecError`);
    ``workers``: live workers, the default ``max_concurrent``.  Raises one
    ``SpecError`` with every problem found (paths as in the job spec's errors;
    ``base.`` for the base, ``space[path]`` for a dimension, and a trial spec's
    own path, with the values that made it, for an invalid corner).
    """
    errs: list[tuple[str, str]] = []

    def fail():
        raise SpecError([{"path": p, "message": m} for p, m in errs])

    if not isinstance(body, Mapping):
        errs.append(("", "a study must be a JSON object"))
        fail()
    for extra in sorted(set(body) - _FIELDS):
        errs.append((extra, "unknown field"))
    name = body.get("name", "study")
    if not isinstance(name, str) or not 1 <= len(name) <= 150:
        errs.append(("name", "must be a string of 1 to 150 characters"))
    base = body.get("base")
    if not isinstance(base, Mapping):
        errs.append(("base", "must be a job spec object"))
        fail()
    try:
        normal_base = validate(dict(base))
    except SpecError as exc:
        errs.extend((f"base.{d['path']}" if d["path"] else "base", d["message"]) for d in exc.details)
        fail()
    if normal_base["type"] != "train":
        errs.append(("base.type", "a study's base must be a train job"))
    algorithm = body.get("algorithm", "random")
    if algorithm not in ALGORITHMS:
        errs.append(("algorithm", f"must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}"))
        algorithm = "random"
    objective = body.get("objective", {"metric": "val_accuracy"})
    metric = objective.get("metric") if isinstance(objective, Mapping) else None
    if metric not in METRICS:
        errs.append(("objective.metric", f"must be one of {', '.join(METRICS)} (per-epoch series)"))
        metric = "val_accuracy"
    direction = objective.get("direction", METRICS[metric]) if isinstance(objective, Mapping) else None
    if direction not in DIRECTIONS:
        errs.append(("objective.direction", "must be maximize or minimize"))
    if normal_base.get("data", {}).get("validation_fraction", 0) <= 0:
        errs.append(("base.data.validation_fraction", f"must be > 0: the objective {metric} is measured on it"))
    space_in = body.get("space")
    space: dict[str, dict] = {}
    if not isinstance(space_in, Mapping) or not 1 <= len(space_in) <= MAX_DIMENSIONS:
        errs.append(("space", f"must be an object of 1 to {MAX_DIMENSIONS} dimensions"))
    else:
        for key, dim in space_in.items():
            checked = _check_dimension(errs, base, key, dim, algorithm)
            if checked is not None:
                space[key] = checked
    seeds = _int_field(errs, body, "seeds", 1, 1, MAX_SEEDS)
    max_trials = _int_field(errs, body, "max_trials", None, 1, MAX_TRIALS)
    max_concurrent = _int_field(errs, body, "max_concurrent", max(1, workers), 1, MAX_CONCURRENT)
    seed = _int_field(errs, body, "seed", 0, 0, 2**31 - 1)
    pruner = _check_pruner(errs, body.get("pruner"))
    if errs:
        fail()
    if algorithm == "grid":
        size = grid_size(space)
        if size > MAX_TRIALS:
            errs.append(("space", f"the grid has {size} combinations; at most {MAX_TRIALS}"))
        max_trials = min(max_trials or size, size)
    elif max_trials is None:
        errs.append(("max_trials", f"required for {algorithm}"))
    if max_trials and max_trials * seeds > MAX_JOBS:
        errs.append(("seeds", f"max_trials x seeds = {max_trials * seeds} trial jobs; at most {MAX_JOBS}"))
    corners = (
        corner_params(space)
        if not errs
        and math.prod(len(d["values"]) if d["type"] == "choice" else 2 for d in space.values()) <= MAX_CORNERS
        else None
    )
    if corners is None and not errs:
        errs.append(
            (
                "space",
                f"too many corners to check before starting (more than {MAX_CORNERS}); "
                "use fewer choice values or dimensions",
            )
        )
    if errs:
        fail()
    study = {
        "name": name,
        "base": dict(base),
        "space": space,
        "algorithm": algorithm,
        "objective": {"metric": metric, "direction": direction},
        "max_trials": max_trials,
        "max_concurrent": max_concurrent,
        "seeds": seeds,
        "pruner": pruner,
        "seed": seed,
    }
    seen: set[tuple[str, str]] = set()
    for params in corners:
        try:
            validate(trial_spec(study, params, seeds - 1, 0))
        except SpecError as exc:
            for d in exc.details:
                if (d["path"], d["message"]) not in seen and len(seen) < 50:
                    seen.add((d["path"], d["message"]))
                    errs.append((d["path"], f"{d['message']} (in the trial with {_format_params(params)})"))
    if errs:
        fail()
    return study

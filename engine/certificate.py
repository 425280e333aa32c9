"""Comparing a run with its reproduction: the certificate (docs/trust.md).

Everything two runs of one spec produce is compared: every metric point
(step by step, non-finite points by their kind), every weight, and the
result (or a diverged run's triage; a gradcheck job's report).  The verdict:

- ``bitwise``: all of it identical, to the last bit;
- ``within_tolerance``: every difference satisfies
  ``|a − b| ≤ tolerance · max(1, |a|, |b|)``;
- ``diverged``: something does not, or one run has what the other lacks.

``first_difference`` is the first place (smallest step, then series name;
results and weights after every step) where the runs part: beyond the
tolerance for ``diverged``, not identical for ``within_tolerance``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .watch import json_safe

#: Result fields that are measurements of the machine, not of the model.
UNCOMPARED = frozenset({"train_seconds"})
#: Environment keys that always differ between two runs and say nothing about their numbers.
EXPECTED_DIFFERENCES = frozenset({"worker"})


@dataclass
class Run:
    """What a finished job produced: status, metric series (null for non-finite) and their kinds,
    result or triage, weights (``weights.npz`` arrays), environment."""

    status: str
    metrics: dict[str, list] = field(default_factory=dict)
    nonfinite: dict[str, list] = field(default_factory=dict)
    result: dict | None = None
    triage: dict | None = None
    weights: dict[str, np.ndarray] | None = None
    environment: dict | None = None


def _leaves(obj, path: str = ""):
    """(path, value) of every scalar in a JSON document, ``a.b[2].c`` style."""
    if isinstance(obj, dict):
        for k in sorted(obj):
            if k not in UNCOMPARED:
                yield from _leaves(obj[k], f"{path}.{k}" if path else k)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, obj


class _Tally:
    """The largest differences seen so far and the first places the runs part."""

    def __init__(self, tolerance: float):
        self.tolerance = tolerance
        self.max_abs = 0.0
        self.max_rel = 0.0
        self.identical = True
        self.first_any: tuple | None = None  # first non-identical place
        self.first_beyond: tuple | None = None  # first place beyond the tolerance
        self.compared = 0

    def _place(self, series: str, step: int | None) -> tuple:
        return (math.inf if step is None else step, series)

    def _mark(self, series: str, step: int | None, beyond: bool) -> None:
        place = self._place(series, step)
        self.identical = False
        if self.first_any is None or place < self.first_any:
            self.first_any = place
        if beyond and (self.first_beyond is None or place < self.first_beyond):
            self.first_beyond = place

    def number(self, series: str, step: int | None, a, b) -> None:
        """Compare two scalars (numbers, strings for non-finite kinds, anything else by equality)."""
        self.compared += 1
        if type(a) is type(b) and a == b:
            return
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
        if numbers and math.isfinite(a) and math.isfinite(b):
            diff = abs(a - b)
            scale = max(1.0, abs(a), abs(b))
            self.max_abs, self.max_rel = max(self.max_abs, diff), max(self.max_rel, diff / scale)
            self._mark(series, step, diff > self.tolerance * scale)
            return
        self.max_abs = math.inf
        self._mark(series, step, True)

    def array(self, series: str, a: np.ndarray | None, b: np.ndarray | None) -> None:
        """Compare two weight arrays (bitwise, then by the largest entry difference)."""
        self.compared += 1
        if a is None or b is None or a.shape != b.shape or a.dtype != b.dtype:
            self.max_abs = math.inf
            self._mark(series, None, True)
            return
        if a.tobytes() == b.tobytes():
            return
        with np.errstate(all="ignore"):
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))  # inf == inf; NaN matches NaN
            diff = np.where(same, 0.0, np.abs(a64 - b64))
            diff[np.isnan(diff)] = np.inf  # one NaN, the other not
            rel = diff / np.maximum(1.0, np.maximum(np.abs(a64), np.abs(b64)))
            rel[np.isnan(rel)] = np.inf
        worst, worst_rel = float(diff.max()), float(rel.max())
        self.max_abs, self.max_rel = max(self.max_abs, worst), max(self.max_rel, worst_rel)
        self._mark(series, None, worst_rel > self.tolerance)


def _points(run: Run, name: str) -> dict[int, object]:
    kinds = dict((step, kind) for step, kind in run.nonfinite.get(name, []))
    return {step: (kinds.get(step, "null") if value is None else value) for step, value in run.metrics.get(name, [])}


def certify(original: Run, reproduction: Run, tolerance: float) -> dict:
    """The certificate (docs/trust.md) of ``reproduction`` against ``original``."""
    t = _Tally(tolerance)
    t.number("status", None, original.status, reproduction.status)
    for name in sorted(set(original.metrics) | set(reproduction.metrics)):
        a, b = _points(original, name), _points(reproduction, name)
        for step in sorted(set(a) | set(b)):
            t.number(name, step, a.get(step, "missing"), b.get(step, "missing"))
    for label, x, y in (
        ("result", original.result, reproduction.result),
        ("triage", original.triage, reproduction.triage),
    ):
        la, lb = dict(_leaves(x or {})), dict(_leaves(y or {}))
        for path in sorted(set(la) | set(lb)):
            t.number(f"{label}.{path}", None, la.get(path, "missing"), lb.get(path, "missing"))
    if original.weights is not None or reproduction.weights is not None:
        wa, wb = original.weights or {}, reproduction.weights or {}
        for key in sorted(set(wa) | set(wb)):
            t.array(f"weights.{key}", wa.get(key), wb.get(key))
    if t.identical:
        verdict, first = "bitwise", None
    elif t.first_beyond is None:
        verdict, first = "within_tolerance", t.first_any
    else:
        verdict, first = "diverged", t.first_beyond
    env_a, env_b = original.environment or {}, reproduction.environment or {}
    env_diff = {
        k: {"original": env_a.get(k), "reproduction": env_b.get(k)}
        for k in sorted(set(env_a) | set(env_b))
        if env_a.get(k) != env_b.get(k)
    }
    return json_safe(
        {
            "verdict": verdict,
            "tolerance": tolerance,
            "max_abs_difference": t.max_abs,
            "max_relative_difference": t.max_rel,
            "first_difference": None
            if first is None
            else {"series": first[1], "step": None if first[0] == math.inf else int(first[0])},
            "environment_differences": env_diff,
            "explaining_differences": sorted(k for k in env_diff if k not in EXPECTED_DIFFERENCES),
            "compared": t.compared,
        }
    )

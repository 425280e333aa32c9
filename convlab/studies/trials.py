"""What a study runs next, and what its trials add up to: the plan of a top-up and the study's summary.

``plan`` decides the next trials from the stored ones (docs/studies.md):
trial ``n`` is seed ``n % seeds`` of configuration ``n // seeds``; the seeds
of one configuration share its params; grid configurations come in a fixed
order, random and tpe ones from Optuna's sampler rebuilt from the
configurations so far.  It never asks for more than ``max_concurrent``
active trials or ``max_trials x seeds`` in all.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import SpecError

from . import sampler
from .space import grid_params, trial_spec

_STATE = {
    "succeeded": sampler.COMPLETE,
    "pruned": sampler.PRUNED,
    "failed": sampler.FAILED,
    "cancelled": sampler.FAILED,
    "queued": sampler.RUNNING,
    "running": sampler.RUNNING,
}


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def configurations(study: Mapping, trials: list[dict]) -> list[dict[str, Any]]:
    """The trials grouped by configuration (``number // seeds``), in order, with mean and std over seeds.

    A configuration counts (``complete``) only when every seed succeeded with a
    finite objective: a failed, diverged, pruned or cancelled seed keeps it out
    of the ranking.  ``std`` is the sample standard deviation (null for one seed).
    """
    seeds = study["seeds"]
    groups: dict[int, list[dict]] = {}
    for t in trials:
        groups.setdefault(t["number"] // seeds, []).append(t)
    out = []
    for index in sorted(groups):
        members = groups[index]
        values = [t["value"] for t in members]
        complete = len(members) == seeds and all(t["status"] == "succeeded" and _finite(t["value"]) for t in members)
        out.append(
            {
                "index": index,
                "params": members[0]["params"],
                "job_ids": [t["job_id"] for t in members],
                "statuses": [t["status"] for t in members],
                "complete": complete,
                "mean": statistics.fmean(values) if complete else None,
                "std": statistics.stdev(values) if complete and len(values) > 1 else (0.0 if complete else None),
            }
        )
    return out


def best(study: Mapping, trials: list[dict]) -> dict[str, Any] | None:
    """The best complete configuration by its mean (ties: the earliest), or None.

    ``job_id`` is its best seed's trial (the one to open or download).
    """
    configs = [c for c in configurations(study, trials) if c["complete"]]
    if not configs:
        return None
    sign = 1 if study["objective"]["direction"] == "maximize" else -1
    top = max(configs, key=lambda c: (sign * c["mean"], -c["index"]))
    by_id = {t["job_id"]: t for t in trials}
    job_id = max(top["job_ids"], key=lambda j: sign * by_id[j]["value"])
    return {
        "job_id": job_id,
        "params": top["params"],
        "value": top["mean"],
        "std": top["std"],
        "seeds": len(top["job_ids"]),
        "configuration": top["index"],
    }


def _observations(study: Mapping, trials: list[dict]) -> list[sampler.Observation]:
    """One observation per configuration for the sampler: complete with its mean, else its worst state."""
    obs = []
    for c in configurations(study, trials):
        if c["complete"]:
            state = sampler.COMPLETE
        else:
            states = {_STATE[s] for s in c["statuses"]}
            state = next(s for s in (sampler.RUNNING, sampler.FAILED, sampler.PRUNED, sampler.COMPLETE) if s in states)
            if state == sampler.COMPLETE:  # every seed succeeded, one without a finite value: diverged
                state = sampler.FAILED
        obs.append(sampler.Observation(c["params"], state, c["mean"]))
    return obs


def plan(study: dict, trials: list[dict]) -> list[tuple[int, dict, int]]:
    """The trials to create now: ``[(number, params, seed_index)]`` (see the module's docstring)."""
    seeds, total = study["seeds"], study["max_trials"] * study["seeds"]
    active = sum(t["status"] in ("queued", "running") for t in trials)
    room = min(study["max_concurrent"] - active, total - len(trials))
    params_of = {t["number"] // seeds: t["params"] for t in trials}
    history = None
    new = []
    for number in range(len(trials), len(trials) + max(0, room)):
        config = number // seeds
        if config not in params_of:
            if study["algorithm"] == "grid":
                params_of[config] = grid_params(study["space"], config)
            else:
                history = history if history is not None else _observations(study, trials)
                params_of[config] = sampler.next_params(study, history, config)
                history.append(sampler.Observation(params_of[config], sampler.RUNNING))
        new.append((number, params_of[config], number % seeds))
    return new


def spec_maker(validate: Callable[[dict], dict]) -> Callable[[dict, dict, int, int], tuple[dict, str | None]]:
    """The ``make`` of a top-up: the validated trial spec, or the raw one and why it is invalid."""

    def make(study: dict, params: dict, seed_index: int, number: int) -> tuple[dict, str | None]:
        raw = trial_spec(study, params, seed_index, number)
        try:
            return validate(raw), None
        except SpecError as exc:
            return raw, f"invalid trial spec: {exc}"

    return make


def should_prune(study: Mapping, trials: list[dict], job_id: str) -> bool:
    """Whether trial ``job_id`` should stop now, judged on its and its siblings' per-epoch objective values."""
    own = next((t for t in trials if t["job_id"] == job_id), None)
    if own is None or study["pruner"]["type"] == "none":
        return False
    siblings = [
        sampler.Observation(t["params"], _STATE[t["status"]], t["value"], t["steps"])
        for t in trials
        if t["job_id"] != job_id and t["status"] in ("succeeded", "pruned", "running")
    ]
    return sampler.should_prune(study, siblings, own["steps"])

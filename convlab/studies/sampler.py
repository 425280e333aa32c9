"""Optuna's samplers and pruners on an in-memory study rebuilt from the stored trials.

The database is the source of truth (docs/studies.md): nothing here keeps
state between calls.  Each call builds a throwaway ``optuna.Study`` from the
trials as stored, asks it one question (the next parameters; prune this
trial now?) and drops it.  Optuna is imported on first use: a worker that
never sees a study never pays for the import.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The states of a configuration (or a trial), as the sampler and the pruner see them.
COMPLETE, PRUNED, FAILED, RUNNING = "complete", "pruned", "failed", "running"


@dataclass
class Observation:
    """One configuration or trial as the sampler sees it: params, state, final value, per-epoch values."""

    params: dict[str, Any]
    state: str
    value: float | None = None
    steps: dict[int, float] = field(default_factory=dict)  # epoch (1-based) -> objective at its end


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def distributions(space: Mapping[str, dict]) -> dict:
    """The space as Optuna distributions (same keys)."""
    d = _optuna().distributions
    out = {}
    for key, dim in space.items():
        kind = dim["type"]
        if kind == "choice":
            out[key] = d.CategoricalDistribution(dim["values"])
        elif kind == "int_uniform":
            out[key] = d.IntDistribution(dim["low"], dim["high"])
        else:
            out[key] = d.FloatDistribution(dim["low"], dim["high"], log=kind == "log_uniform")
    return out


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _frozen(optuna, obs: Observation, dists: dict, system_attrs: dict | None = None):
    """``obs`` as an Optuna FrozenTrial; a complete one without a finite value counts as failed."""
    state = {
        COMPLETE: optuna.trial.TrialState.COMPLETE,
        PRUNED: optuna.trial.TrialState.PRUNED,
        FAILED: optuna.trial.TrialState.FAIL,
        RUNNING: optuna.trial.TrialState.RUNNING,
    }[obs.state]
    value = obs.value
    if state == optuna.trial.TrialState.COMPLETE and not _finite(value):
        state, value = optuna.trial.TrialState.FAIL, None
    if state != optuna.trial.TrialState.COMPLETE:
        value = None
    steps = {k: v for k, v in obs.steps.items() if v is not None}
    params = {k: v for k, v in obs.params.items() if k in dists}
    return optuna.trial.create_trial(
        state=state,
        value=value,
        params=params,
        distributions={k: dists[k] for k in params},
        intermediate_values=steps,
        system_attrs=system_attrs or {},
    )


def _study(optuna, study: Mapping, sampler=None, pruner=None):
    return optuna.create_study(direction=study["objective"]["direction"], sampler=sampler, pruner=pruner)


def _seed(study: Mapping, number: int) -> int:
    """A sampler seed for configuration ``number``: the same history gives the same params on any host."""
    return zlib.crc32(f"{study['seed']}:{number}".encode())


def next_params(study: Mapping, history: Sequence[Observation], number: int) -> dict[str, Any]:
    """The parameters of configuration ``number`` of a random or tpe study, given the configurations so far.

    Failed and diverged configurations enter as ``FAIL`` (TPE ignores them), so
    they never crash the sampler nor steer it.
    """
    optuna = _optuna()
    dists = distributions(study["space"])
    if study["algorithm"] == "tpe":
        startup = min(10, max(1, study["max_trials"] // 3))
        sampler = optuna.samplers.TPESampler(seed=_seed(study, number), n_startup_trials=startup)
    else:
        sampler = optuna.samplers.RandomSampler(seed=_seed(study, number))
    opt = _study(optuna, study, sampler=sampler)
    if study["algorithm"] == "tpe":  # random sampling ignores the history: skip rebuilding it
        for obs in history:
            opt.add_trial(_frozen(optuna, obs, dists))
    trial = opt.ask(dists)
    return {key: trial.params[key] for key in study["space"]}


def _pruner(optuna, options: Mapping):
    if options["type"] == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=options["n_startup_trials"], n_warmup_steps=options["n_warmup_steps"]
        )
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=options["min_resource"], reduction_factor=options["reduction_factor"]
    )


def _rung_attrs(options: Mapping, steps: Mapping[int, float], before: int | None) -> dict:
    """ASHA's bookkeeping rebuilt from the values: ``completed_rung_r`` = the value at rung r's step,
    for each rung reached (strictly before step ``before`` for the trial being judged)."""
    if options["type"] != "asha":
        return {}
    attrs, rung = {}, 0
    while True:
        step = options["min_resource"] * options["reduction_factor"] ** rung
        if step not in steps or (before is not None and step >= before):
            return attrs
        attrs[f"completed_rung_{rung}"] = steps[step]
        rung += 1


def should_prune(study: Mapping, siblings: Sequence[Observation], own: Mapping[int, float]) -> bool:
    """Whether a trial whose objective so far is ``own`` (epoch -> value) should stop now.

    ``siblings``: the study's other trials, each with its per-epoch values.
    """
    options = study["pruner"]
    if options["type"] == "none" or not own:
        return False
    optuna = _optuna()
    opt = _study(optuna, study, pruner=_pruner(optuna, options))
    for obs in siblings:
        if obs.steps:
            opt.add_trial(
                _frozen(
                    optuna, Observation({}, obs.state, obs.value, obs.steps), {}, _rung_attrs(options, obs.steps, None)
                )
            )
    last = max(own)
    steps = {k: (v if v is not None else float("nan")) for k, v in own.items()}
    opt.add_trial(_frozen(optuna, Observation({}, RUNNING, None, {}), {}, _rung_attrs(options, steps, last)))
    for epoch, value in steps.items():  # create_trial drops nan; report them on the running trial
        opt._storage.set_trial_intermediate_value(opt.trials[-1]._trial_id, epoch, value)
    return bool(opt.pruner.prune(opt, opt.trials[-1]))

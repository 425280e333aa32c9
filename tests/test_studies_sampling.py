"""The study logic without processes: grid order, the top-up plan (seeds, limits), ranking that never
picks a failed, diverged or pruned configuration, a sampler that survives failures, and the pruners
rebuilt from stored per-epoch values (median, ASHA)."""

from __future__ import annotations

import itertools

import pytest

from convlab.studies import sampler
from convlab.studies.space import corner_params, grid_params, grid_size
from convlab.studies.trials import best, configurations, plan, should_prune


def study(**kw) -> dict:
    spec = {
        "name": "s",
        "base": {},
        "algorithm": "grid",
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "space": {"a": {"type": "choice", "values": [1, 2, 3]}, "b": {"type": "choice", "values": ["x", "y"]}},
        "max_trials": 6,
        "max_concurrent": 2,
        "seeds": 1,
        "seed": 0,
        "pruner": {"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
    }
    spec.update(kw)
    return spec


def trial(number, params, status="succeeded", value=None, steps=None, seeds=1):
    return {
        "job_id": f"j{number}",
        "number": number,
        "params": params,
        "status": status,
        "value": value,
        "steps": steps or {},
        "seed": number % seeds,
        "epochs_completed": len(steps or {}),
    }


def test_grid_enumerates_every_combination_once_in_order():
    s = study()
    combos = [grid_params(s["space"], i) for i in range(grid_size(s["space"]))]
    assert [(c["a"], c["b"]) for c in combos] == list(itertools.product([1, 2, 3], ["x", "y"]))
    assert len(corner_params({"c": {"type": "uniform", "low": 0, "high": 1}, **s["space"]})) == 12


def test_plan_tops_up_to_max_concurrent_and_shares_params_between_seeds():
    s = study(seeds=3, max_trials=2, max_concurrent=4)
    first = plan(s, [])
    assert [n for n, _, _ in first] == [0, 1, 2, 3] and [k for _, _, k in first] == [0, 1, 2, 0]
    assert first[0][1] == first[2][1] != first[3][1]
    trials = [trial(n, p, "queued") for n, p, _ in first]
    assert plan(s, trials) == []  # full
    trials[0]["status"] = "succeeded"
    assert [n for n, _, _ in plan(s, trials)] == [4]
    trials += [trial(4, first[3][1], "queued"), trial(5, first[3][1], "succeeded")]
    assert plan(s, trials) == []  # all six made


def test_failed_diverged_and_pruned_configurations_are_never_best():
    s = study(seeds=2)
    trials = [
        trial(0, {"a": 1}, value=0.5),
        trial(1, {"a": 1}, value=0.7),
        trial(2, {"a": 2}, "failed", value=0.99),
        trial(3, {"a": 2}, value=0.99),
        trial(4, {"a": 3}, value=float("nan")),
        trial(5, {"a": 3}, value=0.98),
        trial(6, {"b": 1}, "pruned", value=0.97),
        trial(7, {"b": 1}, value=0.97),
    ]
    top = best(s, trials)
    assert top["params"] == {"a": 1} and top["value"] == pytest.approx(0.6)
    assert top["std"] == pytest.approx(0.1414213562) and top["job_id"] == "j1"
    assert [c["complete"] for c in configurations(s, trials)] == [True, False, False, False]
    assert best(study(objective={"metric": "val_loss", "direction": "minimize"}, seeds=2), trials)["job_id"] == "j0"


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_the_sampler_stays_in_the_space_whatever_failed(algorithm):
    space = {
        "lr": {"type": "log_uniform", "low": 1e-3, "high": 0.3},
        "f": {"type": "int_uniform", "low": 2, "high": 9},
        "act": {"type": "choice", "values": ["relu", "tanh"]},
    }
    s = study(algorithm=algorithm, space=space, max_trials=20, max_concurrent=1)
    trials = []
    for n in range(12):
        ((number, params, _),) = plan(s, trials)
        assert number == n and 1e-3 <= params["lr"] <= 0.3 and 2 <= params["f"] <= 9
        status, value = [
            ("succeeded", 0.5 + params["lr"]),
            ("failed", None),
            ("succeeded", float("nan")),
            ("pruned", 0.1),
        ][n % 4]
        trials.append(trial(n, params, status, value, {1: value}))
    again = plan(s, trials[:5])
    assert again == plan(s, trials[:5])  # the same history gives the same next params


def test_median_pruner_judges_from_completed_siblings():
    s = study()
    done = [
        trial(0, {"a": 1}, value=0.9, steps={1: 0.8, 2: 0.9}),
        trial(1, {"a": 2}, value=0.7, steps={1: 0.6, 2: 0.7}),
    ]
    low = trial(2, {"a": 3}, "running", steps={1: 0.2})
    high = trial(3, {"a": 3}, "running", steps={1: 0.75})
    assert should_prune(s, [*done, low, high], "j2") is True
    assert should_prune(s, [*done, low, high], "j3") is False
    assert should_prune(study(pruner={"type": "none"}), [*done, low], "j2") is False
    assert should_prune(s, [low], "j2") is False  # nothing to compare with yet


def test_asha_rungs_are_rebuilt_from_the_stored_values():
    s = study(pruner={"type": "asha", "min_resource": 1, "reduction_factor": 2})
    siblings = [trial(i, {"a": 1}, "succeeded", v, {1: v, 2: v}) for i, v in enumerate([0.9, 0.8, 0.7])]
    assert should_prune(s, [*siblings, trial(9, {}, "running", steps={1: 0.95})], "j9") is False
    assert should_prune(s, [*siblings, trial(9, {}, "running", steps={1: 0.1})], "j9") is True
    # Promoted at epoch 1, then worse than the rung-2 competitors at epoch 2.
    assert should_prune(s, [*siblings, trial(9, {}, "running", steps={1: 0.95, 2: 0.1})], "j9") is True
    assert sampler.should_prune(s, [], {1: float("nan")}) in (True, False)  # never raises on NaN

"""Studies with real processes (gunicorn API + Celery workers), on the embedded default (SQLite + the
filesystem broker) and on PostgreSQL + a private Redis: grid exactly once, random/tpe within max_trials and
max_concurrent, seeds, pruning, cancel, and a worker killed with SIGKILL mid-study."""

from __future__ import annotations

import itertools
import statistics
from datetime import datetime

import pytest

from tests.cluster import wait_for
from tests.helpers import tiny_train_spec
from tests.private_servers import cluster_on

pytestmark = pytest.mark.processes  # gunicorn and Celery workers

LRS = [0.05, 0.1]
FILTERS = [2, 4]


@pytest.fixture(scope="module", params=["embedded", "distributed"])
def cluster(request, tmp_path_factory):
    home = tmp_path_factory.mktemp(f"studies-{request.param}")
    with cluster_on(request.param, home, lambda: request.getfixturevalue("pg_databases")()) as c:
        yield c


@pytest.fixture(scope="module")
def alice(cluster):
    return cluster.client(cluster.token("alice"))


def base(epochs: int = 2) -> dict:
    spec = tiny_train_spec(epochs=epochs)
    spec["data"]["validation_fraction"] = 0.2
    return spec


def grid(**kw) -> dict:
    body = {
        "name": "grid",
        "base": base(),
        "algorithm": "grid",
        "max_concurrent": 2,
        "space": {
            "train.optimizer.lr": {"type": "choice", "values": LRS},
            "model.layers[0].filters": {"type": "choice", "values": FILTERS},
        },
    }
    body.update(kw)
    return body


def wait_study(cluster, client, study_id: str, timeout: float = 240) -> dict:
    def done():
        study = client.request("GET", f"/studies/{study_id}")
        return study if study["status"] != "running" else None

    try:
        return wait_for(done, timeout, f"study {study_id} to finish", interval=0.2)
    except AssertionError:
        print(*[cluster.log_tail(f"worker{i + 1}") for i in range(len(cluster.workers))], sep="\n----\n")
        raise


def most_at_once(client, trials: list[dict]) -> int:
    """The largest number of trials that ran at the same moment (from their start and finish times)."""
    events = []
    for t in trials:
        job = client.request("GET", f"/jobs/{t['job_id']}")
        if job["started_at"]:
            events += [(datetime.fromisoformat(job["started_at"]), 1), (datetime.fromisoformat(job["finished_at"]), -1)]
    level = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at the same instant
        level += step
        peak = max(peak, level)
    return peak


def test_grid_runs_every_combination_exactly_once(cluster, alice):
    study = alice.request("POST", "/studies", grid())
    done = wait_study(cluster, alice, study["id"])
    assert done["status"] == "succeeded"
    trials = done["trials"]
    combos = [(t["params"]["train.optimizer.lr"], t["params"]["model.layers[0].filters"]) for t in trials]
    assert sorted(combos) == sorted(itertools.product(LRS, FILTERS))
    assert [t["number"] for t in trials] == [0, 1, 2, 3]
    assert all(t["status"] == "succeeded" and t["epochs_completed"] == 2 for t in trials)
    assert done["best"]["value"] == max(t["value"] for t in trials)
    assert done["best"]["job_id"] in {t["job_id"] for t in trials if t["value"] == done["best"]["value"]}
    assert most_at_once(alice, trials) <= 2
    jobs = alice.request("GET", "/jobs?limit=500")["jobs"]
    assert sum(j.get("study_id") == study["id"] for j in jobs) == 4  # trials are ordinary jobs


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_random_and_tpe_respect_max_trials_and_max_concurrent(cluster, alice, algorithm):
    body = {
        "name": algorithm,
        "base": base(),
        "algorithm": algorithm,
        "max_trials": 5,
        "max_concurrent": 1,
        "space": {
            "train.optimizer.lr": {"type": "log_uniform", "low": 0.01, "high": 0.3},
            "model.layers[0].filters": {"type": "int_uniform", "low": 2, "high": 6},
        },
    }
    done = wait_study(cluster, alice, alice.request("POST", "/studies", body)["id"])
    assert done["status"] == "succeeded"
    trials = done["trials"]
    assert len(trials) == 5 and [t["number"] for t in trials] == list(range(5))
    for t in trials:
        assert 0.01 <= t["params"]["train.optimizer.lr"] <= 0.3
        assert t["params"]["model.layers[0].filters"] in range(2, 7)
    assert most_at_once(alice, trials) == 1  # two workers idle-waiting, yet one trial at a time


def test_seeds_give_three_trials_per_configuration_and_mean_std(cluster, alice):
    body = grid(space={"train.optimizer.lr": {"type": "choice", "values": LRS}}, seeds=3)
    done = wait_study(cluster, alice, alice.request("POST", "/studies", body)["id"])
    assert done["status"] == "succeeded"
    trials = done["trials"]
    assert len(trials) == 6
    for config in done["configurations"]:
        members = [t for t in trials if t["job_id"] in config["job_ids"]]
        assert sorted(t["seed"] for t in members) == [0, 1, 2]
        assert {t["params"]["train.optimizer.lr"] for t in members} == {config["params"]["train.optimizer.lr"]}
        values = [t["value"] for t in members]
        assert config["mean"] == pytest.approx(statistics.fmean(values))
        assert config["std"] == pytest.approx(statistics.stdev(values))
    top = max(done["configurations"], key=lambda c: c["mean"])
    assert done["best"]["params"] == top["params"] and done["best"]["value"] == pytest.approx(top["mean"])


@pytest.mark.parametrize(
    "pruner", [{"type": "median", "n_startup_trials": 1}, {"type": "asha", "min_resource": 1, "reduction_factor": 2}]
)
def test_pruners_stop_clearly_worse_trials(cluster, alice, pruner):
    # One good learning rate first, then two that learn nothing: one trial at a time, so the good one
    # has finished when the others are judged at their first epoch.
    body = grid(
        base=base(epochs=4),
        max_concurrent=1,
        space={"train.optimizer.lr": {"type": "choice", "values": [0.1, 1e-7, 2e-7]}},
    )
    plain = wait_study(cluster, alice, alice.request("POST", "/studies", body)["id"])
    body["pruner"] = pruner
    pruned = wait_study(cluster, alice, alice.request("POST", "/studies", body)["id"])

    assert [t["status"] for t in plain["trials"]] == ["succeeded"] * 3
    assert [t["status"] for t in pruned["trials"]] == ["succeeded", "pruned", "pruned"]
    epochs = [sum(t["epochs_completed"] for t in s["trials"]) for s in (plain, pruned)]
    assert epochs[0] == 12 and epochs[1] < epochs[0]
    assert pruned["best"]["params"] == plain["best"]["params"] == {"train.optimizer.lr": 0.1}
    job = alice.request("GET", f"/jobs/{pruned['trials'][1]['job_id']}")
    assert job["result"]["pruned_at_epoch"] < 4
    assert (
        len(alice.request("GET", f"/jobs/{job['id']}/metrics")["series"]["val_accuracy"])
        == job["result"]["pruned_at_epoch"]
    )  # its curves stay


def test_cancel_stops_queued_and_running_trials(cluster, alice):
    body = grid(base=base(epochs=400))
    study = alice.request("POST", "/studies", body)
    wait_for(
        lambda: alice.request("GET", f"/studies/{study['id']}")["counts"].get("running") == 2, 60, "two trials to run"
    )
    cancelled = alice.request("POST", f"/studies/{study['id']}/cancel")["study"]
    assert cancelled["status"] == "cancelled"

    def settled():
        s = alice.request("GET", f"/studies/{study['id']}")
        return s if not ({"queued", "running"} & set(s["counts"])) else None

    final = wait_for(settled, 60, "every trial to stop")
    assert final["counts"] == {"cancelled": 2} and final["status"] == "cancelled"
    assert final["best"] is None


def test_a_worker_killed_mid_study_costs_no_trial_and_doubles_none(cluster, alice):
    study = alice.request("POST", "/studies", grid(base=base(epochs=30)))
    running = wait_for(
        lambda: [
            w
            for w in alice.request("GET", "/workers")["workers"]
            if w["job_id"] in {t["job_id"] for t in alice.request("GET", f"/studies/{study['id']}")["trials"]}
        ],
        60,
        "a worker to run a trial",
    )
    pid = int(running[0]["name"].rsplit(":", 1)[1])
    victim = next(p for p in cluster.workers if p.poll() is None and _has_child(p.pid, pid))
    cluster.kill(victim)
    cluster.start_worker()
    done = wait_study(cluster, alice, study["id"], timeout=300)
    assert done["status"] == "succeeded"
    combos = sorted((t["params"]["train.optimizer.lr"], t["params"]["model.layers[0].filters"]) for t in done["trials"])
    assert combos == sorted(itertools.product(LRS, FILTERS))
    assert all(t["status"] == "succeeded" and t["epochs_completed"] == 30 for t in done["trials"])
    attempts = [alice.request("GET", f"/jobs/{t['job_id']}")["attempts"] for t in done["trials"]]
    assert max(attempts) == 2  # the killed one ran again, resumed


def _has_child(parent: int, pid: int) -> bool:
    """Whether ``pid`` is ``parent`` or one of its children (a Celery pool process)."""
    if parent == pid:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1]) == parent
    except OSError:
        return False


def test_the_cli_creates_waits_for_and_reports_a_study(cluster, alice, tmp_path):
    import json
    import subprocess
    import sys

    path = tmp_path / "study.json"
    path.write_text(json.dumps(grid(space={"train.optimizer.lr": {"type": "choice", "values": LRS}})))
    env = {**cluster.env, "CONVLAB_URL": cluster.url, "CONVLAB_TOKEN": alice.token}

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "convlab.cli", "study", *args], env=env, capture_output=True, text=True, timeout=300
        )

    created = cli("create", str(path), "--wait")
    assert created.returncode == 0, created.stderr
    study_id = created.stderr.split()[1]
    assert "succeeded (2 succeeded)" in created.stdout and "best: " in created.stdout
    shown = json.loads(cli("status", study_id, "--json").stdout)
    assert shown["best"]["job_id"] in created.stdout and len(shown["trials"]) == 2
    late = cli("cancel", study_id)
    assert late.returncode == 1 and "already finished" in late.stderr


def test_a_study_goes_on_through_an_api_restart(cluster, alice):
    study = alice.request("POST", "/studies", grid(base=base(epochs=10)))
    cluster.kill(cluster.api)  # the API holds no study state: the workers go on
    cluster.start_api()
    done = wait_study(cluster, alice, study["id"])
    assert done["status"] == "succeeded" and [t["number"] for t in done["trials"]] == [0, 1, 2, 3]
    combos = sorted((t["params"]["train.optimizer.lr"], t["params"]["model.layers[0].filters"]) for t in done["trials"])
    assert combos == sorted(itertools.product(LRS, FILTERS))

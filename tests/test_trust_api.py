"""Reproductions, certificates, divergence and non-finite metrics through the API, with an in-process
runner (the real workers: tests/test_trust_cluster.py)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

import store
from engine.certificate import Run, _leaves, certify
from tests.test_dashboard import Dashboard
from workers.runner import JobRunner

DIVERGING = {
    "type": "train",
    "name": "lr5",
    "model": {
        "input_shape": [1, 8, 8],
        "layers": [{"type": "dense", "units": 10, "activation": "linear"}],
        "loss": "quadratic",
    },
    "data": {"dataset": "digits"},
    "train": {"epochs": 3, "batch_size": 32, "seed": 0, "optimizer": {"type": "sgd", "lr": 5}},
}
SMALL = {
    "type": "train",
    "name": "small",
    "model": {
        "input_shape": [1, 8, 8],
        "layers": [
            {"type": "conv", "filters": 4, "kernel": 3, "activation": "relu"},
            {"type": "maxpool", "size": 2},
            {"type": "dense", "units": 10, "activation": "softmax"},
        ],
        "loss": "cross_entropy",
    },
    "data": {"dataset": "digits"},
    "train": {"epochs": 2, "batch_size": 64, "seed": 3, "optimizer": {"type": "sgd", "lr": 0.1}},
}


def _submit(client, headers, spec) -> dict:
    r = client.post("/api/v1/jobs", json=spec, headers=headers)
    assert r.status_code == 201, r.text
    return r.get_json()


def test_a_reproduction_on_another_worker_is_certified_bitwise(client, headers, app_store, settings):
    original = _submit(client, headers, SMALL)
    assert JobRunner(app_store, settings, "w1:1").run_next() == "succeeded"
    for name in ("w1:1", "w2:2"):
        store.worker_heartbeat(app_store, name, "h", 1, None)
    r = client.post(f"/api/v1/jobs/{original['id']}/reproduce", headers=headers)
    assert r.status_code == 201, r.text
    copy = r.get_json()
    assert copy["reproduces"] == original["id"] and copy["spec"] == original["spec"]
    assert client.get(f"/api/v1/jobs/{copy['id']}", headers=headers).get_json().get("certificate") is None
    # The worker that ran the original passes it over while another is live; the other takes it.
    assert JobRunner(app_store, settings, "w1:1").run_next() is None
    assert JobRunner(app_store, settings, "w2:2").run_next() == "succeeded"
    done = client.get(f"/api/v1/jobs/{copy['id']}", headers=headers).get_json()
    cert = done["certificate"]
    assert cert["verdict"] == "bitwise" and cert["max_abs_difference"] == 0 and cert["first_difference"] is None
    assert cert["environment_differences"]["worker"] == {"original": "w1:1", "reproduction": "w2:2"}
    assert done["environment"]["worker"] == "w2:2" and done["environment"]["blas_threads"] >= 1
    assert {"convlab", "python", "numpy", "blas", "cpu"} <= set(done["environment"])
    assert cert["compared"] > 100  # points, result fields and weights
    # Stored once: a second read answers the same certificate.
    assert client.get(f"/api/v1/jobs/{copy['id']}", headers=headers).get_json()["certificate"] == cert


def test_the_hint_yields_when_the_original_worker_is_the_only_one_alive(client, headers, app_store, settings):
    original = _submit(client, headers, SMALL)
    assert JobRunner(app_store, settings, "w1:1").run_next() == "succeeded"
    store.worker_heartbeat(app_store, "w1:1", "h", 1, None)
    copy = client.post(f"/api/v1/jobs/{original['id']}/reproduce", headers=headers).get_json()
    assert JobRunner(app_store, settings, "w1:1").run_next() == "succeeded"
    assert store.get_job(app_store, copy["id"], None)["worker"] == "w1:1"


def test_reproduce_refuses_bad_input_with_field_paths(client, headers, auth):
    original = _submit(client, headers, SMALL)
    r = client.post(f"/api/v1/jobs/{original['id']}/reproduce", json={"tolerance": -1}, headers=headers)
    assert r.status_code == 422 and r.get_json()["error"]["details"][0]["path"] == "tolerance"
    r = client.post(f"/api/v1/jobs/{original['id']}/reproduce", json={"tolerence": 1e-3}, headers=headers)
    assert r.status_code == 422 and r.get_json()["error"]["details"][0]["path"] == "tolerence"
    assert client.post("/api/v1/jobs/nope/reproduce", headers=headers).status_code == 404
    assert client.post(f"/api/v1/jobs/{original['id']}/reproduce", headers=auth.headers("bob")).status_code == 404


def test_a_diverged_job_fails_with_a_triage_and_its_curves_and_csv_still_work(
    client, headers, app_store, settings, auth
):
    job = _submit(client, headers, DIVERGING)
    assert JobRunner(app_store, settings, "w1:1").run_next() == "failed"
    r = client.get(f"/api/v1/jobs/{job['id']}", headers=headers)
    assert "NaN" not in r.text and "Infinity" not in r.text
    done = r.get_json()
    assert done["error"].startswith("diverged")
    t = done["triage"]
    assert t["phase"] in ("forward", "backward", "update") and t["layer"] == 0 and t["hint"]
    assert t["gradcheck"]["passed"] is True
    m = client.get(f"/api/v1/jobs/{job['id']}/metrics", headers=headers)
    assert "NaN" not in m.text
    body = m.get_json()
    steps = body["series"]["train_loss"]
    assert steps[-1] == [t["step"], None] and all(v is not None for _, v in steps[:-1])
    assert body["nonfinite"] == {"train_loss": [[t["step"], "inf"]]} or body["nonfinite"] == {
        "train_loss": [[t["step"], "nan"]]
    }
    dash = Dashboard(client, auth.token("alice"))
    rows = list(csv.reader(io.StringIO(dash.get(f"/jobs/{job['id']}/metrics.csv").text)))
    assert rows[0] == ["series", "step", "value"] and rows[-1][:2] == ["train_loss", str(t["step"])]
    assert dash.get(f"/jobs/{job['id']}").status_code == 200


def _run(metrics, weights=None, env=None, status="succeeded"):
    return Run(
        status=status,
        metrics=metrics,
        result={"test_loss": metrics["train_loss"][-1][1], "train_seconds": np.random.rand()},
        weights=weights,
        environment=env,
    )


def test_certificate_verdicts():
    a = _run({"train_loss": [[1, 2.0], [2, 1.0]]}, {"layers.0.W": np.ones(3, np.float32)}, {"blas_threads": 1})
    same = _run({"train_loss": [[1, 2.0], [2, 1.0]]}, {"layers.0.W": np.ones(3, np.float32)}, {"blas_threads": 1})
    assert certify(a, same, 1e-6)["verdict"] == "bitwise"  # train_seconds is not compared
    close = _run(
        {"train_loss": [[1, 2.0], [2, 1.0 + 1e-9]]}, {"layers.0.W": np.ones(3, np.float32)}, {"blas_threads": 2}
    )
    c = certify(a, close, 1e-6)
    assert c["verdict"] == "within_tolerance" and c["first_difference"] == {"series": "train_loss", "step": 2}
    assert c["max_abs_difference"] == pytest.approx(1e-9, rel=1e-3)
    assert c["environment_differences"] == {"blas_threads": {"original": 1, "reproduction": 2}}
    assert c["explaining_differences"] == ["blas_threads"]
    far = _run({"train_loss": [[1, 2.0], [2, 1.5]]}, {"layers.0.W": np.ones(3, np.float32) * 2})
    c = certify(a, far, 1e-6)
    assert c["verdict"] == "diverged" and c["first_difference"] == {"series": "train_loss", "step": 2}
    nan = _run({"train_loss": [[1, 2.0], [2, None]]})
    nan.nonfinite = {"train_loss": [[2, "nan"]]}
    c = certify(a, nan, 1e-6)
    json.dumps(c, allow_nan=False)
    assert c["verdict"] == "diverged" and c["max_abs_difference"] == "inf"


def test_dashboard_reproduce_button_and_trust_json(client, headers, app_store, settings, auth):
    original = _submit(client, headers, SMALL)
    assert JobRunner(app_store, settings, "w1:1").run_next() == "succeeded"
    dash = Dashboard(client, auth.token("alice"))
    page = dash.get(f"/jobs/{original['id']}").text
    assert 'id="reproduce-form"' in page and 'id="certificate-card"' in page and 'id="health-card"' in page
    r = client.post(f"/jobs/{original['id']}/reproduce", data={"csrf_token": dash.csrf})
    assert r.status_code == 302
    copy_id = r.headers["Location"].rsplit("/", 1)[-1]
    assert store.get_job(app_store, copy_id, None)["reproduces"] == original["id"]
    assert client.post(f"/jobs/{original['id']}/reproduce", data={}).status_code in (400, 403)  # no CSRF token
    waiting = dash.get(f"/jobs/{copy_id}/trust.json").get_json()
    assert waiting["certificate"] is None and waiting["original"]["id"] == original["id"]
    assert JobRunner(app_store, settings, "w2:2").run_next() == "succeeded"
    done = dash.get(f"/jobs/{copy_id}/trust.json").get_json()
    assert done["certificate"]["verdict"] == "bitwise" and done["environment"]["worker"] == "w2:2"
    assert done["original"]["environment"]["worker"] == "w1:1"


def test_a_gradcheck_job_is_certified_on_its_report(client, headers, app_store, settings):
    spec = {
        "type": "gradcheck",
        "name": "gc",
        "model": {
            "input_shape": [1, 5, 5],
            "layers": [
                {"type": "conv", "filters": 2, "kernel": 3, "activation": "tanh"},
                {"type": "dense", "units": 3, "activation": "softmax"},
            ],
            "loss": "cross_entropy",
        },
        "gradcheck": {},
    }
    original = _submit(client, headers, spec)
    assert JobRunner(app_store, settings, "w1:1").run_next() == "succeeded"
    copy = client.post(f"/api/v1/jobs/{original['id']}/reproduce", json={"tolerance": 1e-9}, headers=headers).get_json()
    assert JobRunner(app_store, settings, "w2:2").run_next() == "succeeded"
    cert = client.get(f"/api/v1/jobs/{copy['id']}", headers=headers).get_json()["certificate"]
    assert cert["verdict"] == "bitwise" and cert["tolerance"] == 1e-9
    n_leaves = len(list(_leaves(original_report := store.get_job(app_store, original["id"], None)["result"])))
    assert n_leaves > 20 and cert["compared"] == n_leaves + 1  # every report leaf, and the status
    # The same report with one number moved is caught there, by its path.
    moved = json.loads(json.dumps(original_report))
    moved["layers"][0]["max_relative_error"] += 1e-3
    c = certify(Run("succeeded", result=original_report), Run("succeeded", result=moved), 1e-6)
    assert c["verdict"] == "diverged" and c["first_difference"] == {
        "series": "result.layers[0].max_relative_error",
        "step": None,
    }

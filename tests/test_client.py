"""The Python client (``from convlab import Client``) against a running service on the embedded default:
the API under gunicorn and a Celery worker, SQLite and the filesystem broker (tests/cluster.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import store
from convlab import Client, Job
from convlab.errors import (
    Conflict,
    ConnectionFailed,
    InvalidRequest,
    JobCancelled,
    JobFailed,
    JobTimeout,
    NotFound,
    SpecError,
    Unauthorized,
)
from tests.cluster import Cluster, free_port, wait_for
from tests.helpers import tiny_train_spec

pytestmark = pytest.mark.processes  # the API server and a worker


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    home = tmp_path_factory.mktemp("client-home")
    c = Cluster(home, f"sqlite:///{home / 'convlab.db'}").start(workers=1)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def trained(cluster) -> Job:
    """One job trained to the end, followed with ``stream()`` as it ran: (job, events)."""
    client = Client(cluster.url, cluster.token("trainer"))
    job = client.submit(tiny_train_spec(epochs=3))
    events = list(job.stream())
    return job, events


def test_submit_wait_and_the_result(cluster, tmp_path):
    client = Client(cluster.url, cluster.token("waiter"))
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(tiny_train_spec(epochs=2)))
    job = client.submit(path)  # a spec file, as the CLI takes it
    assert isinstance(job, Job) and job.status in ("queued", "running") and len(job.id) == 32
    assert job.spec["train"]["dtype"] == "float32"  # normalised: defaults filled in
    assert job.wait(timeout=120, progress=False) is job
    assert job.status == "succeeded" and job.result["epochs_completed"] == 2
    assert client.job(job.id).result == job.result


def test_wait_draws_progress(cluster, capsys):
    client = Client(cluster.url, cluster.token("bar"))
    client.submit(tiny_train_spec(epochs=2)).wait(timeout=120, progress=True)
    assert "epoch" in capsys.readouterr().err


def test_stream_yields_progress_then_points_then_the_end(trained):
    job, events = trained
    kinds = [e.kind for e in events]
    assert kinds[-1] == "end" and kinds.count("end") == 1 and events[-1].status == "succeeded"
    assert "progress" in kinds and "metrics" in kinds
    assert job.status == "succeeded"
    streamed: dict[str, list] = {}
    for e in events:
        for name, pts in e.points.items():
            streamed.setdefault(name, []).extend(pts)
    # Every point exactly once, in step order: the same series the metrics call reads in full.
    full = job.metrics()
    assert set(streamed) == set(full) and "train_loss" in full and "val_loss" in full
    for name, pts in streamed.items():
        steps = [s for s, _ in pts]
        assert steps == sorted(set(steps))
        assert np.array_equal(np.array(pts, dtype=np.float64), full[name])


def test_metrics_by_name(trained):
    job, _ = trained
    m = job.metrics(["val_loss"])
    assert list(m) == ["val_loss"] and m["val_loss"].shape == (3, 2) and m["val_loss"].dtype == np.float64
    steps, values = m["val_loss"].T
    assert np.all(np.diff(steps) > 0) and np.all(np.isfinite(values))


def test_weights_network_and_predictions_agree_with_the_api(trained):
    job, _ = trained
    w = job.weights()
    assert set(w) == {"layers.0.W", "layers.0.b", "layers.3.W", "layers.3.b"}
    assert w["layers.0.W"].shape == (6, 1, 3, 3) and w["layers.0.W"].dtype == np.float32
    net = job.network()
    for key, value in w.items():
        assert np.array_equal(net.params[key], value)
    x = np.random.default_rng(7).random((5, 1, 12, 12))
    api = job.predict(x)
    assert api.shape == (5, 4)
    local = net.forward(x.astype(np.float32))
    np.testing.assert_allclose(api, local, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(api.sum(axis=1), 1.0, rtol=1e-5)
    # Another batch size may round differently in BLAS (docs/reference/http-api.md#predictions).
    np.testing.assert_allclose(job.predict(x[0]), api[:1], rtol=1e-5, atol=1e-7)  # one (C, H, W) input
    np.testing.assert_allclose(job.predict(x, batch_size=2), api, rtol=1e-5, atol=1e-7)  # in three requests


def test_prediction_errors_are_exceptions_with_paths(trained):
    job, _ = trained
    with pytest.raises(InvalidRequest) as err:
        job.predict(np.full((1, 1, 12, 12), 2.0))
    assert err.value.status == 422 and err.value.details[0]["path"] == "inputs[0][0][0][0]"


def test_errors_are_exceptions_with_the_api_message(cluster):
    client = Client(cluster.url, cluster.token("errors"))
    bad = tiny_train_spec()
    bad["train"]["epochs"] = 10**9
    bad["model"]["layers"][0]["kernel"] = 30
    with pytest.raises(SpecError) as err:
        client.submit(bad)
    assert err.value.status == 422 and err.value.code == "invalid_spec"
    assert {d["path"] for d in err.value.details} == {"train.epochs", "model.layers[0].kernel"}
    assert "train.epochs" in str(err.value)
    with pytest.raises(NotFound):
        client.job("0" * 32)
    with pytest.raises(Unauthorized):
        Client(cluster.url, "cl_not-a-token").job("0" * 32)
    with pytest.raises(ConnectionFailed) as refused:
        Client(f"http://127.0.0.1:{free_port()}", "cl_x", retries=1).job("0" * 32)
    assert isinstance(refused.value, ConnectionError)


def test_timeout_cancel_and_a_failed_job(cluster):
    client = Client(cluster.url, cluster.token("canceller"))
    long = client.submit(tiny_train_spec(epochs=400))
    wait_for(lambda: long.refresh().status == "running", 120, "the long job to start")
    with pytest.raises(JobTimeout) as timeout:
        long.wait(timeout=0.3, progress=False)
    assert timeout.value.job is long and isinstance(timeout.value, TimeoutError)
    # The only worker is busy: this one stays queued, and fails as a worker would report it.
    queued = client.submit(tiny_train_spec(epochs=1))
    assert store.claim_job(cluster.store, queued.id, "test-worker:1") is not None
    assert store.finish_job(cluster.store, queued.id, "failed", error="boom: out of memory", worker="test-worker:1")
    with pytest.raises(JobFailed) as failed:
        queued.wait(timeout=30, progress=False)
    assert failed.value.error == "boom: out of memory" and "boom: out of memory" in str(failed.value)
    assert long.cancel() is long and long.data["cancel_requested"]
    with pytest.raises(JobCancelled) as cancelled:
        long.wait(timeout=120, progress=False)
    assert cancelled.value.job.status == "cancelled"
    with pytest.raises(Conflict):
        long.cancel()


def test_jobs_iterates_every_page_with_filters(cluster):
    client = Client(cluster.url, cluster.token("pager"))
    made = [client.submit({**tiny_train_spec(epochs=1), "name": f"paged-{i}", "tags": ["paged"]}) for i in range(5)]
    other = client.submit({**tiny_train_spec(epochs=1), "name": "other"})
    listed = list(client.jobs(tag="paged", page_size=2))
    assert [j.id for j in listed] == [j.id for j in reversed(made)]  # newest first, all three pages
    assert [j.id for j in client.jobs(search="other")] == [other.id]
    assert {j.id for j in client.jobs(page_size=4)} == {j.id for j in [*made, other]}
    for job in [*made, other]:
        job.wait(timeout=120, progress=False)
    assert len(list(client.jobs(status="succeeded", type="train"))) == 6
    assert list(client.jobs(status="failed")) == []


def test_clone_and_upload_dataset(cluster):
    client = Client(cluster.url, cluster.token("cloner"))
    rng = np.random.default_rng(0)
    X = rng.random((40, 12, 12))
    y = np.arange(40) % 4
    ds = client.upload_dataset(X, y, name="mine")
    assert ds["name"] == "mine" and ds["shape"] == [1, 12, 12] and ds["classes"] == 4 and ds["samples"] == 40
    assert client.dataset(ds["id"]) == ds and client.datasets() == [ds]
    with pytest.raises(InvalidRequest) as err:
        client.upload_dataset(X, y.astype(float))
    assert err.value.details[0]["path"] == "file"
    first = client.submit(tiny_train_spec(epochs=1, dataset=ds["id"]))
    second = first.clone(name="cloned", train__epochs=2, train={"batch_size": 16})
    assert second.id != first.id and second.name == "cloned"
    assert second.spec["train"]["epochs"] == 2 and second.spec["train"]["batch_size"] == 16
    assert second.spec["model"] == first.spec["model"] and second.spec["data"]["dataset"] == ds["id"]
    assert second.wait(timeout=120, progress=False).result["epochs_completed"] == 2


def test_summary_through_the_client(cluster):
    client = Client(cluster.url, cluster.token("summariser"))
    spec = tiny_train_spec()
    out = client.summary(spec)
    assert out["valid"] and [r["output_shape"] for r in out["layers"]] == [[6, 10, 10], [6, 5, 5], [6, 5, 5], [4]]
    spec["model"]["layers"][0]["kernel"] = 13
    out = client.summary(spec)
    assert not out["valid"] and out["layers"][0]["errors"][0]["path"] == "model.layers[0].kernel"


def test_the_summary_command_asks_the_service(cluster, tmp_path):
    token = cluster.token("cli-summary")
    client = Client(cluster.url, token)
    ds = client.upload_dataset(np.random.default_rng(1).random((20, 12, 12)), np.arange(20) % 4, name="up")
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(tiny_train_spec(dataset=ds["id"])))
    env = dict(cluster.env, CONVLAB_URL=cluster.url, CONVLAB_TOKEN=token)
    run = [sys.executable, "-m", "convlab.cli", "summary", str(path)]
    remote = subprocess.run([*run, "--api", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert remote.returncode == 0, remote.stderr
    assert json.loads(remote.stdout) == client.summary(tiny_train_spec(dataset=ds["id"]))
    # Only the service knows the uploaded dataset: another user's token does not.
    other = subprocess.run(
        [*run, "--api"],
        env=dict(env, CONVLAB_TOKEN=cluster.token("stranger")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert other.returncode == 1 and f"unknown dataset {ds['id']!r}" in other.stdout
    refused = subprocess.run(
        [*run, "--api"],
        env=dict(env, CONVLAB_URL=f"http://127.0.0.1:{free_port()}"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and "cannot reach the API" in refused.stderr and "Traceback" not in refused.stderr


def test_a_study_through_the_client(cluster):
    """create_study → wait → best and trials; an invalid space is an exception with its path."""
    client = Client(cluster.url, cluster.token("sweeper"))
    base = tiny_train_spec(epochs=1)
    base["data"]["validation_fraction"] = 0.2
    body = {
        "name": "lr",
        "base": base,
        "algorithm": "grid",
        "space": {"train.optimizer.lr": {"type": "choice", "values": [0.05, 0.1]}},
    }
    study = client.create_study(body)
    assert study.status == "running" and client.study(study.id) == study
    assert study.wait(timeout=180) is study and study.status == "succeeded"
    trials = study.trials()
    assert sorted(t["params"]["train.optimizer.lr"] for t in trials) == [0.05, 0.1]
    assert {j.status for j in study.trial_jobs()} == {"succeeded"}
    assert study.best["params"]["train.optimizer.lr"] in (0.05, 0.1)
    assert study.best["job_id"] in {t["job_id"] for t in trials}
    with pytest.raises(Conflict):
        study.cancel()  # it had ended

    bad = {**body, "space": {"model.layers[0].kernel": {"type": "choice", "values": [3, 13]}}}
    with pytest.raises(InvalidRequest) as err:
        client.create_study(bad)
    assert any(d["path"].startswith("model.layers[0].kernel") for d in err.value.details), err.value.details


def test_reproduce_and_its_certificate(trained):
    """A reproduction of a finished job on the same single worker is certified bitwise."""
    job, _ = trained
    copy = job.reproduce()
    assert copy.id != job.id and copy.certificate is None
    copy.wait(timeout=120, progress=False)
    cert = wait_for(lambda: copy.refresh().certificate, 30, "the certificate")
    assert cert["verdict"] == "bitwise", cert

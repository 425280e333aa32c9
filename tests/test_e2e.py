"""End to end over HTTP, with real processes: gunicorn API + two Celery workers.

Runs on both configurations of docs/architecture.md: the embedded default (SQLite +
the filesystem broker under CONVLAB_HOME) and the distributed one (PostgreSQL +
Redis).  In CI (CI=true) the distributed case must run: an unreachable Redis or
PostgreSQL fails it instead of skipping it.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import redis
from threadpoolctl import threadpool_limits

from convlab.client import ApiError
from engine import Network, validate_job_spec
from engine.jobs import run_job, weights_from_bytes
from tests.cluster import Cluster, wait_for
from tests.helpers import example, skip_or_fail, tiny_train_spec

pytestmark = pytest.mark.processes  # gunicorn and Celery workers

REDIS_URL = os.environ.get("CONVLAB_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def redis_db_url() -> str:
    """A Redis database index of our own on the shared server, emptied first."""
    url = f"{REDIS_URL}/11"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).flushdb()
    except redis.ConnectionError as exc:
        skip_or_fail(f"Redis is unreachable at {REDIS_URL}: {exc}")
    return url


@pytest.fixture(scope="module", params=["embedded", "distributed"])
def cluster(request, tmp_path_factory):
    home = tmp_path_factory.mktemp(f"home-{request.param}")
    if request.param == "embedded":
        c = Cluster(home, f"sqlite:///{home / 'convlab.db'}")
    else:
        c = Cluster(home, request.getfixturevalue("pg_databases")(), redis_db_url())
    c.start(workers=2)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def alice(cluster):
    return cluster.client(cluster.token("alice"))


def test_train_job_end_to_end(cluster, alice):
    """Submit → queued → running → succeeded; result, metrics and weights as docs/reference/ says."""
    spec = tiny_train_spec(epochs=3)
    spec["tags"] = ["e2e"]
    job = alice.request("POST", "/jobs", spec)
    assert job["status"] in ("queued", "running")
    done = cluster.wait_status(alice, job["id"])
    assert done["status"] == "succeeded", done["error"]
    result = done["result"]
    assert set(result) >= {
        "test_accuracy",
        "test_loss",
        "val_accuracy",
        "epochs_completed",
        "train_seconds",
        "parameter_count",
        "confusion_matrix",
    }
    assert result["epochs_completed"] == 3 and done["attempts"] == 1
    assert done["started_at"] and done["finished_at"]

    # The same spec in one process gives the same numbers: the service adds nothing and loses nothing.
    with threadpool_limits(limits=int(cluster.env["CONVLAB_BLAS_THREADS"])):  # as the workers run it
        local = run_job(validate_job_spec(spec))
    assert result["test_accuracy"] == local.result["test_accuracy"]

    series = alice.request("GET", f"/jobs/{job['id']}/metrics")["series"]
    steps = [s for s, _ in series["train_loss"]]
    assert steps == list(range(1, done["progress"]["total_steps"] + 1))
    assert len(series["val_loss"]) == len(series["val_accuracy"]) == 3

    raw = _download(alice, f"/jobs/{job['id']}/artifacts/weights.npz")
    net = Network.from_spec(spec["model"])
    net.load_params(weights_from_bytes(raw))
    local_weights = weights_from_bytes(local.weights)
    for key, value in net.params.items():
        np.testing.assert_array_equal(value, local_weights[key])


def test_gradcheck_pair_end_to_end(cluster, alice):
    """A gradcheck passes with rotated kernels and its ablation fails, through the service."""
    ok = alice.request("POST", "/jobs", example("gradcheck"))
    bad = alice.request("POST", "/jobs", example("gradcheck-ablation"))
    ok, bad = cluster.wait_status(alice, ok["id"]), cluster.wait_status(alice, bad["id"])
    assert ok["status"] == bad["status"] == "succeeded"
    assert ok["result"]["passed"] is True
    assert bad["result"]["passed"] is False and bad["result"]["max_relative_error"] >= 1e-2
    assert ok["result"]["trace"]["kernel_rotated"]


def test_listing_and_filters(cluster, alice):
    jobs = alice.request("GET", "/jobs?type=gradcheck&limit=500")
    assert jobs["total"] >= 2 and all(j["type"] == "gradcheck" for j in jobs["jobs"])
    tagged = alice.request("GET", "/jobs?tag=e2e")
    assert tagged["total"] >= 1 and all("e2e" in j["tags"] for j in tagged["jobs"])
    page = alice.request("GET", "/jobs?limit=1&offset=1")
    assert len(page["jobs"]) == 1 and page["total"] >= 3


def test_cancel_queued_running_and_finished(cluster, alice):
    """Two long jobs occupy both workers, a third waits: cancel it at once, stop the running ones."""
    long = tiny_train_spec(epochs=400)
    running = [alice.request("POST", "/jobs", long) for _ in range(2)]
    for job in running:
        cluster.wait_status(alice, job["id"], ("running",))
    queued = alice.request("POST", "/jobs", long)
    assert alice.request("GET", f"/jobs/{queued['id']}")["status"] == "queued"
    alice.request("POST", f"/jobs/{queued['id']}/cancel")
    assert alice.request("GET", f"/jobs/{queued['id']}")["status"] == "cancelled"

    for job in running:
        alice.request("POST", f"/jobs/{job['id']}/cancel")
    for job in running:
        done = cluster.wait_status(alice, job["id"])
        assert done["status"] == "cancelled"
        assert done["progress"]["epoch"] < 400
    with pytest.raises(ApiError) as err:
        alice.request("POST", f"/jobs/{running[0]['id']}/cancel")
    assert err.value.status == 409


def test_another_users_job_is_not_found(cluster, alice):
    job = alice.request("POST", "/jobs", example("gradcheck"))
    bob = cluster.client(cluster.token("bob"))
    with pytest.raises(ApiError) as err:
        bob.request("GET", f"/jobs/{job['id']}")
    assert err.value.status == 404
    admin = cluster.client(cluster.token("root", admin=True))
    assert admin.request("GET", f"/jobs/{job['id']}")["id"] == job["id"]
    cluster.wait_status(alice, job["id"])


def test_workers_are_listed(cluster, alice):
    def live():
        workers = alice.request("GET", "/workers")["workers"]
        return workers if len(workers) >= 2 else None

    workers = wait_for(live, 10, "two live workers")
    assert all(w["heartbeat_age_s"] < 3 for w in workers)


def _download(client, path: str) -> bytes:
    import urllib.request

    req = urllib.request.Request(f"{client.url}/api/v1{path}", headers={"Authorization": f"Bearer {client.token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read()


def _upload(client, filename: str, payload: bytes) -> dict:
    """POST /datasets as multipart/form-data, the way curl -F does it."""
    import json
    import urllib.request

    boundary = "convlab-e2e-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    req = urllib.request.Request(
        f"{client.url}/api/v1/datasets",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {client.token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 201
        return json.loads(resp.read())


def test_training_on_an_uploaded_dataset(cluster, alice):
    """An uploaded .npz is stored in the database and read back by whichever worker runs the job."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    X = (rng.random((120, 10, 10)) * 60).astype(np.uint8)
    X[np.arange(120), y * 3 + 1, 2:8] = 255  # a bar whose row tells the class
    buf = io.BytesIO()
    np.savez_compressed(buf, X=X, y=y)
    dataset = _upload(alice, "bars.npz", buf.getvalue())
    assert dataset["shape"] == [1, 10, 10] and dataset["classes"] == 3

    spec = tiny_train_spec(epochs=4, dataset=dataset["id"])
    spec["model"]["input_shape"] = [1, 10, 10]
    spec["model"]["layers"][-1]["units"] = 3
    done = cluster.wait_status(alice, alice.request("POST", "/jobs", spec)["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["result"]["test_accuracy"] >= 0.9

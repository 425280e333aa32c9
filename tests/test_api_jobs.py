"""API unit tests of reading jobs: listing and its query parameters, visibility between users,
cancel, metric series and trained weights."""

from __future__ import annotations

import io

import numpy as np
import pytest

import store
from engine import Network
from engine.jobs import weights_to_bytes
from test_api import API, assert_error, paths
from tests.helpers import tiny_train_spec


def submit(client, headers, **fields) -> dict:
    """Submit a tiny train job (``fields`` update the spec); returns the job."""
    spec = {**tiny_train_spec(), **fields}
    resp = client.post(f"{API}/jobs", json=spec, headers=headers)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def finish(db, job_id: str, status: str = "succeeded", result: dict | None = None) -> None:
    """Run a job to a terminal status as a worker would."""
    assert store.claim_job(db, job_id, "test-worker") is not None
    assert store.finish_job(db, job_id, status, result=result, worker="test-worker")


# ------------------------------------------------------------------ listing


def test_list_filters_and_pages(client, headers, app_store):
    a = submit(client, headers, name="alpha", tags=["sweep", "lr"])
    b = submit(client, headers, name="beta", tags=["sweep"])
    gc = client.post(
        f"{API}/jobs",
        headers=headers,
        json={"type": "gradcheck", "name": "gamma", "model": tiny_train_spec()["model"], "gradcheck": {}},
    ).get_json()
    finish(app_store, a["id"])

    def ids(query: str) -> tuple[list[str], int]:
        resp = client.get(f"{API}/jobs?{query}", headers=headers)
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        return [j["id"] for j in body["jobs"]], body["total"]

    assert ids("") == ([gc["id"], b["id"], a["id"]], 3)  # newest first
    assert ids("status=queued") == ([gc["id"], b["id"]], 2)
    assert ids("status=succeeded") == ([a["id"]], 1)
    assert ids("type=gradcheck") == ([gc["id"]], 1)
    assert ids("tag=sweep") == ([b["id"], a["id"]], 2)
    assert ids("tag=lr&status=queued") == ([], 0)
    assert ids("search=ALP") == ([a["id"]], 1)
    assert ids(f"search={b['id'][:6]}") == ([b["id"]], 1)
    assert ids("limit=1") == ([gc["id"]], 3)
    assert ids("limit=2&offset=2") == ([a["id"]], 3)
    assert ids("offset=10") == ([], 3)
    assert ids("status=&type=") == ([gc["id"], b["id"], a["id"]], 3)  # empty means no filter

    jobs = client.get(f"{API}/jobs", headers=headers).get_json()["jobs"]
    # Queue positions: oldest queued first; finished jobs have none.
    assert [j.get("queue_position") for j in jobs] == [2, 1, None]


@pytest.mark.parametrize(
    "query, bad",
    [
        ("status=done", ["query.status"]),
        ("type=eval", ["query.type"]),
        ("limit=0", ["query.limit"]),
        ("limit=501", ["query.limit"]),
        ("limit=ten", ["query.limit"]),
        ("limit=-1", ["query.limit"]),
        ("limit=1.5", ["query.limit"]),
        ("offset=-3", ["query.offset"]),
        ("offset=99999999999999999999", ["query.offset"]),
        ("tag=" + "t" * 65, ["query.tag"]),
        ("status=x&limit=x&offset=x", ["query.status", "query.limit", "query.offset"]),
    ],
)
def test_bad_query_parameters_are_422(client, headers, query, bad):
    err = assert_error(client.get(f"{API}/jobs?{query}", headers=headers), 422, "invalid_query")
    assert paths(err) == bad


# ------------------------------------------------------------------ visibility


def test_another_users_job_is_404_and_an_admin_sees_it(client, auth, app_store):
    job = submit(client, auth.headers("alice"))
    bob, root = auth.headers("bob"), auth.headers("root", admin=True)
    for path in ("", "/metrics", "/artifacts/weights.npz"):
        assert_error(client.get(f"{API}/jobs/{job['id']}{path}", headers=bob), 404, "not_found")
    assert_error(client.post(f"{API}/jobs/{job['id']}/cancel", headers=bob), 404)
    assert client.get(f"{API}/jobs", headers=bob).get_json() == {"jobs": [], "total": 0}
    assert store.get_job(app_store, job["id"], None)["status"] == "queued"  # bob's cancel did nothing

    assert client.get(f"{API}/jobs/{job['id']}", headers=root).get_json()["user"] == "alice"
    assert client.get(f"{API}/jobs", headers=root).get_json()["total"] == 1
    assert client.get(f"{API}/jobs/{job['id']}/metrics", headers=root).status_code == 200


def test_missing_job_is_404(client, headers):
    for path in ("", "/metrics", "/artifacts/weights.npz"):
        assert_error(client.get(f"{API}/jobs/{'0' * 32}{path}", headers=headers), 404)
    assert_error(client.post(f"{API}/jobs/nope/cancel", headers=headers), 404)


def test_get_job(client, headers):
    job = submit(client, headers)
    resp = client.get(f"{API}/jobs/{job['id']}", headers=headers)
    assert resp.status_code == 200 and resp.get_json() == job


# ------------------------------------------------------------------ cancel


def test_cancel_queued_running_and_finished(client, headers, app_store):
    queued, running, done = (submit(client, headers) for _ in range(3))
    resp = client.post(f"{API}/jobs/{queued['id']}/cancel", headers=headers)
    assert resp.status_code == 200
    job = resp.get_json()["job"]
    assert job["status"] == "cancelled" and job["finished_at"] and "queue_position" not in job

    store.claim_job(app_store, running["id"], "w")
    resp = client.post(f"{API}/jobs/{running['id']}/cancel", headers=headers)
    assert resp.status_code == 202
    assert resp.get_json()["job"]["status"] == "running" and resp.get_json()["job"]["cancel_requested"]
    assert store.heartbeat(app_store, running["id"], "w") == "cancel"

    finish(app_store, done["id"])
    assert_error(client.post(f"{API}/jobs/{done['id']}/cancel", headers=headers), 409, "conflict")
    assert_error(client.post(f"{API}/jobs/{queued['id']}/cancel", headers=headers), 409)
    assert store.get_job(app_store, done["id"], None)["status"] == "succeeded"


# ------------------------------------------------------------------ weights


def test_weights_are_404_until_saved_then_round_trip(client, headers, app_store):
    job = submit(client, headers)
    url = f"{API}/jobs/{job['id']}/artifacts/weights.npz"
    assert_error(client.get(url, headers=headers), 404)

    net = Network.from_spec(job["spec"]["model"], seed=3)
    store.save_artifact(app_store, job["id"], "weights.npz", weights_to_bytes(net.params))
    resp = client.get(url, headers=headers)
    assert resp.status_code == 200 and resp.mimetype == "application/octet-stream"
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    with np.load(io.BytesIO(resp.data), allow_pickle=False) as npz:
        params = {k: npz[k] for k in npz.files}
    other = Network.from_spec(job["spec"]["model"], seed=4)
    other.load_params(params)
    x = np.random.default_rng(0).random((3, *job["spec"]["model"]["input_shape"])).astype(np.float32)
    np.testing.assert_array_equal(other.forward(x), net.forward(x))


# ------------------------------------------------------------------ metrics


def test_metrics_series_names_and_downsampling(client, headers, app_store):
    job = submit(client, headers)
    values = np.sin(np.arange(1000) / 50.0)
    values[517] = 25.0  # a one-step spike must survive downsampling
    points = [("train_loss", i, float(v)) for i, v in enumerate(values)]
    points += [("val_loss", e, 1.0 / (e + 1)) for e in range(5)] + [("val_accuracy", 4, float("nan"))]
    store.record_metrics(app_store, job["id"], points)
    url = f"{API}/jobs/{job['id']}/metrics"

    series = client.get(url, headers=headers).get_json()["series"]
    assert set(series) == {"train_loss", "val_loss", "val_accuracy"}
    assert len(series["train_loss"]) == 1000 and series["val_accuracy"] == [[4, None]]

    series = client.get(f"{url}?names=train_loss,val_loss&max_points=20", headers=headers).get_json()["series"]
    assert set(series) == {"train_loss", "val_loss"}
    assert 2 <= len(series["train_loss"]) <= 20 and [517, 25.0] in series["train_loss"]
    assert series["val_loss"] == [[e, 1.0 / (e + 1)] for e in range(5)]
    steps = [s for s, _ in series["train_loss"]]
    assert steps == sorted(steps)

    assert client.get(f"{url}?names=nothing", headers=headers).get_json() == {"series": {}, "nonfinite": {}}
    for bad in ("max_points=1", "max_points=100001", "max_points=x"):
        err = assert_error(client.get(f"{url}?{bad}", headers=headers), 422, "invalid_query")
        assert paths(err) == ["query.max_points"]

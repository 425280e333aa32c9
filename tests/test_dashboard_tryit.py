"""The job page's try-it panel with Flask's test client: its predict route (session + CSRF, the API's
answers), the gallery of mistakes (agrees with the job's confusion matrix; built-in and uploaded
datasets), and when the page offers the panel.  The browser test is ``test_predict_browser.py``."""

from __future__ import annotations

import io

import numpy as np
import pytest

import store
from engine.jobs import run_job
from engine.spec import validate_job_spec
from tests.helpers import tiny_train_spec
from tests.test_dashboard import Dashboard


@pytest.fixture
def dash(client, auth) -> Dashboard:
    """Alice, signed in."""
    return Dashboard(client, auth.token("alice"))


def trained(app_store, auth, spec=None, user="alice") -> dict:
    """A job of ``user``, trained for real in this process and finished as a worker would finish it."""
    spec = validate_job_spec(spec or tiny_train_spec(epochs=1), datasets=lambda _id: (1, 12, 12))
    job = store.create_job(app_store, auth.user(user).id, spec)
    datasets = {}

    def resolve(dataset_id):
        from engine.datasets import load_npz

        return datasets.setdefault(dataset_id, load_npz(store.load_dataset_bytes(app_store, dataset_id)))

    outcome = run_job(job["spec"], resolve_dataset=resolve)
    assert store.claim_job(app_store, job["id"], "w") is not None
    assert store.finish_job(
        app_store, job["id"], "succeeded", result=outcome.result, worker="w", artifacts={"weights.npz": outcome.weights}
    )
    return store.get_job(app_store, job["id"], None)


def off_diagonal(confusion) -> int:
    """Test images counted wrong in a confusion matrix."""
    m = np.array(confusion)
    return int(m.sum() - np.trace(m))


def test_the_panel_predicts_as_the_api_does(dash, client, app_store, auth, headers):
    job = trained(app_store, auth)
    x = np.random.default_rng(3).random((3, 1, 12, 12)).tolist()
    mine = dash.post_json(f"/jobs/{job['id']}/predict", {"inputs": x})
    api = client.post(f"/api/v1/jobs/{job['id']}/predict", json={"inputs": x}, headers=headers)
    assert mine.status_code == api.status_code == 200
    assert mine.get_json() == api.get_json()
    assert dash.post_json(f"/jobs/{job['id']}/predict", {"inputs": x}, csrf=False).status_code == 400
    bad = dash.post_json(f"/jobs/{job['id']}/predict", {"inputs": [[[[2]]]]})
    assert bad.status_code == 422 and bad.get_json()["error"]["details"][0]["path"] == "inputs[0][0]"


def test_the_panel_is_only_for_the_jobs_owner(dash, app_store, auth):
    bobs = trained(app_store, auth, user="bob")
    assert dash.post_json(f"/jobs/{bobs['id']}/predict", {"inputs": [[[[0]]]]}).status_code == 404
    assert dash.client.get(f"/jobs/{bobs['id']}/mistakes.json").status_code == 404


def test_the_gallery_is_what_the_confusion_matrix_counts(dash, app_store, auth):
    job = trained(app_store, auth)
    resp = dash.client.get(f"/jobs/{job['id']}/mistakes.json")
    assert resp.status_code == 200
    data = resp.get_json()
    assert data["wrong"] == off_diagonal(job["result"]["confusion_matrix"]) > 0
    assert data["tested"] == int(np.sum(job["result"]["confusion_matrix"]))
    assert data["shape"] == [1, 12, 12] and 0 < len(data["images"]) <= min(48, data["wrong"])
    confidences = [m["confidence"] for m in data["images"]]
    assert confidences == sorted(confidences, reverse=True)
    for m in data["images"]:
        assert m["label"] != m["predicted"] and np.array(m["pixels"]).shape == (1, 12, 12)


def test_the_gallery_reads_an_uploaded_dataset(dash, client, app_store, auth, headers):
    """An upload's test split is rebuilt from the stored file, as the worker read it."""
    rng = np.random.default_rng(5)
    X = rng.integers(0, 256, (120, 12, 12), dtype=np.uint8)
    y = np.repeat(np.arange(4), 30)
    buf = io.BytesIO()
    np.savez(buf, X=X, y=y)
    upload = client.post(
        "/api/v1/datasets",
        headers=headers,
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(buf.getvalue()), "noise.npz"), "name": "noise"},
    )
    assert upload.status_code == 201, upload.get_json()
    spec = tiny_train_spec(epochs=1, dataset=upload.get_json()["id"])
    job = trained(app_store, auth, spec)
    data = dash.client.get(f"/jobs/{job['id']}/mistakes.json").get_json()
    assert data["wrong"] == off_diagonal(job["result"]["confusion_matrix"])
    assert data["tested"] == int(np.sum(job["result"]["confusion_matrix"]))


def test_a_job_without_weights_has_no_gallery(dash, app_store, auth):
    spec = validate_job_spec(tiny_train_spec())
    job = store.create_job(app_store, auth.user("alice").id, spec)
    assert dash.client.get(f"/jobs/{job['id']}/mistakes.json").status_code == 409


def test_the_page_offers_the_panel_to_image_models_only(dash, app_store, auth):
    job = store.create_job(app_store, auth.user("alice").id, validate_job_spec(tiny_train_spec()))
    page = dash.get(f"/jobs/{job['id']}").text
    assert 'id="tryit-card"' in page and "js/tryit.js" in page and 'data-input-shape="1 12 12"' in page
    gc = store.create_job(
        app_store,
        auth.user("alice").id,
        validate_job_spec({"type": "gradcheck", "model": tiny_train_spec()["model"], "gradcheck": {}}),
    )
    assert 'id="tryit-card"' not in dash.get(f"/jobs/{gc['id']}").text

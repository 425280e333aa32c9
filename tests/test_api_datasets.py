"""API unit tests of dataset uploads: valid files are stored and usable in job specs; anything
else is refused (422 / 413 / 415) and nothing is stored."""

from __future__ import annotations

import io

import numpy as np
import pytest

import store
from test_api import API, assert_error, paths
from tests.helpers import tiny_train_spec


def npz(n: int = 40, side: int = 12, classes: int = 4, **arrays) -> bytes:
    """An ``.npz`` of ``n`` random uint8 images ``(n, side, side)`` and labels (``arrays`` override)."""
    rng = np.random.default_rng(0)
    content = {"X": rng.integers(0, 256, (n, side, side), dtype=np.uint8), "y": np.arange(n) % classes}
    content.update(arrays)
    buf = io.BytesIO()
    np.savez(buf, **content)
    return buf.getvalue()


def upload(client, headers, data: bytes, filename: str = "shapes.npz", **form):
    """POST /datasets with ``data`` as the multipart file field ``file``."""
    return client.post(
        f"{API}/datasets",
        headers=headers,
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(data), filename), **form},
    )


@pytest.fixture
def nothing_stored(app_store):
    """Assert, after the test, that no dataset was stored."""
    yield
    assert store.list_datasets(app_store, None) == []


def test_upload_list_and_use_in_a_job(client, headers, auth):
    resp = upload(client, headers, npz(), filename="my shapes.npz")
    assert resp.status_code == 201, resp.get_json()
    ds = resp.get_json()
    assert ds["name"] == "my shapes" and ds["samples"] == 40 and ds["shape"] == [1, 12, 12]
    assert ds["classes"] == 4 and ds["user"] == "alice" and ds["size_bytes"] > 0
    assert resp.headers["Location"] == f"{API}/datasets/{ds['id']}"
    assert client.get(resp.headers["Location"], headers=headers).get_json() == ds
    assert client.get(f"{API}/datasets", headers=headers).get_json() == {"datasets": [ds]}

    # Its id is a dataset for a job spec whose input shape matches.
    job = client.post(f"{API}/jobs", headers=headers, json=tiny_train_spec(dataset=ds["id"]))
    assert job.status_code == 201 and job.get_json()["spec"]["data"]["dataset"] == ds["id"]
    spec = tiny_train_spec(dataset=ds["id"])
    spec["model"]["input_shape"] = [1, 8, 8]
    spec["model"]["layers"] = [{"type": "dense", "units": 4, "activation": "softmax"}]
    err = assert_error(client.post(f"{API}/jobs", headers=headers, json=spec), 422, "invalid_spec")
    assert paths(err) == ["model.input_shape"]

    # Another user neither sees it nor may train on it; an admin sees it.
    bob = auth.headers("bob")
    assert client.get(f"{API}/datasets", headers=bob).get_json() == {"datasets": []}
    assert_error(client.get(f"{API}/datasets/{ds['id']}", headers=bob), 404)
    err = assert_error(client.post(f"{API}/jobs", headers=bob, json=tiny_train_spec(dataset=ds["id"])), 422)
    assert paths(err) == ["data.dataset"]
    root = auth.headers("root", admin=True)
    assert client.get(f"{API}/datasets", headers=root).get_json()["datasets"][0]["id"] == ds["id"]


def test_name_field_and_stored_bytes(client, headers, app_store):
    data = npz(n=10, classes=2, X=np.zeros((10, 3, 8, 8), dtype=np.float32))
    ds = upload(client, headers, data, name="rgb").get_json()
    assert ds["name"] == "rgb" and ds["shape"] == [3, 8, 8] and ds["classes"] == 2
    assert store.load_dataset_bytes(app_store, ds["id"]) == data


@pytest.mark.parametrize(
    "data, fragment",
    [
        (npz(X=np.array([[[0.5] * 12] * 12] * 40, dtype=object)), "object"),  # a pickle inside
        (b"not a zip at all", "not a valid .npz"),
        (npz(y=np.arange(39)), "y"),
        (npz(Z=np.zeros(3)), "Z"),
    ],
)
def test_unusable_files_are_422_and_nothing_is_stored(client, headers, data, fragment, nothing_stored):
    err = assert_error(upload(client, headers, data), 422, "invalid_dataset")
    assert paths(err) == ["file"] and fragment in err["message"]


def test_missing_file_bad_name_and_wrong_content_type(client, headers, nothing_stored):
    err = assert_error(
        client.post(f"{API}/datasets", headers=headers, content_type="multipart/form-data", data={"name": "x"}), 422
    )
    assert paths(err) == ["file"]
    err = assert_error(upload(client, headers, npz(), name="x" * 201), 422)
    assert paths(err) == ["name"]
    assert_error(
        client.post(f"{API}/datasets", headers=headers, data=npz(), content_type="application/octet-stream"), 415
    )
    assert_error(client.post(f"{API}/datasets", headers=headers, json={"X": []}), 415)


class TestRequestLimit:
    @pytest.fixture
    def test_config(self):
        return {"TESTING": True, "MAX_CONTENT_LENGTH": 4096}

    def test_a_body_over_the_request_limit_is_413(self, client, headers, nothing_stored):
        assert_error(upload(client, headers, npz(n=200)), 413, "payload_too_large")


class TestDatasetLimit:
    @pytest.fixture
    def settings(self, settings):
        settings.max_dataset_bytes = 4096
        return settings

    def test_a_file_over_the_dataset_limit_is_413(self, client, headers, nothing_stored):
        err = assert_error(upload(client, headers, npz(n=200)), 413, "payload_too_large")
        assert "4096" in err["message"]

"""``POST /api/v1/jobs/{id}/predict`` (Flask test client): the probabilities are the engine's forward pass
on the downloaded weights, bit for bit; PNG inputs; every bad input a 4xx with its field path; the
network cache (loaded once, bounded, safe under threads)."""

from __future__ import annotations

import base64
import io
import struct
import threading
import zlib

import numpy as np
import pytest
from PIL import Image

import store
from convlab.config import Settings
from engine import Network
from engine.jobs import run_job, weights_from_bytes, weights_to_bytes
from service.predict_inputs import area_matrix
from service.predictions import CACHE_KEY, LoadedModel, ModelCache
from test_api import API, assert_error, paths
from tests.helpers import tiny_train_spec

RNG = np.random.default_rng(11)


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    """Default settings, but a batch bound small enough to test."""
    return Settings(
        home=tmp_path / "var",
        database_url=database_url,
        broker_url="filesystem://",
        secret_key="test-secret-key",
        max_predict_batch=8,
        max_predict_pixels=300 * 300,
    )


def trained(client, headers, db, dtype: str = "float32", **fields) -> dict:
    """A job submitted through the API and trained for real (one epoch, in this process) as a worker would."""
    spec = tiny_train_spec(epochs=1, dtype=dtype)
    spec.update(fields)
    job = client.post(f"{API}/jobs", json=spec, headers=headers).get_json()
    outcome = run_job(job["spec"])
    assert store.claim_job(db, job["id"], "w") is not None
    assert store.finish_job(
        db, job["id"], "succeeded", result=outcome.result, worker="w", artifacts={"weights.npz": outcome.weights}
    )
    return job


def predict(client, headers, job_id: str, inputs, **extra):
    """POST the inputs; the response."""
    return client.post(f"{API}/jobs/{job_id}/predict", json={"inputs": inputs, **extra}, headers=headers)


def downloaded_network(client, headers, job: dict) -> Network:
    """The job's network built by the engine from the weights downloaded through the API."""
    resp = client.get(f"{API}/jobs/{job['id']}/artifacts/weights.npz", headers=headers)
    assert resp.status_code == 200
    net = Network.from_spec(job["spec"]["model"], seed=99, dtype=job["spec"]["train"]["dtype"])
    net.load_params(weights_from_bytes(resp.data))
    return net


def png_b64(pixels: np.ndarray, mode: str) -> str:
    """``pixels`` as a base64 PNG written by Pillow."""
    buf = io.BytesIO()
    Image.fromarray(pixels, mode).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


# ------------------------------------------------------------------ the numbers


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_probabilities_equal_the_engines_forward_pass_on_the_downloaded_weights(client, headers, app_store, dtype):
    job = trained(client, headers, app_store, dtype)
    x = RNG.random((5, 1, 12, 12))
    resp = predict(client, headers, job["id"], x.tolist())
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert list(body) == ["predictions", "probabilities"]

    expected = downloaded_network(client, headers, job).forward(x)
    assert expected.dtype == np.dtype(dtype)
    probs = np.array(body["probabilities"])
    assert probs.shape == (5, 4)
    np.testing.assert_array_equal(probs, expected.astype(np.float64))  # to the last bit
    assert body["predictions"] == expected.argmax(axis=1).tolist()
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)  # a softmax output


def test_the_test_split_scores_as_the_job_reported(client, headers, app_store):
    """Predicting the job's own test split reproduces its confusion matrix (same data, same dtype)."""
    from engine.datasets import load_builtin, split_dataset

    job = trained(client, headers, app_store)
    spec = job["spec"]
    x, y = split_dataset(
        load_builtin("synthetic", 0), spec["data"]["test_fraction"], spec["data"]["validation_fraction"], 0
    )["test"]
    predicted = []
    for i in range(0, len(x), 8):
        predicted += predict(client, headers, job["id"], x[i : i + 8].tolist()).get_json()["predictions"]
    confusion = np.zeros((4, 4), dtype=int)
    np.add.at(confusion, (y, np.array(predicted)), 1)
    reported = store.get_job(app_store, job["id"], None)["result"]["confusion_matrix"]
    assert confusion.tolist() == reported


# ------------------------------------------------------------------ PNG inputs


def test_a_png_is_scaled_as_the_dataset(client, headers, app_store):
    """A 12×12 grey PNG predicts exactly as its pixels / 255 sent as numbers."""
    job = trained(client, headers, app_store)
    pixels = RNG.integers(0, 256, (12, 12), dtype=np.uint8)
    wrapped = "\n".join(
        png_b64(pixels, "L")[i : i + 76] for i in range(0, len(png_b64(pixels, "L")), 76)
    )  # as base64(1)
    as_png = predict(client, headers, job["id"], [wrapped, "data:image/png;base64," + png_b64(pixels, "L")])
    as_numbers = predict(client, headers, job["id"], [(pixels[None] / 255.0).tolist()] * 2)  # the same batch:
    assert as_png.status_code == 200, as_png.get_json()  # BLAS may sum by batch size
    assert as_png.get_json() == as_numbers.get_json()


def test_a_larger_rgba_png_is_composited_grey_and_area_resized(client, headers, app_store):
    """48×48 RGBA -> alpha onto black, luma, then each 4×4 block averaged to the model's 12×12."""
    job = trained(client, headers, app_store)
    rgba = RNG.integers(0, 256, (48, 48, 4), dtype=np.uint8)
    f = rgba / 255.0
    grey = (f[:, :, :3] * f[:, :, 3:]) @ np.array([0.299, 0.587, 0.114])
    blocks = grey.reshape(12, 4, 12, 4).mean(axis=(1, 3))
    got = predict(client, headers, job["id"], [png_b64(rgba, "RGBA")]).get_json()
    net = downloaded_network(client, headers, job)
    np.testing.assert_allclose(got["probabilities"], net.forward(blocks[None, None]), rtol=1e-5, atol=1e-6)


def test_area_resizing_keeps_the_mean_and_handles_uneven_sizes():
    for n_in, n_out in ((32, 8), (280, 12), (7, 3), (3, 7), (8, 8)):
        m = area_matrix(n_in, n_out)
        np.testing.assert_allclose(m.sum(axis=1), 1)  # each cell is a mean
        np.testing.assert_allclose(m.sum(axis=0), n_out / n_in)  # every input counts equally
    np.testing.assert_array_equal(area_matrix(8, 8), np.eye(8))


def test_a_diverged_network_answers_null_not_nan(client, headers, app_store):
    """Weights that overflow give NaN activations: valid JSON has null there (as metric series do)."""
    job = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=headers).get_json()
    net = Network.from_spec(job["spec"]["model"])
    params = {k: np.full_like(v, np.inf) for k, v in net.params.items()}
    assert store.claim_job(app_store, job["id"], "w") is not None
    assert store.finish_job(
        app_store, job["id"], "succeeded", worker="w", artifacts={"weights.npz": weights_to_bytes(params)}
    )
    resp = predict(client, headers, job["id"], np.ones((1, 1, 12, 12)).tolist())
    assert resp.status_code == 200
    assert "NaN" not in resp.get_data(as_text=True)
    assert resp.get_json()["probabilities"] == [[None] * 4]


# ------------------------------------------------------------------ bad inputs


def test_bad_shapes_and_values_are_422_with_paths(client, headers, app_store):
    job = trained(client, headers, app_store)
    good = np.zeros((1, 12, 12)).tolist()

    def at(*where, value):
        sample = np.zeros((1, 12, 12)).tolist()
        sample[where[0]][where[1]][where[2]] = value
        return sample

    bad = [
        np.zeros((2, 12, 12)).tolist(),  # inputs[0]: 2 channels
        [np.zeros((12, 12)).tolist()[:11]],  # inputs[1][0]: 11 rows
        [[[0.0] * 12] * 5 + [[0.0] * 13] + [[0.0] * 12] * 6],  # inputs[2][0][5]: 13 values
        at(0, 3, 4, value="0.5"),  # inputs[3][0][3][4]
        at(0, 0, 5, value=True),
        at(0, 11, 11, value=None),
        at(0, 2, 2, value=255),
        at(0, 1, 0, value=-0.01),
        7,
        {"pixels": good},
    ]
    first = assert_error(predict(client, headers, job["id"], [good, *bad[:7]]), 422, "invalid_inputs")
    assert paths(first) == [
        "inputs[1]",
        "inputs[2][0]",
        "inputs[3][0][5]",
        "inputs[4][0][3][4]",
        "inputs[5][0][0][5]",
        "inputs[6][0][11][11]",
        "inputs[7][0][2][2]",
    ]
    second = assert_error(predict(client, headers, job["id"], bad[7:]), 422, "invalid_inputs")
    assert paths(second) == ["inputs[0][0][1][0]", "inputs[1]", "inputs[2]"]
    messages = {d["path"]: d["message"] for d in first["details"]}
    assert "must have 1 channels, not 2" in messages["inputs[1]"]
    assert "not a string" in messages["inputs[4][0][3][4]"] and "not a boolean" in messages["inputs[5][0][0][5]"]
    assert "outside [0, 1]" in messages["inputs[7][0][2][2]"] and "outside" in second["details"][0]["message"]


def test_non_finite_numbers_are_422(client, headers, app_store):
    job = trained(client, headers, app_store)
    sample = str(np.zeros((1, 12, 12)).tolist()).replace("0.0", "1e999", 30)
    body = f'{{"inputs": [{sample}]}}'
    resp = client.post(f"{API}/jobs/{job['id']}/predict", data=body, headers=headers, content_type="application/json")
    err = assert_error(resp, 422, "invalid_inputs")
    assert paths(err) == ["inputs[0][0][0][0]"] and "finite" in err["details"][0]["message"]
    sample = str(np.zeros((1, 12, 12), dtype=int).tolist()).replace("0", "9" * 400, 4)
    body = f'{{"inputs": [{sample}]}}'
    resp = client.post(f"{API}/jobs/{job['id']}/predict", data=body, headers=headers, content_type="application/json")
    assert paths(assert_error(resp, 422)) == ["inputs[0][0][0][0]"]  # an integer no float holds
    nan = client.post(
        f"{API}/jobs/{job['id']}/predict", data='{"inputs": [NaN]}', headers=headers, content_type="application/json"
    )
    assert_error(nan, 400, "malformed_json")  # NaN is not JSON at all


@pytest.mark.parametrize(
    "body, path",
    [({}, "inputs"), ({"inputs": []}, "inputs"), ({"inputs": "x"}, "inputs"), ({"inputs": [[0]], "batch": 3}, "batch")],
)
def test_a_malformed_request_names_its_field(client, headers, app_store, body, path):
    job = trained(client, headers, app_store)
    resp = client.post(f"{API}/jobs/{job['id']}/predict", json=body, headers=headers)
    assert path in paths(assert_error(resp, 422))


def test_malformed_base64_and_png_are_422(client, headers, app_store):
    job = trained(client, headers, app_store)
    png = png_b64(np.zeros((12, 12), dtype=np.uint8), "L")
    raw = base64.b64decode(png)
    inputs = [
        "not base64 at all!",
        base64.b64encode(b"GIF89a....").decode(),
        png[:-12],
        base64.b64encode(raw[:-20] + bytes([raw[-20] ^ 0xFF]) + raw[-19:]).decode(),
        "data:image/jpeg;base64," + png,
    ]
    err = assert_error(predict(client, headers, job["id"], inputs), 422, "invalid_inputs")
    assert paths(err) == [f"inputs[{i}]" for i in range(5)]
    text = " | ".join(d["message"] for d in err["details"])
    for expected in ("valid base64", "not a PNG", "bad CRC", "only data:image/png;base64"):
        assert expected in text, text


def test_a_decompression_bomb_is_refused(client, headers, app_store):
    """A header of 1000×1000, and a 12×12 header over 64 MB of zeros: both 422, nothing inflated."""
    job = trained(client, headers, app_store)

    def png(width, height, raw):
        def chunk(kind, body):
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

        return base64.b64encode(
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b"")
        ).decode()

    err = assert_error(
        predict(client, headers, job["id"], [png(1000, 1000, bytes(10)), png(12, 12, bytes(64 * 2**20))]), 422
    )
    assert paths(err) == ["inputs[0]", "inputs[1]"]
    assert "over the limit of 90000" in err["details"][0]["message"]
    assert "more bytes than its header's size needs" in err["details"][1]["message"]


def test_the_pixel_budget_is_for_the_whole_request(client, headers, app_store):
    job = trained(client, headers, app_store)
    big = png_b64(np.zeros((200, 200), dtype=np.uint8), "L")  # 40,000 of the 90,000 pixels
    assert predict(client, headers, job["id"], [big, big]).status_code == 200
    err = assert_error(predict(client, headers, job["id"], [big, big, big]), 422)
    assert paths(err) == ["inputs[2]"] and "whole request" in err["details"][0]["message"]


def test_too_large_a_batch_is_413(client, headers, app_store):
    job = trained(client, headers, app_store)
    x = np.zeros((9, 1, 12, 12)).tolist()
    err = assert_error(predict(client, headers, job["id"], x), 413, "payload_too_large")
    assert paths(err) == ["inputs"] and "limit of 8" in err["message"]
    assert predict(client, headers, job["id"], x[:8]).status_code == 200


def test_the_batch_bound_shrinks_for_large_inputs(monkeypatch, client, headers, app_store):
    """Inputs become C×H×W float64 whatever was sent (a 1×1 PNG too): the values of a batch are bounded."""
    from service import predict_inputs

    monkeypatch.setattr(predict_inputs, "MAX_VALUES", 3 * 144)
    job = trained(client, headers, app_store)
    tiny = png_b64(np.zeros((1, 1), dtype=np.uint8), "L")
    err = assert_error(predict(client, headers, job["id"], [tiny] * 4), 413)
    assert "limit of 3 per request for this model" in err["message"]
    assert predict(client, headers, job["id"], [tiny] * 3).status_code == 200


# ------------------------------------------------------------------ which jobs


def test_a_job_without_weights_is_409(client, headers):
    job = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=headers).get_json()
    err = assert_error(predict(client, headers, job["id"], np.zeros((1, 1, 12, 12)).tolist()), 409, "conflict")
    assert "queued" in err["message"] and "no trained weights" in err["message"]


def test_a_gradient_check_is_409(client, headers):
    job = client.post(
        f"{API}/jobs", headers=headers, json={"type": "gradcheck", "model": tiny_train_spec()["model"], "gradcheck": {}}
    ).get_json()
    err = assert_error(predict(client, headers, job["id"], np.zeros((1, 1, 12, 12)).tolist()), 409)
    assert "gradient check" in err["message"]


def test_another_users_job_is_404_and_an_admins_is_fine(client, headers, auth, app_store):
    job = trained(client, headers, app_store)
    x = np.zeros((1, 1, 12, 12)).tolist()
    assert_error(predict(client, auth.headers("bob"), job["id"], x), 404, "not_found")
    assert_error(predict(client, headers, "0" * 32, x), 404)
    assert predict(client, auth.headers("root", admin=True), job["id"], x).status_code == 200
    assert_error(client.post(f"{API}/jobs/{job['id']}/predict", json={"inputs": x}), 401)


def test_the_endpoint_is_in_the_openapi_document(client, headers):
    doc = client.get(f"{API}/openapi.json", headers=headers).get_json()
    op = doc["paths"]["/api/v1/jobs/{job_id}/predict"]["post"]
    assert {"200", "404", "409", "413", "422"} <= set(op["responses"])
    assert op["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/PredictRequest"}


# ------------------------------------------------------------------ the cache


def test_the_network_is_loaded_once_per_process_even_from_many_threads(app, client, headers, app_store):
    job = trained(client, headers, app_store)
    x = RNG.random((8, 1, 12, 12)).tolist()
    answers, errors = [], []

    def ask():
        try:
            with app.test_client() as c:
                answers.append(predict(c, headers, job["id"], x).get_json())
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(answers) == 8
    assert all(a == answers[0] for a in answers)  # no thread saw another's forward pass
    cache = app.extensions[CACHE_KEY]
    assert cache.loads == 1 and len(cache) == 1


def test_the_cache_is_bounded_by_count_and_bytes():
    net = Network.from_spec(tiny_train_spec()["model"])
    size = sum(p.nbytes for p in net.params.values())
    cache = ModelCache(max_models=2, max_bytes=3 * size)
    for job_id in ("a", "b", "a", "c"):  # "a" used again, so "b" is the oldest
        cache.get(job_id, lambda j=job_id: LoadedModel(j, net, size, 32))
    assert list(cache._entries) == ["a", "c"] and cache.loads == 3
    cache.max_models = 10
    for job_id in ("d", "e"):
        cache.get(job_id, lambda j=job_id: LoadedModel(j, net, size, 32))
    assert list(cache._entries) == ["c", "d", "e"] and cache.nbytes == 3 * size
    cache.get("huge", lambda: LoadedModel("huge", net, 4 * size, 32))  # used, never kept
    assert "huge" not in cache._entries and len(cache) == 3


def test_a_failed_load_is_not_cached(client, headers, app, app_store):
    job = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=headers).get_json()
    x = np.zeros((1, 1, 12, 12)).tolist()
    assert predict(client, headers, job["id"], x).status_code == 409
    outcome = run_job(job["spec"])
    assert store.claim_job(app_store, job["id"], "w") is not None
    assert store.finish_job(
        app_store, job["id"], "succeeded", result=outcome.result, worker="w", artifacts={"weights.npz": outcome.weights}
    )
    assert predict(client, headers, job["id"], x).status_code == 200

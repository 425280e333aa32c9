"""``POST /api/v1/specs/summary`` and the token-auth event stream ``GET /api/v1/jobs/{id}/events``."""

from __future__ import annotations

import pytest

import store
from engine.shapes import estimate_batch_memory
from engine.spec import validate_job_spec
from test_api import API, assert_error
from tests.helpers import example, sse_events, tiny_train_spec

SUMMARY = f"{API}/specs/summary"


def _summary(client, headers, spec) -> dict:
    resp = client.post(SUMMARY, json=spec, headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def test_summary_of_lenet_counts_like_the_validator(client, headers):
    spec = example("lenet-mnist")
    out = _summary(client, headers, spec)
    assert out["valid"] is True and out["errors"] == []
    rows = out["layers"]
    assert [r["type"] for r in rows] == [layer["type"] for layer in spec["model"]["layers"]]
    # LeNet-5 as the example builds it: 5×5 convs of 20 and 40 filters, 2×2 pools, dense 100 and 10.
    assert [r["output_shape"] for r in rows[:4]] == [[20, 24, 24], [20, 12, 12], [40, 8, 8], [40, 4, 4]]
    assert [r["parameters"] for r in rows] == [520, 0, 20040, 0, 64100, 0, 1010]
    assert rows[0]["multiply_adds"] == 20 * 24 * 24 * 1 * 5 * 5
    assert rows[4]["multiply_adds"] == 640 * 100
    normal = validate_job_spec(spec)
    assert out["totals"]["parameters"] == 85670
    assert out["totals"]["memory_bytes"] == estimate_batch_memory(normal["model"], 32, "float32")
    assert out["totals"]["complete"] is True
    assert out["limits"]["max_parameters"] == 5_000_000 and out["batch_size"] == 32


def test_an_impossible_kernel_is_marked_on_its_layer(client, headers):
    spec = example("lenet-mnist")
    spec["model"]["layers"][2]["kernel"] = 15  # the input there is 12×12
    out = _summary(client, headers, spec)
    assert out["valid"] is False
    assert out["errors"] == [{"path": "model.layers[2].kernel", "message": "15 is larger than the 12×12 input"}]
    rows = out["layers"]
    assert rows[2]["errors"] == out["errors"] and rows[0]["errors"] == rows[1]["errors"] == []
    assert rows[1]["output_shape"] == [20, 12, 12] and rows[2]["output_shape"] is None
    assert out["totals"]["complete"] is False and out["totals"]["parameters"] == 520
    # What the summary calls invalid, submitting refuses with the same paths.
    resp = client.post(f"{API}/jobs", json=spec, headers=headers)
    assert [d["path"] for d in assert_error(resp, 422, "invalid_spec")["details"]] == ["model.layers[2].kernel"]


def test_geometry_is_summarised_before_a_later_broken_layer(client, headers):
    spec = tiny_train_spec()
    spec["model"]["layers"].insert(1, {"type": "conv", "filters": "many", "kernel": 3})
    out = _summary(client, headers, spec)
    assert not out["valid"]
    assert out["layers"][0]["output_shape"] is not None
    assert out["layers"][1]["output_shape"] is None
    assert [e["path"] for e in out["layers"][1]["errors"]] == ["model.layers[1].filters"]


def test_summary_of_a_gradcheck_uses_its_batch_and_float64(client, headers):
    spec = example("gradcheck")
    out = _summary(client, headers, spec)
    assert out["valid"] and out["dtype"] == "float64"
    assert out["batch_size"] == validate_job_spec(spec)["gradcheck"]["batch_size"]
    assert "max_gradcheck_parameters" in out["limits"]


def test_summary_of_an_unknown_uploaded_dataset_and_bad_bodies(client, headers):
    spec = tiny_train_spec(dataset="0" * 32)
    out = _summary(client, headers, spec)
    assert {"path": "data.dataset", "message": f"unknown dataset {'0' * 32!r}"} in out["errors"]
    assert _summary(client, headers, {})["errors"][0] == {"path": "type", "message": "required field"}
    assert_error(client.post(SUMMARY, data="[1]", headers={**headers, "Content-Type": "application/json"}), 400)
    assert_error(client.post(SUMMARY, data="{", headers={**headers, "Content-Type": "application/json"}), 400)
    assert_error(client.post(SUMMARY, data="x", headers={**headers, "Content-Type": "text/plain"}), 415)
    assert_error(client.post(SUMMARY, json=spec), 401)


def test_summary_stores_nothing(client, headers, app_store):
    _summary(client, headers, tiny_train_spec())
    assert client.get(f"{API}/jobs", headers=headers).get_json()["total"] == 0


# ------------------------------------------------------------------ the API's event stream


def test_event_stream_with_a_token(client, headers, app_store, auth):
    job = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=headers).get_json()
    store.record_metrics(app_store, job["id"], [("train_loss", s, 1.0 / s) for s in range(1, 6)])
    assert store.claim_job(app_store, job["id"], "w") is not None
    assert store.finish_job(app_store, job["id"], "succeeded", result={"test_accuracy": 0.5}, worker="w")
    resp = client.get(f"{API}/jobs/{job['id']}/events", headers=headers)
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    events = sse_events(resp.get_data(as_text=True))
    assert [e for e, _ in events] == ["job", "series", "end"]
    assert events[0][1]["result"] == {"test_accuracy": 0.5}
    assert [p[0] for p in events[1][1]["series"]["train_loss"]] == [1, 2, 3, 4, 5]
    assert events[2][1] == {"status": "succeeded"}


@pytest.mark.parametrize("who", ["nobody", "bob"])
def test_event_stream_needs_a_token_and_the_job(client, headers, auth, who):
    job = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=headers).get_json()
    if who == "nobody":
        assert_error(client.get(f"{API}/jobs/{job['id']}/events"), 401)
    else:
        assert_error(client.get(f"{API}/jobs/{job['id']}/events", headers=auth.headers("bob")), 404)


def test_summaries_conform_to_the_documented_schema(client, headers):
    from test_api_ops import openapi, response_validator

    doc = openapi(client, headers)
    validator = response_validator(doc, "post", f"{API}/specs/summary", 200)
    broken = example("lenet-mnist")
    broken["model"]["layers"][2]["kernel"] = 15
    gradcheck = example("gradcheck")
    for spec in (example("lenet-mnist"), broken, gradcheck, {}, {"model": {"layers": [1, {"type": "conv"}]}}):
        body = _summary(client, headers, spec)
        errors = [f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in validator.iter_errors(body)]
        assert not errors, errors

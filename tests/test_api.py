"""API unit tests (fake publisher): authentication, submitting jobs, and every kind of bad input.

Every bad request must leave the database and the queue untouched.
"""

from __future__ import annotations

import json

import pytest

import store
from service.schemas import ERROR
from tests.helpers import tiny_train_spec

API = "/api/v1"


def assert_error(resp, status: int, code: str | None = None) -> dict:
    """The response is the API's error shape with ``status`` (and ``code``); returns ``error``."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) == set(ERROR["properties"]["error"]["required"])
    err = body["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert all(set(d) == {"path", "message"} for d in err["details"])
    if code is not None:
        assert err["code"] == code
    return err


def paths(err: dict) -> list[str]:
    """The field paths of an error's details."""
    return [d["path"] for d in err["details"]]


@pytest.fixture
def nothing_created(app_store, publisher):
    """Assert, after the test, that no job was stored and nothing was published."""
    yield
    assert store.list_jobs(app_store, None)[1] == 0
    assert publisher.published == []


# ------------------------------------------------------------------ authentication


@pytest.mark.parametrize("value", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwdw==", "cl_abc"])
def test_missing_token_is_401(client, value):
    headers = {} if value is None else {"Authorization": value}
    resp = client.get(f"{API}/jobs", headers=headers)
    assert_error(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_invalid_token_is_401(client, headers):
    resp = client.get(f"{API}/jobs", headers={"Authorization": headers["Authorization"] + "x"})
    assert_error(resp, 401, "unauthorized")
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/jobs"),
        ("post", "/jobs"),
        ("get", "/jobs/abc"),
        ("get", "/jobs/abc/metrics"),
        ("post", "/jobs/abc/cancel"),
        ("get", "/jobs/abc/artifacts/weights.npz"),
        ("get", "/datasets"),
        ("post", "/datasets"),
        ("get", "/workers"),
        ("get", "/openapi.json"),
    ],
)
def test_every_api_route_needs_a_token(client, method, path, nothing_created):
    assert_error(getattr(client, method)(API + path, json={}), 401)


def test_a_valid_token_works_with_any_scheme_case(client, auth):
    resp = client.get(f"{API}/jobs", headers={"Authorization": f"bearer  {auth.token()}"})
    assert resp.status_code == 200


# ------------------------------------------------------------------ submit


def test_submit_stores_then_publishes(client, headers, app_store, publisher, auth):
    resp = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=headers)
    assert resp.status_code == 201, resp.get_json()
    job = resp.get_json()
    assert job["status"] == "queued" and job["type"] == "train" and job["name"] == "tiny"
    assert job["queue_position"] == 1 and job["attempts"] == 0 and job["result"] is None
    assert job["progress"] == {"epoch": 0, "step": 0, "total_steps": 0}
    assert job["spec"]["train"]["dtype"] == "float32"  # normalised: defaults filled in
    assert resp.headers["Location"] == f"{API}/jobs/{job['id']}"
    assert publisher.published == [job["id"]]  # the fake checked the row was committed
    assert store.get_job(app_store, job["id"], auth.user())["spec"] == job["spec"]


def test_submit_accepts_json_with_charset_and_gradcheck_jobs(client, headers, publisher):
    spec = {"type": "gradcheck", "model": tiny_train_spec()["model"], "gradcheck": {}}
    resp = client.post(
        f"{API}/jobs", data=json.dumps(spec), headers=headers, content_type="application/json; charset=utf-8"
    )
    assert resp.status_code == 201
    assert resp.get_json()["spec"]["gradcheck"]["rotate_kernels"] is True
    assert len(publisher.published) == 1


def test_a_failed_publish_still_answers_201_and_keeps_the_job_queued(client, headers, publisher, app_store):
    publisher.fail = True
    resp = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=headers)
    assert resp.status_code == 201
    assert store.get_job(app_store, resp.get_json()["id"], None)["status"] == "queued"
    # The database is the queue: the workers' sweep counts it and publishes the missing wake-up,
    # and the next claim takes it.
    assert store.count_queued(app_store) == 1
    assert store.claim_next_job(app_store, "w")["id"] == resp.get_json()["id"]


def _mutated(fn) -> dict:
    spec = tiny_train_spec()
    fn(spec)
    return spec


@pytest.mark.parametrize(
    "spec, expected",
    [
        (_mutated(lambda s: s["model"]["layers"][0].update(kernel="3")), ["model.layers[0].kernel"]),
        (
            _mutated(lambda s: s["model"]["layers"].insert(1, {"type": "conv", "filters": 4, "kernel": 40})),
            ["model.layers[1].kernel"],
        ),
        (_mutated(lambda s: s.update(bogus=1)), ["bogus"]),
        (_mutated(lambda s: s["train"]["optimizer"].update(momentun=0.9)), ["train.optimizer.momentun"]),
        (_mutated(lambda s: s["train"].update(epochs="5")), ["train.epochs"]),
        (_mutated(lambda s: s["train"].update(epochs=10**6)), ["train.epochs"]),
        (
            _mutated(
                lambda s: s["model"].update(
                    layers=[
                        {"type": "conv", "filters": 512, "kernel": 3, "padding": 1},
                        {"type": "dense", "units": 4096},
                        {"type": "dense", "units": 4, "activation": "softmax"},
                    ]
                )
            ),
            ["model"],
        ),
        (_mutated(lambda s: s["data"].update(dataset="no-such-dataset")), ["data.dataset"]),
        (_mutated(lambda s: s.update(type="train", train=None, tags="x")), ["tags", "train"]),
    ],
)
def test_invalid_specs_are_422_with_field_paths(client, headers, spec, expected, nothing_created):
    err = assert_error(client.post(f"{API}/jobs", json=spec, headers=headers), 422, "invalid_spec")
    assert sorted(paths(err)) == sorted(expected)


@pytest.mark.parametrize(
    "body", [b"", b"{", b'{"type": "train",}', b"\xff\xfe", b'{"a": NaN}', b"[" * 100_000 + b"]" * 100_000]
)
def test_malformed_json_is_400(client, headers, body, nothing_created):
    resp = client.post(f"{API}/jobs", data=body, headers=headers, content_type="application/json")
    assert_error(resp, 400, "malformed_json")


@pytest.mark.parametrize("body", ["[]", "null", "42", '"spec"', "[{}]"])
def test_json_that_is_not_an_object_is_400(client, headers, body, nothing_created):
    resp = client.post(f"{API}/jobs", data=body, headers=headers, content_type="application/json")
    assert_error(resp, 400, "not_an_object")


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_wrong_content_type_is_415(client, headers, content_type, nothing_created):
    resp = client.post(f"{API}/jobs", data=json.dumps(tiny_train_spec()), headers=headers, content_type=content_type)
    assert_error(resp, 415, "unsupported_media_type")


class TestSmallBodyLimit:
    @pytest.fixture
    def test_config(self):
        return {"TESTING": True, "MAX_CONTENT_LENGTH": 2048}

    def test_oversized_body_is_413(self, client, headers, nothing_created):
        spec = tiny_train_spec()
        spec["name"] = "x" * 4000
        resp = client.post(f"{API}/jobs", json=spec, headers=headers)
        err = assert_error(resp, 413, "payload_too_large")
        assert "2048" in err["message"]

    def test_a_body_under_the_limit_passes(self, client, headers):
        assert client.post(f"{API}/jobs", json=tiny_train_spec(), headers=headers).status_code == 201


# ------------------------------------------------------------------ other errors


def test_unknown_route_and_method_are_json(client, headers):
    assert_error(client.get(f"{API}/nope", headers=headers), 404, "not_found")
    resp = client.delete(f"{API}/jobs", headers=headers)
    assert_error(resp, 405, "method_not_allowed")
    assert set(resp.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_unexpected_errors_are_500_without_traceback(client, headers, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(store, "list_jobs", boom)
    resp = client.get(f"{API}/jobs", headers=headers)
    assert_error(resp, 500, "internal_error")
    text = resp.get_data(as_text=True)
    assert "secret internals" not in text and "Traceback" not in text

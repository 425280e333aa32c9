"""API unit tests of the operational endpoints: health, Prometheus metrics, workers, the OpenAPI
document (complete, and honest: real responses conform to its schemas), security headers."""

from __future__ import annotations

import io
import re

import jsonschema
import numpy as np
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

import store
from engine.spec import job_spec_schema
from test_api import API, assert_error
from tests.helpers import tiny_train_spec

OPENAPI_URI = "urn:convlab:openapi"

# ------------------------------------------------------------------ health, headers


@pytest.mark.parametrize("path", ["/healthz", f"{API}/healthz"])
def test_healthz_needs_no_token(client, path):
    resp = client.get(path)
    assert resp.status_code == 200 and resp.get_json() == {"status": "ok", "database": "ok"}


def test_healthz_is_503_when_the_database_does_not_answer(client, monkeypatch):
    def down(_db):
        raise ConnectionError("database is down")

    monkeypatch.setattr(store, "ping", down)
    resp = client.get("/healthz")
    assert resp.status_code == 503 and resp.get_json()["database"] == "unavailable"


@pytest.mark.parametrize("path", ["/healthz", "/metrics", f"{API}/jobs", f"{API}/nope", "/nope"])
def test_security_headers_on_every_response(client, path):
    headers = client.get(path).headers
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "default-src 'self'" in headers["Content-Security-Policy"]


# ------------------------------------------------------------------ /metrics

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$')


def scrape(client) -> dict[str, float]:
    """GET /metrics, check every line's syntax, return ``{"name{labels}": value}``."""
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in resp.get_data(as_text=True).splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* \S", line), line
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        samples[line.rsplit(" ", 1)[0]] = float(m.group(4))
    return samples


def test_metrics_counts_change_with_jobs(client, headers, app_store):
    before = scrape(client)
    for status in store.STATUSES:
        assert before[f'convlab_jobs{{status="{status}"}}'] == 0
    assert before["convlab_queue_depth"] == 0 and before["convlab_workers_live"] == 0
    assert before["convlab_job_duration_seconds_count"] == 0
    assert before['convlab_job_duration_seconds_bucket{le="+Inf"}'] == 0

    ids = [client.post(f"{API}/jobs", json=tiny_train_spec(), headers=headers).get_json()["id"] for _ in range(3)]
    store.claim_job(app_store, ids[0], "w")
    store.finish_job(app_store, ids[0], "succeeded", result={})
    store.worker_heartbeat(app_store, "w@host", "host", 1, None)
    after = scrape(client)
    assert after['convlab_jobs{status="queued"}'] == 2 and after["convlab_queue_depth"] == 2
    assert after['convlab_jobs{status="succeeded"}'] == 1 and after["convlab_workers_live"] == 1
    assert after["convlab_job_duration_seconds_count"] == 1
    assert after['convlab_job_duration_seconds_bucket{le="+Inf"}'] == 1
    assert after['convlab_job_duration_seconds_bucket{le="1.0"}'] == 1  # it took no time
    assert 0 <= after["convlab_job_duration_seconds_sum"] < 1
    buckets = [v for k, v in after.items() if k.startswith("convlab_job_duration_seconds_bucket")]
    assert buckets == sorted(buckets)  # cumulative


# ------------------------------------------------------------------ /workers


def test_workers_lists_live_ones(client, auth, app_store, settings):
    admin = auth.headers("root", admin=True)
    assert client.get(f"{API}/workers", headers=admin).get_json() == {"workers": []}
    store.worker_heartbeat(app_store, "w1@a", "a", 10, "job-1")
    store.worker_heartbeat(app_store, "w2@b", "b", 11, None)
    workers = client.get(f"{API}/workers", headers=admin).get_json()["workers"]
    assert [(w["name"], w["busy"], w["job_id"]) for w in workers] == [("w1@a", True, "job-1"), ("w2@b", False, None)]
    assert all(0 <= w["heartbeat_age_s"] < settings.worker_alive_s for w in workers)
    # Another user's job id is not shown to a non-admin (job-1 is not alice's): only that the worker is busy.
    workers = client.get(f"{API}/workers", headers=auth.headers("alice")).get_json()["workers"]
    assert [(w["name"], w["busy"], w["job_id"]) for w in workers] == [("w1@a", True, None), ("w2@b", False, None)]


def test_tokens_list_and_revoke_over_the_api(client, auth):
    alice, bob, root = auth.headers("alice"), auth.headers("bob"), auth.headers("root", admin=True)
    mine = client.get(f"{API}/tokens", headers=alice).get_json()["tokens"]
    assert [t["user"] for t in mine] == ["alice"] and "token_hash" not in mine[0]
    assert {t["user"] for t in client.get(f"{API}/tokens", headers=root).get_json()["tokens"]} == {
        "alice",
        "bob",
        "root",
    }
    bobs = client.get(f"{API}/tokens", headers=bob).get_json()["tokens"][0]["id"]
    assert client.delete(f"{API}/tokens/{bobs}", headers=alice).status_code == 404  # not hers
    assert client.get(f"{API}/workers", headers=bob).status_code == 200
    resp = client.delete(f"{API}/tokens/{bobs}", headers=root)
    assert resp.status_code == 200 and resp.get_json()["token"]["state"] == "revoked"
    resp = client.get(f"{API}/workers", headers=bob)
    assert resp.status_code == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert client.delete(f"{API}/tokens/{bobs}", headers=root).get_json()["token"]["state"] == "revoked"
    assert client.delete(f"{API}/tokens/999999", headers=root).status_code == 404


# ------------------------------------------------------------------ OpenAPI


def openapi(client, headers) -> dict:
    resp = client.get(f"{API}/openapi.json", headers=headers)
    assert resp.status_code == 200
    return resp.get_json()


def test_openapi_documents_every_api_route(client, headers, app):
    doc = openapi(client, headers)
    assert doc["openapi"].startswith("3.1")
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(f"{API}/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            op = doc["paths"].get(path, {}).get(method.lower())
            assert op is not None, f"{method} {path} is missing from openapi.json"
            assert op["description"].strip() and op["summary"].strip(), f"{method} {path} has no description"
            assert any(code.startswith("2") for code in op["responses"]), f"{method} {path}: no success"
            if path != f"{API}/healthz":
                assert "401" in op["responses"]
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert doc["paths"]["/healthz"]["get"]["security"] == []


def test_openapi_job_spec_is_the_engines_schema(client, headers, app):
    doc = openapi(client, headers)
    assert doc["components"]["schemas"]["JobSpec"] == job_spec_schema(app.extensions["convlab"].limits)
    body = doc["paths"][f"{API}/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/JobSpec"}


def test_openapi_document_is_valid(client, headers):
    import openapi_spec_validator

    openapi_spec_validator.validate(openapi(client, headers))


def response_validator(doc: dict, method: str, path: str, status: int) -> jsonschema.Draft202012Validator:
    """A validator of the documented JSON body of one response (OpenAPI 3.1 schemas are JSON Schema 2020-12).

    The document is registered as a resource, so its ``#/components/...`` references resolve as in the
    document itself; formats (``date-time``) are checked too.
    """
    pointer = f"/paths/{_escape(path)}/{method}/responses/{status}/content/application~1json/schema"
    registry = Registry().with_resource(OPENAPI_URI, Resource.from_contents(doc, default_specification=DRAFT202012))
    return jsonschema.Draft202012Validator(
        {"$ref": f"{OPENAPI_URI}#{pointer}"},
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def _escape(token: str) -> str:
    """A JSON Pointer reference token (RFC 6901: ``~`` and ``/`` escaped)."""
    return token.replace("~", "~0").replace("/", "~1")


def test_responses_conform_to_the_documented_schemas(client, headers, app_store):
    doc = openapi(client, headers)

    def check(resp, method: str, path: str) -> None:
        errors = [
            f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}"
            for e in response_validator(doc, method, path, resp.status_code).iter_errors(resp.get_json())
        ]
        assert not errors, f"{method} {path} {resp.status_code}: " + "; ".join(errors)

    buf = io.BytesIO()
    np.savez(buf, X=np.zeros((8, 6, 6)), y=np.arange(8) % 2)
    ds = client.post(
        f"{API}/datasets",
        headers=headers,
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(buf.getvalue()), "d.npz")},
    )
    check(ds, "post", f"{API}/datasets")
    check(client.get(f"{API}/datasets", headers=headers), "get", f"{API}/datasets")
    check(client.get(f"{API}/datasets/{ds.get_json()['id']}", headers=headers), "get", f"{API}/datasets/{{dataset_id}}")

    job = client.post(f"{API}/jobs", headers=headers, json=tiny_train_spec())
    check(job, "post", f"{API}/jobs")
    job_id = job.get_json()["id"]
    store.claim_job(app_store, job_id, "w")
    store.record_metrics(app_store, job_id, [("train_loss", 1, 0.5), ("train_loss", 2, float("inf"))])
    store.finish_job(
        app_store,
        job_id,
        "succeeded",
        result={"test_accuracy": 0.5, "parameter_count": 10, "confusion_matrix": [[1, 0], [0, 1]]},
    )
    check(client.get(f"{API}/jobs", headers=headers), "get", f"{API}/jobs")
    check(client.get(f"{API}/jobs/{job_id}", headers=headers), "get", f"{API}/jobs/{{job_id}}")
    check(client.get(f"{API}/jobs/{job_id}/metrics", headers=headers), "get", f"{API}/jobs/{{job_id}}/metrics")
    queued = client.post(f"{API}/jobs", headers=headers, json=tiny_train_spec()).get_json()["id"]
    check(client.post(f"{API}/jobs/{queued}/cancel", headers=headers), "post", f"{API}/jobs/{{job_id}}/cancel")
    store.worker_heartbeat(app_store, "w@h", "h", 1, job_id)
    check(client.get(f"{API}/workers", headers=headers), "get", f"{API}/workers")
    check(client.get("/healthz"), "get", "/healthz")

    # Errors too.
    check(client.post(f"{API}/jobs", headers=headers, json={"type": "x"}), "post", f"{API}/jobs")
    check(client.post(f"{API}/jobs/{job_id}/cancel", headers=headers), "post", f"{API}/jobs/{{job_id}}/cancel")
    check(client.get(f"{API}/jobs?limit=0", headers=headers), "get", f"{API}/jobs")
    check(client.get(f"{API}/jobs", headers={}), "get", f"{API}/jobs")
    assert_error(client.get(f"{API}/jobs/nope", headers=headers), 404)

"""``Idempotency-Key`` on the creating calls (POST /jobs, POST /datasets, the dashboard's submit):
a retry returns the first answer and creates nothing; another request with the key is 422; keys
are per user, bounded in length, and expire."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

import store
from store.models import IdempotencyKey, utcnow
from test_api import API, assert_error
from test_api_datasets import npz, upload
from test_api_outage import database_gone
from test_dashboard import Dashboard
from tests.helpers import tiny_train_spec

KEY = "Idempotency-Key"


def _keyed(headers: dict, key: str) -> dict:
    return {**headers, KEY: key}


def _job_count(db) -> int:
    return store.list_jobs(db, None)[1]


def _key_count(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(IdempotencyKey))


def test_a_retried_submit_returns_the_first_answer_and_creates_nothing(client, headers, app_store, publisher):
    first = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=_keyed(headers, "k-1"))
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    again = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=_keyed(headers, "k-1"))
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert _job_count(app_store) == 1 and publisher.published == [first.get_json()["id"]]
    # The draft's structured-field form ("...") names the same key; a new key is a new job.
    quoted = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=_keyed(headers, '"k-1"'))
    assert quoted.get_json()["id"] == first.get_json()["id"]
    other = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=_keyed(headers, "k-2"))
    assert other.status_code == 201 and other.get_json()["id"] != first.get_json()["id"]
    assert _job_count(app_store) == 2


def test_the_same_key_for_another_request_is_422(client, headers, app_store):
    spec = tiny_train_spec()
    assert client.post(f"{API}/jobs", json=spec, headers=_keyed(headers, "k")).status_code == 201
    changed = dict(spec, name="another")
    err = assert_error(
        client.post(f"{API}/jobs", json=changed, headers=_keyed(headers, "k")), 422, "idempotency_key_reused"
    )
    assert err["details"][0]["path"] == f"headers.{KEY}"
    err = assert_error(upload(client, _keyed(headers, "k"), npz()), 422, "idempotency_key_reused")  # another call
    # Key order and spacing of the JSON body do not make it another request.
    reordered = dict(reversed(list(spec.items())))
    assert client.post(f"{API}/jobs", json=reordered, headers=_keyed(headers, "k")).status_code == 201
    assert _job_count(app_store) == 1


def test_keys_belong_to_their_user(client, auth, app_store):
    a = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=_keyed(auth.headers("alice"), "same"))
    b = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=_keyed(auth.headers("bob"), "same"))
    assert a.status_code == b.status_code == 201 and a.get_json()["id"] != b.get_json()["id"]


@pytest.mark.parametrize("key", ["", '""', "x" * 256, "naïve", "tab\there", 'a"b'])
def test_malformed_keys_are_400_and_create_nothing(client, headers, app_store, key):
    err = assert_error(
        client.post(f"{API}/jobs", json=tiny_train_spec(), headers=_keyed(headers, key)), 400, "invalid_idempotency_key"
    )
    assert err["details"][0]["path"] == f"headers.{KEY}"
    assert _job_count(app_store) == 0


def test_the_longest_key_is_accepted(client, headers):
    assert client.post(f"{API}/jobs", json=tiny_train_spec(), headers=_keyed(headers, "x" * 255)).status_code == 201


def test_a_failed_request_records_nothing(client, headers, app_store):
    bad = tiny_train_spec()
    bad["train"]["epochs"] = 0
    assert_error(client.post(f"{API}/jobs", json=bad, headers=_keyed(headers, "fix-me")), 422, "invalid_spec")
    assert _key_count(app_store) == 0
    assert client.post(f"{API}/jobs", json=tiny_train_spec(), headers=_keyed(headers, "fix-me")).status_code == 201


def test_committed_but_the_answer_failed_then_the_retry_gets_the_job(client, headers, app_store, settings, publisher):
    """The database goes away right after the job's commit (while the answer is built): 503.
    The retry with the same key answers the job that was committed; there is still only one."""
    state = {}

    class PublishThenLoseTheDatabase(type(publisher)):
        def __call__(self, job_id):
            super().__call__(job_id)
            state["gone"] = database_gone(settings, app_store)
            state["gone"].__enter__()

    flaky = PublishThenLoseTheDatabase()
    flaky.store = app_store
    client.application.extensions["convlab"].publish = flaky
    lost = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=_keyed(headers, "retry-me"))
    assert lost.status_code == 503  # the client never saw the job's id
    state["gone"].__exit__(None, None, None)
    client.application.extensions["convlab"].publish = publisher
    retry = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=_keyed(headers, "retry-me"))
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert _job_count(app_store) == 1 and retry.get_json()["id"] == flaky.published[0]


def test_keys_expire_and_are_swept(client, headers, app_store, app):
    ttl = app.extensions["convlab"].settings.idempotency_ttl_s
    first = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=_keyed(headers, "old"))
    client.post(f"{API}/jobs", json=tiny_train_spec(), headers=_keyed(headers, "older"))
    with app_store.session() as s:  # a day has passed
        s.execute(update(IdempotencyKey).values(created_at=utcnow() - timedelta(seconds=ttl + 60)))
    again = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=_keyed(headers, "old"))
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert again.get_json()["id"] != first.get_json()["id"]
    assert _key_count(app_store) == 1  # "older" was swept, "old" is the new one


def test_a_retried_dataset_upload_stores_one_dataset(client, headers, app_store):
    data = npz()
    first = upload(client, _keyed(headers, "up-1"), data)
    again = upload(client, _keyed(headers, "up-1"), data)
    assert first.status_code == again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert len(store.list_datasets(app_store, None)) == 1
    assert_error(upload(client, _keyed(headers, "up-1"), npz(n=44)), 422, "idempotency_key_reused")


def test_a_dashboard_batch_is_stored_once(client, auth, app_store):
    dash = Dashboard(client, auth.token("alice"))
    batch = [tiny_train_spec(), dict(tiny_train_spec(), name="second")]
    keyed = {"X-CSRF-Token": dash.csrf, KEY: "click-1"}
    first = client.post("/submit", json=batch, headers=keyed)
    again = client.post("/submit", json=batch, headers=keyed)  # a double click
    assert first.status_code == again.status_code == 201
    assert [j["id"] for j in again.get_json()["jobs"]] == [j["id"] for j in first.get_json()["jobs"]]
    assert _job_count(app_store) == 2


def test_concurrent_requests_with_one_key_create_one_job(app, headers, app_store):
    answers: list = []

    def post():
        answers.append(app.test_client().post(f"{API}/jobs", json=tiny_train_spec(), headers=_keyed(headers, "race")))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [201] * 4
    assert len({a.get_json()["id"] for a in answers}) == 1 and _job_count(app_store) == 1


def test_the_openapi_document_describes_keys_and_outages(client, headers):
    doc = client.get(f"{API}/openapi.json", headers=headers).get_json()
    for path in (f"{API}/jobs", f"{API}/datasets"):
        post = doc["paths"][path]["post"]
        assert KEY in [p["name"] for p in post["parameters"] if p["in"] == "header"]
        assert "Idempotent-Replayed" in post["responses"]["201"]["headers"]
        assert "idempotency_key_reused" in post["responses"]["422"]["description"]
    for ops in doc["paths"].values():
        for op in ops.values():
            assert "Retry-After" in op["responses"]["503"]["headers"]

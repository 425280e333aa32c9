"""API tests of the per-user limits (429, nothing stored), the admin's limits endpoints, /users/me,
and deleting jobs and datasets without leaving anything behind, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

import store
from store.models import Base, Job
from test_api import API, assert_error, paths
from test_api_datasets import npz, upload
from tests.conftest import BACKENDS, sqlite_copy
from tests.helpers import parse_ts, tiny_train_spec


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path, migrated_sqlite) -> str:
    """The app's database on each backend (PostgreSQL: the session's database, emptied)."""
    if request.param == "sqlite":
        return sqlite_copy(migrated_sqlite, tmp_path / "var" / "convlab.db")
    url = request.getfixturevalue("pg_store_url")
    db = store.Store.from_url(url)
    with db.engine.begin() as conn:
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    db.dispose()
    return url


def _counts(db) -> dict[str, int]:
    """Rows of every table."""
    with db.session() as s:
        return {t.name: s.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}


def _limits(client, auth, name: str, **values):
    resp = client.put(f"{API}/users/{name}/limits", json=values, headers=auth.headers("root", admin=True))
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_queued_limit_answers_429_with_retry_after_and_stores_nothing(client, auth, headers, app_store, publisher):
    _limits(client, auth, "alice", max_queued=2)
    for _ in range(2):
        assert client.post(f"{API}/jobs", json=tiny_train_spec(), headers=headers).status_code == 201
    before = _counts(app_store)
    resp = client.post(f"{API}/jobs", json=tiny_train_spec(), headers={**headers, "Idempotency-Key": "k1"})
    err = assert_error(resp, 429, "quota_exceeded")
    assert "limit is 2" in err["message"] and paths(err) == ["max_queued"]
    assert int(resp.headers["Retry-After"]) > 0
    assert _counts(app_store) == before and len(publisher.published) == 2
    # Another user is not limited by alice's override.
    assert client.post(f"{API}/jobs", json=tiny_train_spec(), headers=auth.headers("bob")).status_code == 201


def test_compute_limit_answers_429_with_the_estimate_and_the_limit(client, auth, headers, app_store):
    _limits(client, auth, "alice", max_compute=1e6)
    before = _counts(app_store)
    err = assert_error(
        client.post(f"{API}/jobs", json=tiny_train_spec(epochs=2), headers=headers), 429, "quota_exceeded"
    )
    assert paths(err) == ["train"] and "1e+06" in err["message"] and "estimated" in err["message"]
    assert _counts(app_store) == before
    _limits(client, auth, "alice", max_compute=None)  # back to the deployment's default
    assert client.post(f"{API}/jobs", json=tiny_train_spec(), headers=headers).status_code == 201


def test_storage_limit_refuses_uploads_and_submits(client, auth, headers, app_store):
    data = npz()
    assert upload(client, headers, data).status_code == 201
    _limits(client, auth, "alice", max_storage=len(data) + 10)
    before = _counts(app_store)
    err = assert_error(upload(client, headers, data, filename="again.npz"), 429, "quota_exceeded")
    assert paths(err) == ["file"] and "storage limit" in err["message"]
    _limits(client, auth, "alice", max_storage=len(data) - 1)
    assert_error(client.post(f"{API}/jobs", json=tiny_train_spec(), headers=headers), 429, "quota_exceeded")
    assert _counts(app_store) == before


def test_users_me_shows_limits_and_usage(client, auth, headers):
    data = npz()
    assert upload(client, headers, data).status_code == 201
    assert client.post(f"{API}/jobs", json=tiny_train_spec(), headers=headers).status_code == 201
    _limits(client, auth, "alice", max_running=1)
    me = client.get(f"{API}/users/me", headers=headers).get_json()
    assert me["name"] == "alice" and me["is_admin"] is False
    assert me["limits"]["max_running"] == 1 and me["limits"]["max_queued"] == 1000
    assert me["usage"]["queued"] == 1 and me["usage"]["running"] == 0
    assert me["usage"]["storage_bytes"]["datasets"] == len(data)
    assert me["usage"]["storage_bytes"]["total"] >= len(data)


def test_limits_endpoints_are_for_admins_and_check_their_input(client, auth, headers):
    headers_root = auth.headers("root", admin=True)
    assert_error(client.get(f"{API}/users/alice/limits", headers=headers), 403)
    assert_error(client.put(f"{API}/users/alice/limits", json={"max_running": 1}, headers=headers), 403)
    assert_error(client.get(f"{API}/users/nobody/limits", headers=headers_root), 404)
    err = assert_error(
        client.put(
            f"{API}/users/alice/limits",
            headers=headers_root,
            json={"max_running": -1, "max_queued": True, "max_compute": "lots", "max_storage": 2**70, "speed": 1},
        ),
        422,
        "invalid_limits",
    )
    assert sorted(paths(err)) == ["max_compute", "max_queued", "max_running", "max_storage", "speed"]
    for huge in ({"max_compute": 10**400}, {"max_running": 10**400}):  # never a float overflow (500)
        assert_error(client.put(f"{API}/users/alice/limits", headers=headers_root, json=huge), 422, "invalid_limits")
    view = _limits(client, auth, "alice", max_running=2, max_storage=10**9)
    assert view["overrides"]["max_running"] == 2 and view["effective"]["max_storage"] == 10**9
    view = _limits(client, auth, "alice", max_running=None)
    assert view["overrides"] == {"max_running": None, "max_queued": None, "max_compute": None, "max_storage": 10**9}
    assert client.get(f"{API}/users/alice/limits", headers=headers_root).get_json() == view


def test_deleting_a_job_leaves_no_row_behind(client, auth, headers, app_store):
    before = _counts(app_store)
    resp = client.post(
        f"{API}/jobs",
        json={**tiny_train_spec(), "tags": ["x", "y"]},
        headers={**headers, "Idempotency-Key": "submit-1"},
    )
    job_id = resp.get_json()["id"]
    assert store.claim_job(app_store, job_id, "host:1")
    store.record_metrics(app_store, job_id, [("train_loss", s, 1.0 / s) for s in range(1, 50)], worker="host:1")
    assert store.save_artifact(app_store, job_id, "checkpoint.npz", b"c" * 100, worker="host:1")
    store.worker_heartbeat(app_store, "host:1", "host", 1, job_id)
    assert_error(client.delete(f"{API}/jobs/{job_id}", headers=headers), 409)  # running
    assert store.finish_job(app_store, job_id, "succeeded", worker="host:1", artifacts={"weights.npz": b"w" * 10})
    assert_error(client.delete(f"{API}/jobs/{job_id}", headers=auth.headers("bob")), 404)  # not bob's
    assert client.delete(f"{API}/jobs/{job_id}", headers=headers).status_code == 204
    after = _counts(app_store)
    assert after == {**before, "users": after["users"], "api_tokens": after["api_tokens"], "workers": 1}
    assert store.live_workers(app_store, 60)[0]["job_id"] is None
    assert_error(client.get(f"{API}/jobs/{job_id}", headers=headers), 404)
    assert_error(client.delete(f"{API}/jobs/{job_id}", headers=headers), 404)
    # The retry of the request that created it finds nothing to replay and creates a new job.
    again = client.post(
        f"{API}/jobs",
        json={**tiny_train_spec(), "tags": ["x", "y"]},
        headers={**headers, "Idempotency-Key": "submit-1"},
    )
    assert again.status_code == 201 and again.get_json()["id"] != job_id


def test_admins_delete_anyones_jobs_and_datasets(client, auth, headers, app_store):
    root = auth.headers("root", admin=True)
    job_id = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=headers).get_json()["id"]
    assert client.delete(f"{API}/jobs/{job_id}", headers=root).status_code == 204
    ds = upload(client, headers, npz()).get_json()["id"]
    assert client.delete(f"{API}/datasets/{ds}", headers=root).status_code == 204
    assert _counts(app_store)["jobs"] == 0 and _counts(app_store)["datasets"] == 0


def test_a_dataset_in_use_is_not_deleted(client, headers, app_store):
    before = _counts(app_store)
    ds = upload(client, headers, npz()).get_json()["id"]
    job_id = client.post(f"{API}/jobs", json=tiny_train_spec(dataset=ds), headers=headers).get_json()["id"]
    assert_error(client.delete(f"{API}/datasets/{ds}", headers=headers), 409)
    assert client.post(f"{API}/jobs/{job_id}/cancel", headers=headers).status_code == 200
    assert client.delete(f"{API}/datasets/{ds}", headers=headers).status_code == 204
    assert client.delete(f"{API}/jobs/{job_id}", headers=headers).status_code == 204
    after = _counts(app_store)
    assert after == {**before, "users": after["users"], "api_tokens": after["api_tokens"]}


def test_queue_positions_and_start_estimates_follow_the_dispatch_order(client, auth, headers, app_store):
    bob = auth.headers("bob")
    mine = [client.post(f"{API}/jobs", json=tiny_train_spec(), headers=headers).get_json()["id"] for _ in range(3)]
    theirs = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=bob).get_json()["id"]
    # Bob submitted last, yet his only job is second in line: alice's second job comes after it.
    assert client.get(f"{API}/jobs/{theirs}", headers=bob).get_json()["queue_position"] == 2
    listed = {j["id"]: j for j in client.get(f"{API}/jobs", headers=headers).get_json()["jobs"]}
    assert [listed[j]["queue_position"] for j in mine] == [1, 3, 4]
    assert all("queue_eta_s" not in j for j in listed.values())  # no worker, no finished job: no basis
    store.worker_heartbeat(app_store, "host:1", "host", 1, None)
    done = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=auth.headers("carol")).get_json()["id"]
    assert store.claim_job(app_store, done, "host:1") and store.finish_job(
        app_store, done, "succeeded", worker="host:1"
    )
    finished = store.get_job(app_store, done, None)["finished_at"]
    with app_store.session() as s:  # it ran for 10 s
        s.execute(update(Job).where(Job.id == done).values(started_at=parse_ts(finished) - timedelta(seconds=10)))
    listed = {j["id"]: j for j in client.get(f"{API}/jobs", headers=headers).get_json()["jobs"]}
    etas = [listed[j]["queue_eta_s"] for j in mine]
    assert etas == [5.0, 25.0, 35.0]  # one worker, 10 s a job: half of one, then one after another

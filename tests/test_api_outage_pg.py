"""The real API (gunicorn, ``convlab serve``) while its PostgreSQL server is stopped and started:
every request answers 503 with Retry-After and the JSON error, the log says so once, and
once the server is back the same process serves again (a private server: see private_postgres)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.cluster import Cluster, wait_for
from tests.helpers import tiny_train_spec
from tests.private_postgres import PrivatePostgres

pytestmark = pytest.mark.processes  # gunicorn and a private PostgreSQL


@pytest.fixture
def postgres():
    pg = PrivatePostgres()
    pg.start()
    yield pg
    pg.close()


def _call(url: str, method: str = "GET", token: str | None = None, body: dict | None = None):
    """(status, headers, body text) of one HTTP request; error statuses are answers too."""
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


def test_api_answers_503_while_postgresql_is_down_and_recovers(tmp_path, postgres):
    cluster = Cluster(tmp_path, postgres.url)
    try:
        cluster.start_api()
        token = cluster.token("alice")
        api = f"{cluster.url}/api/v1"
        status, _, text = _call(f"{api}/jobs", "POST", token, tiny_train_spec())
        assert status == 201, text
        job_id = json.loads(text)["id"]
        cluster.store.dispose()  # the test's own connections must not linger

        postgres.stop()
        calls = [
            ("GET", f"{api}/jobs", None),
            ("GET", f"{api}/jobs/{job_id}", None),
            ("POST", f"{api}/jobs", tiny_train_spec()),
            ("GET", f"{api}/workers", None),
            ("GET", f"{api}/datasets", None),
            ("GET", f"{cluster.url}/metrics", None),
        ] * 3
        for method, url, body in calls:
            status, headers, text = _call(url, method, token, body)
            assert status == 503, (url, status, text)
            assert int(headers["Retry-After"]) > 0
            assert json.loads(text)["error"]["code"] == "database_unavailable"
        status, headers, _ = _call(f"{cluster.url}/healthz")
        assert status == 503 and int(headers["Retry-After"]) > 0

        postgres.start()
        wait_for(lambda: _call(f"{api}/jobs", token=token)[0] == 200, 60, "the API to serve again")
        status, _, text = _call(f"{api}/jobs/{job_id}", token=token)
        assert status == 200 and json.loads(text)["status"] == "queued"
    finally:
        cluster.stop()
    log = cluster.log_tail("api", lines=10_000)
    assert log.count("database unreachable") == 1, log  # one gunicorn process, one outage
    assert log.count("database reachable again") == 1, log
    assert "Traceback" not in log and "ERROR" not in log, log

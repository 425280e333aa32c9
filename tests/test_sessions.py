"""Tokens and dashboard sessions against the real API (gunicorn) on SQLite and PostgreSQL: revoking or
expiring a token, or signing out, ends it at once, for the API and for a copied session cookie."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta

import pytest
import requests
from sqlalchemy import update

import store
from store.models import ApiToken, utcnow
from tests.cluster import ROOT, Cluster

pytestmark = pytest.mark.processes  # gunicorn

API = "/api/v1"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cluster(request, tmp_path_factory):
    home = tmp_path_factory.mktemp(f"sessions-{request.param}")
    url = f"sqlite:///{home / 'convlab.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_databases")()
    c = Cluster(home, url)
    c.start_api()  # no workers: nothing here runs a job
    yield c
    c.stop()


def cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    """``convlab ARGS`` against the cluster's database, as an operator runs it on the server."""
    return subprocess.run(
        [sys.executable, "-m", "convlab.cli", *args],
        env=cluster.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def sign_in(cluster: Cluster, token: str) -> tuple[requests.Session, dict[str, str]]:
    """Sign in through the real form (with its CSRF token); returns the browser and a copy of its cookies."""
    browser = requests.Session()
    page = browser.get(f"{cluster.url}/login", timeout=10).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = browser.post(
        f"{cluster.url}/login", data={"token": token, "csrf_token": csrf}, allow_redirects=False, timeout=10
    )
    assert resp.status_code == 302 and "/login" not in resp.headers["Location"], resp.text[:300]
    return browser, browser.cookies.get_dict()


def copied_cookie_works(cluster: Cluster, cookies: dict[str, str]) -> int:
    """The status of a dashboard data request made by someone else holding a copy of the cookie."""
    return requests.get(
        f"{cluster.url}/jobs.json",
        cookies=cookies,
        headers={"Accept": "application/json"},
        allow_redirects=False,
        timeout=10,
    ).status_code


def api_status(cluster: Cluster, token: str) -> int:
    return requests.get(
        f"{cluster.url}{API}/jobs", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).status_code


def test_sign_out_ends_the_session_on_the_server(cluster):
    token = cluster.token("alice")
    browser, cookies = sign_in(cluster, token)
    assert copied_cookie_works(cluster, cookies) == 200
    page = browser.get(f"{cluster.url}/jobs", timeout=10).text
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    resp = browser.post(f"{cluster.url}/logout", data={"csrf_token": csrf}, allow_redirects=False, timeout=10)
    assert resp.status_code == 302
    assert copied_cookie_works(cluster, cookies) == 401  # the copy is dead too
    assert api_status(cluster, token) == 200  # signing out does not revoke the token


def test_cli_revoke_ends_api_access_and_dashboard_sessions(cluster):
    token = cluster.token("bob")
    _, cookies = sign_in(cluster, token)
    _, other_cookies = sign_in(cluster, token)  # a second browser signed in with the same token
    assert api_status(cluster, token) == 200 and copied_cookie_works(cluster, cookies) == 200
    listed = cli(cluster, "token", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if token[:12] in ln)
    assert "bob" in line and "active" in line and token not in listed.stdout
    token_id = line.split()[0]
    revoked = cli(cluster, "token", "revoke", token_id)
    assert revoked.returncode == 0 and f"revoked token {token_id}" in revoked.stdout, revoked.stderr
    assert api_status(cluster, token) == 401
    assert copied_cookie_works(cluster, cookies) == 401
    assert copied_cookie_works(cluster, other_cookies) == 401
    assert "revoked" in next(ln for ln in cli(cluster, "token", "list").stdout.splitlines() if token[:12] in ln)
    assert cli(cluster, "token", "revoke", token_id).returncode == 1  # nothing left to revoke
    _, fresh = sign_in(cluster, cluster.token("bob"))  # a new token works again
    assert copied_cookie_works(cluster, fresh) == 200


def test_expired_token_and_its_sessions_stop(cluster):
    made = cli(cluster, "token", "create", "carol", "--expires-in", "30d")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    user = store.authenticate(cluster.store, token)
    with cluster.store.session() as s:
        expires = s.get(ApiToken, user.token_id).expires_at
    assert timedelta(days=29, hours=23) < expires - utcnow() <= timedelta(days=30)
    _, cookies = sign_in(cluster, token)
    assert api_status(cluster, token) == 200 and copied_cookie_works(cluster, cookies) == 200
    with cluster.store.session() as s:  # thirty days later
        s.execute(update(ApiToken).where(ApiToken.id == user.token_id).values(expires_at=utcnow()))
    assert api_status(cluster, token) == 401
    assert copied_cookie_works(cluster, cookies) == 401
    assert cli(cluster, "token", "create", "carol", "--expires-in", "soon").returncode == 2  # argparse


def test_api_revoke_by_an_admin(cluster):
    token, admin = cluster.token("dave"), cluster.token("root", admin=True)
    _, cookies = sign_in(cluster, token)
    token_id = store.authenticate(cluster.store, token).token_id
    resp = requests.delete(
        f"{cluster.url}{API}/tokens/{token_id}", headers={"Authorization": f"Bearer {admin}"}, timeout=10
    )
    assert resp.status_code == 200 and resp.json()["token"]["state"] == "revoked"
    assert api_status(cluster, token) == 401 and copied_cookie_works(cluster, cookies) == 401


def test_the_real_server_answers_413_to_a_chunked_body_over_the_limit(cluster):
    """gunicorn hands Flask a chunked body without a length (``wsgi.input_terminated``): the limit
    must still stop it, not let it through or read it all."""
    token = cluster.token("erin")
    limit = 16 * 2**20
    body = b'{"name": "' + b"x" * (limit + 1024) + b'"}'

    def chunks():
        for i in range(0, len(body), 2**20):
            yield body[i : i + 2**20]

    resp = requests.post(
        f"{cluster.url}{API}/jobs",
        data=chunks(),
        timeout=60,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert resp.request.headers.get("Transfer-Encoding") == "chunked"
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "payload_too_large", resp.text[:300]
    # The same for an upload (the multipart parser reads the capped stream).
    boundary = "b0undary"
    upload = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.npz"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + b"\0" * (limit + 1024)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    body = upload
    resp = requests.post(
        f"{cluster.url}{API}/datasets",
        data=chunks(),
        timeout=60,
        headers={"Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert resp.status_code == 413, resp.text[:300]

"""The API while its SQLite database is unreachable (in process, Flask's test client): every
endpoint answers 503 with Retry-After and the JSON error; one log line per state change.

The outage is real: the database's directory is moved away with the engine's
pool emptied, so the next connection fails in SQLite itself ("unable to open
database file"); moving it back ends the outage.  The same with a PostgreSQL
server stopped and started behind gunicorn is ``test_api_outage_pg.py``.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager

import store
from engine.spec import validate_job_spec
from test_api import API
from tests.helpers import tiny_train_spec

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@contextmanager
def database_gone(settings, app_store):
    """The database file's directory is away (and no pooled connection survives) inside the block."""
    folder = settings.home
    app_store.dispose()
    folder.rename(folder.with_name("moved-away"))
    try:
        yield
    finally:
        folder.with_name("moved-away").rename(folder)


def _assert_503(resp) -> None:
    assert resp.status_code == 503, resp.data[:500]
    assert resp.headers["Retry-After"].isdigit() and int(resp.headers["Retry-After"]) > 0
    if resp.request.path.endswith("/healthz"):  # its own documented body (schema Health)
        assert resp.get_json() == {"status": "unavailable", "database": "unavailable"}
    elif resp.mimetype == "application/json":
        err = resp.get_json()["error"]
        assert err["code"] == "database_unavailable" and err["details"] == []


def _signed_in(client, token: str) -> None:
    """A dashboard session for ``token`` (sign-in form, CSRF token from the page)."""
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert client.post("/login", data={"token": token, "csrf_token": csrf}).status_code == 302


def test_every_endpoint_is_503_while_the_database_is_away(client, settings, app_store, auth, caplog):
    headers = auth.headers("alice")
    job = store.create_job(app_store, auth.user("alice").id, validate_job_spec(tiny_train_spec()))
    _signed_in(client, auth.token("alice"))
    calls = [
        ("GET", "/healthz", {}),
        ("GET", f"{API}/healthz", {}),
        ("GET", "/metrics", {}),
        ("GET", f"{API}/jobs", headers),
        ("GET", f"{API}/jobs/{job['id']}", headers),
        ("GET", f"{API}/jobs/{job['id']}/metrics", headers),
        ("POST", f"{API}/jobs/{job['id']}/cancel", headers),
        ("GET", f"{API}/datasets", headers),
        ("GET", f"{API}/workers", headers),
        ("GET", "/jobs.json", {}),
        ("GET", "/workers.json", {}),
        ("GET", f"/jobs/{job['id']}/events", {}),
    ]
    caplog.set_level(logging.INFO)
    with database_gone(settings, app_store):
        for method, path, h in calls:
            _assert_503(client.open(path, method=method, headers=h))
        submit = client.post(f"{API}/jobs", json=tiny_train_spec(), headers=headers)
        _assert_503(submit)
        page = client.get("/jobs", headers=HTML)  # a browser navigating: a page, still 503
        _assert_503(page)
        assert page.mimetype == "text/html" and "unreachable" in page.text
    records = [r for r in caplog.records if r.name.startswith(("convlab", "service", "flask"))]
    down = [r for r in records if "database unreachable" in r.getMessage()]
    assert len(down) == 1  # one line per outage, not per request
    assert not [r for r in records if r.levelno >= logging.ERROR or r.exc_info]

    assert client.get(f"{API}/jobs", headers=headers).status_code == 200  # back: served again
    back = [r for r in caplog.records if "database reachable again" in r.getMessage()]
    assert len(back) == 1
    assert client.get("/healthz").status_code == 200
    assert store.get_job(app_store, job["id"], None)["status"] == "queued"  # the cancel did nothing


def test_a_live_stream_ends_with_an_unavailable_event(client, settings, app_store, auth):
    job = store.create_job(app_store, auth.user("alice").id, validate_job_spec(tiny_train_spec()))
    _signed_in(client, auth.token("alice"))
    resp = client.get(f"/jobs/{job['id']}/events", buffered=False)
    assert resp.status_code == 200
    chunks = iter(resp.response)
    seen = ""
    while "event: job" not in seen:
        chunk = next(chunks)
        seen += chunk.decode() if isinstance(chunk, bytes) else chunk
    with database_gone(settings, app_store):
        rest = "".join(c.decode() if isinstance(c, bytes) else c for c in chunks)  # the stream ends
    assert "event: unavailable" in rest and "database_unavailable" in rest
    assert re.search(r"retry: \d+", rest)
    resp.close()


def test_other_database_errors_stay_500(client, app_store, auth, monkeypatch):
    """A wrong query is not an outage: 500 and its traceback, no 503 (a retry would not help)."""
    from sqlalchemy.exc import ProgrammingError

    def broken(*_a, **_k):
        raise ProgrammingError("SELECT nonsense", {}, Exception("syntax error"))

    monkeypatch.setattr(store, "list_jobs", broken)
    resp = client.get(f"{API}/jobs", headers=auth.headers("alice"))
    assert resp.status_code == 500 and resp.get_json()["error"]["code"] == "internal_error"


def test_a_locked_sqlite_database_is_503_too(client, app_store, auth):
    """SQLite's own "database is locked": another process holds the write lock past busy_timeout."""
    from sqlalchemy import event

    headers = auth.headers("alice")
    holder = app_store.engine.raw_connection()  # a second connection takes the write lock...
    holder.execute("BEGIN EXCLUSIVE")
    app_store.dispose()

    def no_wait(dbapi_connection, _record):  # ...and the app's connections wait only briefly
        dbapi_connection.execute("PRAGMA busy_timeout=50")

    event.listen(app_store.engine, "connect", no_wait)
    try:
        _assert_503(client.post(f"{API}/jobs", json=tiny_train_spec(), headers=headers))
    finally:
        holder.rollback()
        holder.close()
        event.remove(app_store.engine, "connect", no_wait)
    assert store.list_jobs(app_store, None)[1] == 0  # nothing was stored

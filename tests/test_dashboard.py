"""The dashboard with Flask's test client: sign-in and sessions, CSRF, escaping, headers,
downloads, submission and its field errors, the live streams' contents.  (The browser tests
with real processes are ``test_dashboard_browser.py``.)"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC

import numpy as np
import pytest

import store
from service.dashboard.live import MetricsFeed
from service.dashboard.pages import spec_differences
from service.dashboard.present import job_summary
from service.dashboard.submit import templates
from tests.helpers import example, sse_events, tiny_train_spec

XSS = "<script>alert(1)</script>"


class Dashboard:
    """A test client signed in to the dashboard, with the session's CSRF token."""

    def __init__(self, client, token: str):
        """Sign in with ``token`` through the form."""
        self.client = client
        page = client.get("/login")
        response = client.post("/login", data={"token": token, "csrf_token": _form_csrf(page.text)})
        assert response.status_code == 302, response.text
        self.csrf = _meta_csrf(client.get("/jobs", headers=HTML).text)

    def get(self, path: str, **kw):
        """GET as a browser navigating (HTML accepted)."""
        return self.client.get(path, headers=HTML, **kw)

    def post_json(self, path: str, body, csrf: bool = True):
        """POST JSON as the pages' scripts do (CSRF token in a header)."""
        headers = {"X-CSRF-Token": self.csrf} if csrf else {}
        return self.client.post(path, json=body, headers=headers)


HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def _form_csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _meta_csrf(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


@pytest.fixture
def dash(client, auth) -> Dashboard:
    """Alice, signed in."""
    return Dashboard(client, auth.token("alice"))


def _job(app_store, auth, name="job", spec=None, user="alice"):
    """A queued job of ``user`` stored directly."""
    spec = dict(spec or tiny_train_spec(), name=name)
    from engine.spec import validate_job_spec

    return store.create_job(app_store, auth.user(user).id, validate_job_spec(spec))


def _finish(app_store, job_id, result=None, status="succeeded"):
    """Run the job to a terminal status as a worker would."""
    assert store.claim_job(app_store, job_id, "w:1")
    assert store.finish_job(app_store, job_id, status, result=result, worker="w:1")


# --- sign in, sessions --------------------------------------------------------------------------


def test_pages_redirect_to_sign_in_and_data_answers_401(client):
    response = client.get("/jobs?status=running", headers=HTML)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert client.get("/jobs.json").status_code == 401
    assert client.get("/jobs/abc/events", headers={"Accept": "text/event-stream"}).status_code == 401


def test_bad_token_shows_an_error_and_good_token_starts_a_session(client, auth):
    page = client.get("/login")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    csrf = _form_csrf(page.text)
    bad = client.post("/login", data={"token": "cl_nope", "csrf_token": csrf})
    assert "not valid" in bad.text
    token = auth.token("alice")
    good = client.post("/login", data={"token": token, "csrf_token": csrf, "next": "/workers"})
    assert good.status_code == 302 and good.headers["Location"] == "/workers"
    cookie = good.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert token not in cookie and token not in good.headers["Location"]
    assert "alice" in client.get("/jobs", headers=HTML).text
    assert client.get("/login", headers=HTML).headers["Location"] == "/jobs"  # already signed in


def test_sign_in_never_redirects_off_site(client, auth):
    csrf = _form_csrf(client.get("/login").text)
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = client.post("/login", data={"token": auth.token(), "csrf_token": csrf, "next": target})
        assert response.headers["Location"] == "/jobs", target
        client.post("/logout", data={"csrf_token": _meta_csrf(client.get("/jobs", headers=HTML).text)})
        csrf = _form_csrf(client.get("/login").text)


def test_sign_out_ends_the_session(dash):
    assert dash.client.post("/logout", data={"csrf_token": dash.csrf}).status_code == 302
    assert dash.get("/jobs").status_code == 302


# --- CSRF -----------------------------------------------------------------------------------------


def test_posts_without_the_csrf_token_are_rejected(dash, app_store, auth, publisher):
    job = _job(app_store, auth)
    assert dash.client.post(f"/jobs/{job['id']}/cancel").status_code == 400
    assert dash.client.post(f"/jobs/{job['id']}/cancel", data={"csrf_token": "forged"}).status_code == 400
    assert store.get_job(app_store, job["id"], None)["status"] == "queued"
    assert dash.post_json("/submit", tiny_train_spec(), csrf=False).status_code == 400
    assert dash.client.post("/logout").status_code == 400
    assert publisher.published == []
    # With the token the same cancel works.
    response = dash.client.post(f"/jobs/{job['id']}/cancel", data={"csrf_token": dash.csrf})
    assert response.status_code == 302
    assert store.get_job(app_store, job["id"], None)["status"] == "cancelled"


def test_sign_in_form_needs_its_csrf_token(client, auth):
    client.get("/login")
    response = client.post("/login", data={"token": auth.token()})
    assert response.status_code == 400
    assert client.get("/jobs", headers=HTML).status_code == 302


# --- escaping and headers -------------------------------------------------------------------------


def test_user_text_is_escaped_on_every_page(dash, app_store, auth):
    spec = tiny_train_spec()
    spec["tags"] = ['"><img src=x onerror=alert(1)>']
    job = _job(app_store, auth, name=XSS, spec=spec)
    other = _job(app_store, auth, name="plain")
    for path in (
        "/jobs",
        f"/jobs/{job['id']}",
        f"/compare?ids={job['id']},{other['id']}",
        f"/gradcheck?ids={job['id']}",
        f"/submit?from={job['id']}",
    ):
        response = dash.get(path)
        assert response.status_code == 200, path
        assert XSS not in response.text and "<img src=x" not in response.text, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dash.get(f"/jobs/{job['id']}").text


def test_pages_carry_security_headers_and_load_nothing_from_elsewhere(dash, app_store, auth):
    job = _job(app_store, auth)
    for path in ("/jobs", f"/jobs/{job['id']}", "/submit", "/workers", "/compare"):
        response = dash.get(path)
        assert response.status_code == 200, path
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"
        html = response.text
        assert not re.search(r'(src|href)="(https?:)?//', html), path  # no CDN
        assert "<script>" not in html and "style=" not in html, path  # CSP: no inline code
    with dash.client.get("/assets/vendor/uPlot.iife.min.js") as vendored:
        assert vendored.status_code == 200 and b"uPlot" in vendored.data


# --- what users see -------------------------------------------------------------------------------


def test_users_see_their_own_jobs_and_admins_all(client, app_store, auth):
    mine = _job(app_store, auth, name="alices-job")
    theirs = _job(app_store, auth, name="bobs-job", user="bob")
    alice = Dashboard(client, auth.token("alice"))
    names = [j["name"] for j in alice.client.get("/jobs.json").json["jobs"]]
    assert names == ["alices-job"]
    assert alice.get(f"/jobs/{theirs['id']}").status_code == 404
    assert alice.client.post(f"/jobs/{theirs['id']}/cancel", data={"csrf_token": alice.csrf}).status_code == 404
    alice.client.post("/logout", data={"csrf_token": alice.csrf})
    root = Dashboard(client, auth.token("root", admin=True))
    names = {j["name"] for j in root.client.get("/jobs.json").json["jobs"]}
    assert names == {"alices-job", "bobs-job"}
    assert root.get(f"/jobs/{mine['id']}").status_code == 200


def test_jobs_table_filters_pages_and_queue_positions(dash, app_store, auth):
    ids = [_job(app_store, auth, name=f"run-{i}")["id"] for i in range(55)]
    _finish(app_store, ids[0])
    page1 = dash.client.get("/jobs.json").json
    assert page1["total"] == 55 and len(page1["jobs"]) == 50 and page1["workers_alive"] == 0
    assert len(dash.client.get("/jobs.json?page=2").json["jobs"]) == 5
    assert [j["name"] for j in dash.client.get("/jobs.json?status=succeeded").json["jobs"]] == ["run-0"]
    assert dash.client.get("/jobs.json?search=run-4").json["total"] == 11
    queued = {j["id"]: j for j in dash.client.get("/jobs.json?status=queued&page=2").json["jobs"]}
    assert queued[ids[1]]["queue_position"] == 1
    assert "No worker is alive" in dash.get("/jobs").text


def test_job_summary_estimates_time_left():
    job = {
        "id": "x",
        "name": "n",
        "type": "train",
        "status": "running",
        "tags": [],
        "attempts": 1,
        "created_at": "2025-01-01T00:00:00Z",
        "started_at": "2025-01-01T00:00:00Z",
        "finished_at": None,
        "progress": {"epoch": 1, "step": 25, "total_steps": 100},
    }
    from datetime import datetime

    s = job_summary(job, now=datetime(2025, 1, 1, 0, 0, 10, tzinfo=UTC))
    assert s["fraction"] == 0.25 and s["duration_s"] == 10 and s["eta_s"] == pytest.approx(30)


# --- submit ---------------------------------------------------------------------------------------


def test_templates_come_from_examples():
    by_key = {t["key"]: t["spec"] for t in templates()}
    assert by_key["lenet-mnist"] == example("lenet-mnist")
    assert by_key["cnn-digits"] == example("cnn-digits")
    pair = by_key["ablation-pair"]
    assert [s["gradcheck"]["rotate_kernels"] for s in pair] == [True, False]
    assert pair[0]["model"] == pair[1]["model"]


def test_submit_stores_publishes_and_points_to_the_job(dash, app_store, publisher):
    response = dash.post_json("/submit", tiny_train_spec())
    assert response.status_code == 201
    job = response.json["jobs"][0]
    assert publisher.published == [job["id"]]
    assert response.json["location"] == f"/jobs/{job['id']}"
    assert store.get_job(app_store, job["id"], None)["status"] == "queued"


def test_ablation_pair_submits_both_and_shows_them_side_by_side(dash, publisher):
    pair = {t["key"]: t["spec"] for t in templates()}["ablation-pair"]
    response = dash.post_json("/submit", pair)
    assert response.status_code == 201
    ids = [j["id"] for j in response.json["jobs"]]
    assert publisher.published == ids
    assert response.json["location"] == "/gradcheck?ids=" + ",".join(ids)


def test_invalid_spec_answers_field_paths(dash, publisher):
    spec = example("cnn-digits")
    spec["model"]["layers"][0]["kernel"] = 99
    response = dash.post_json("/submit", spec)
    assert response.status_code == 422
    paths = [d["path"] for d in response.json["error"]["details"]]
    assert "model.layers[0].kernel" in paths
    batch = [example("gradcheck"), dict(example("gradcheck"), type="nonsense")]
    response = dash.post_json("/submit", batch)
    assert response.status_code == 422
    assert all(d["path"].startswith("[1]") for d in response.json["error"]["details"])
    assert dash.post_json("/submit", []).status_code == 422
    assert (
        dash.client.post(
            "/submit", data="{not json", content_type="application/json", headers={"X-CSRF-Token": dash.csrf}
        ).status_code
        == 400
    )
    assert publisher.published == []


def test_clone_starts_from_the_jobs_spec(dash, app_store, auth):
    job = _job(app_store, auth, name="to-clone")
    html = dash.get(f"/submit?from={job['id']}").text
    assert "data-initial=" in html and "to-clone" in html


# --- downloads ------------------------------------------------------------------------------------


def test_metrics_download_as_csv_and_json(dash, app_store, auth):
    job = _job(app_store, auth)
    store.record_metrics(
        app_store, job["id"], [("train_loss", 1, 2.5), ("train_loss", 2, float("nan")), ("val_accuracy", 2, 0.75)]
    )
    response = dash.get(f"/jobs/{job['id']}/metrics.csv")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows == [
        ["series", "step", "value"],
        ["train_loss", "1", "2.5"],
        ["train_loss", "2", ""],
        ["val_accuracy", "2", "0.75"],
    ]
    body = json.loads(dash.get(f"/jobs/{job['id']}/metrics.json").data)
    assert body == {"job_id": job["id"], "series": {"train_loss": [[1, 2.5], [2, None]], "val_accuracy": [[2, 0.75]]}}


def test_weights_and_first_layer_kernels(dash, app_store, auth):
    job = _job(app_store, auth)
    assert dash.get(f"/jobs/{job['id']}/weights.npz").status_code == 404
    w = np.arange(6 * 1 * 3 * 3, dtype=np.float32).reshape(6, 1, 3, 3)
    buf = io.BytesIO()
    np.savez(buf, **{"layers.0.W": w, "layers.0.b": np.zeros(6, np.float32)})
    store.save_artifact(app_store, job["id"], "weights.npz", buf.getvalue())
    assert dash.get(f"/jobs/{job['id']}/weights.npz").data == buf.getvalue()
    kernels = dash.client.get(f"/jobs/{job['id']}/kernels.json").json
    assert kernels["layer"] == 0 and kernels["shape"] == [6, 1, 3, 3]
    assert np.array_equal(np.array(kernels["kernels"]), w)


# --- live streams ---------------------------------------------------------------------------------


def test_event_stream_of_a_finished_job(dash, app_store, auth):
    job = _job(app_store, auth, name=XSS)
    store.record_metrics(app_store, job["id"], [("train_loss", s, 1.0 / s) for s in range(1, 11)])
    _finish(app_store, job["id"], result={"test_accuracy": 0.9})
    response = dash.client.get(f"/jobs/{job['id']}/events", headers={"Accept": "text/event-stream"})
    assert response.mimetype == "text/event-stream"
    events = sse_events(response.get_data(as_text=True))
    assert [e for e, _ in events] == ["job", "series", "end"]
    assert events[0][1]["status"] == "succeeded" and events[0][1]["result"] == {"test_accuracy": 0.9}
    assert len(events[1][1]["series"]["train_loss"]) == 10


def test_metrics_feed_sends_only_new_points_then_whole_downsampled_series(app_store, auth):
    job = _job(app_store, auth)
    store.record_metrics(app_store, job["id"], [("train_loss", s, 1.0) for s in range(1, 6)])
    feed = MetricsFeed(app_store, job["id"], max_points=100)
    first = sse_events("".join(feed.events()))
    assert first[0][0] == "series" and len(first[0][1]["series"]["train_loss"]) == 5
    assert list(feed.events()) == []
    store.record_metrics(app_store, job["id"], [("train_loss", s, 1.0) for s in range(6, 9)])
    new = sse_events("".join(feed.events()))
    assert new == [("points", {"series": {"train_loss": [[6, 1.0], [7, 1.0], [8, 1.0]]}})]
    # Past max_points the series comes downsampled, whole, with its spike.
    store.record_metrics(app_store, job["id"], [("train_loss", s, 99.0 if s == 500 else 1.0) for s in range(9, 1001)])
    final = sse_events("".join(feed.events(final=True)))
    assert final[0][0] == "series" and final[0][1]["downsampled"]
    points = final[0][1]["series"]["train_loss"]
    assert len(points) <= 100 and max(v for _, v in points) == 99.0


def test_spec_differences_lists_changed_fields():
    a, b = tiny_train_spec(), tiny_train_spec()
    b["train"]["optimizer"]["lr"] = 0.5
    b["model"]["layers"][0]["filters"] = 8
    rows = {r["path"]: r["cells"] for r in spec_differences([a, b])}
    assert rows == {"train.optimizer.lr": ["0.1", "0.5"], "model.layers[0].filters": ["6", "8"]}


def test_live_streams_past_the_cap_send_a_snapshot_and_close(dash, app, app_store, auth):
    """Every server thread a live stream holds is one fewer for requests: past the cap a
    stream answers with the current state and closes, and the browser retries later."""
    from service.dashboard import live

    job = _job(app_store, auth, name="busy")
    streams = app.extensions[live.STREAMS_KEY]  # the app's own slots, not a global
    taken = 0
    while streams.try_open():  # every slot is taken
        taken += 1
    assert taken == live.MAX_STREAMS
    body = dash.get(f"/jobs/{job['id']}/events").text  # returns: the stream did not stay open
    assert f"retry: {live.BUSY_RETRY_MS}" in body
    assert "event: job" in body and "event: end" not in body
    for _ in range(taken):
        streams.close()

"""The dashboard's delete button (behind a confirm, with the session's CSRF token) and the usage line."""

from __future__ import annotations

import store
from tests.helpers import tiny_train_spec
from tests.test_dashboard import Dashboard, _finish, _job


def test_delete_button_deletes_a_finished_job_but_not_a_running_one(client, auth, app_store):
    dash = Dashboard(client, auth.token("alice"))
    job = _job(app_store, auth)
    page = dash.client.get(f"/jobs/{job['id']}").text
    assert 'id="delete-form"' in page and "data-confirm=" in page
    assert dash.client.post(f"/jobs/{job['id']}/delete", data={"csrf_token": "forged"}).status_code == 400
    assert store.claim_job(app_store, job["id"], "w:1")
    running = dash.client.post(f"/jobs/{job['id']}/delete", data={"csrf_token": dash.csrf})
    assert running.status_code == 302 and running.headers["Location"].endswith(f"/jobs/{job['id']}")
    assert store.get_job(app_store, job["id"], None) is not None
    assert store.finish_job(app_store, job["id"], "succeeded", worker="w:1")
    done = dash.client.post(f"/jobs/{job['id']}/delete", data={"csrf_token": dash.csrf})
    assert done.status_code == 302 and done.headers["Location"].endswith("/jobs")
    assert store.get_job(app_store, job["id"], None) is None
    other = _job(app_store, auth, user="bob")
    _finish(app_store, other["id"])
    assert dash.client.post(f"/jobs/{other['id']}/delete", data={"csrf_token": dash.csrf}).status_code == 404
    assert store.get_job(app_store, other["id"], None) is not None


def test_jobs_page_shows_the_users_usage(client, auth, app_store):
    dash = Dashboard(client, auth.token("alice"))
    _job(app_store, auth, spec=tiny_train_spec())
    page = dash.client.get("/jobs").text
    assert 'id="usage"' in page and "1 queued (of 1000)" in page and 'id="storage-used"' in page

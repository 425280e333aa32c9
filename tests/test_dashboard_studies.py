"""The dashboard's study pages in process: "sweep this" fills the form from a job, the form's POST starts a
study (422 with paths otherwise, CSRF checked), the pages and their JSON, cancel."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers import tiny_train_spec
from tests.test_dashboard import HTML, Dashboard, _job


@pytest.fixture
def dash(client, auth) -> Dashboard:
    return Dashboard(client, auth.token("alice"))


def sweep_body(app_store, auth, dash) -> dict:
    spec = tiny_train_spec()
    spec["data"]["validation_fraction"] = 0.2
    job = _job(app_store, auth, spec=spec)
    page = dash.client.get(f"/studies/new?from={job['id']}", headers=HTML)
    assert page.status_code == 200
    text = re.search(r'<textarea id="study-json"[^>]*>(.*?)</textarea>', page.get_data(as_text=True), re.S).group(1)
    body = json.loads(text.replace("&#34;", '"').replace("&quot;", '"').replace("&amp;", "&"))
    assert body["base"]["model"] == job["spec"]["model"] and "name" not in body["base"]
    assert body["space"]["train.optimizer.lr"]["values"][1] == job["spec"]["train"]["optimizer"]["lr"]
    return body


def test_sweep_this_starts_a_study_and_its_page_shows_it(dash, app_store, auth):
    body = sweep_body(app_store, auth, dash)
    r = dash.post_json("/studies/new", body)
    assert r.status_code == 201, r.get_json()
    study_id = r.get_json()["id"]
    assert r.get_json()["location"] == f"/studies/{study_id}"
    page = dash.client.get(f"/studies/{study_id}", headers=HTML)
    assert page.status_code == 200 and 'id="trials-table"' in page.get_data(as_text=True)
    data = dash.client.get(f"/studies/{study_id}/study.json").get_json()
    assert data["spec"]["max_trials"] == 3 and data["status"] == "running"
    assert len(data["trials"]) == data["spec"]["max_concurrent"] == 1  # no live worker: one at a time
    assert study_id in dash.client.get("/studies", headers=HTML).get_data(as_text=True)

    cancel = dash.client.post(f"/studies/{study_id}/cancel", data={"csrf_token": dash.csrf}, headers=HTML)
    assert cancel.status_code == 302
    assert dash.client.get(f"/studies/{study_id}/study.json").get_json()["status"] == "cancelled"


def test_the_form_answers_422_with_paths_and_checks_csrf(dash, app_store, auth):
    body = sweep_body(app_store, auth, dash)
    body["space"]["model.layers[0].kernel"] = {"type": "choice", "values": [3, 40]}
    r = dash.post_json("/studies/new", body)
    assert r.status_code == 422
    assert any(d["path"] == "model.layers[0].kernel" and "40" in d["message"] for d in r.get_json()["error"]["details"])
    assert dash.post_json("/studies/new", sweep_body(app_store, auth, dash), csrf=False).status_code == 400

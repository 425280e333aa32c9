"""The studies API in process (no workers): validation with paths, nothing stored on 422, the first trials,
the top-up's exactly-once numbering, cancel, CSV/JSON, and the answers against the OpenAPI document."""

from __future__ import annotations

import csv
import io

import jsonschema
import pytest
from sqlalchemy import func, select

import store
from convlab.studies.topup import StudyKeeper
from store.models import Job, Study
from tests.helpers import tiny_train_spec


def study_body(**kw) -> dict:
    base = tiny_train_spec(epochs=2)
    base["data"]["validation_fraction"] = 0.2
    body = {
        "name": "s",
        "base": base,
        "algorithm": "grid",
        "space": {
            "train.optimizer.lr": {"type": "choice", "values": [0.05, 0.1, 0.2]},
            "model.layers[0].filters": {"type": "choice", "values": [2, 4]},
        },
        "max_concurrent": 2,
    }
    body.update(kw)
    return body


def counts(db) -> tuple[int, int]:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Study)), s.scalar(select(func.count()).select_from(Job))


def validate_against(client, headers, data: dict, schema: str) -> None:
    doc = client.get("/api/v1/openapi.json", headers=headers).get_json()
    resolver_schema = {"$ref": f"#/components/schemas/{schema}", "components": doc["components"]}
    jsonschema.validate(data, resolver_schema)


def test_create_queues_up_to_max_concurrent_and_answers_by_schema(client, headers, app_store, publisher):
    r = client.post("/api/v1/studies", json=study_body(), headers=headers)
    assert r.status_code == 201, r.get_json()
    study = r.get_json()
    assert study["status"] == "running" and study["best"] is None
    assert study["spec"]["max_trials"] == 6  # the whole grid
    assert [t["number"] for t in study["trials"]] == [0, 1]  # max_concurrent
    assert study["trials"][0]["params"] == {"train.optimizer.lr": 0.05, "model.layers[0].filters": 2}
    job = client.get(f"/api/v1/jobs/{study['trials'][1]['job_id']}", headers=headers).get_json()
    assert job["study_id"] == study["id"] and job["trial_number"] == 1
    assert job["spec"]["model"]["layers"][0]["filters"] == 4 and job["spec"]["train"]["optimizer"]["lr"] == 0.05
    validate_against(client, headers, study, "Study")
    listed = client.get("/api/v1/studies", headers=headers).get_json()
    assert listed["total"] == 1 and listed["studies"][0]["counts"] == {"queued": 2}
    validate_against(client, headers, listed, "StudyList")


@pytest.mark.parametrize(
    "change, path, value",
    [
        ({"space": {"model.layers[0].kernel": {"type": "choice", "values": [3, 13]}}}, "model.layers[0].kernel", "13"),
        ({"space": {"model.layers[0].filters": {"type": "choice", "values": [4, 10**6]}}}, "", "1000000"),
        (
            {
                "algorithm": "random",
                "max_trials": 3,
                "space": {"train.batch_size": {"type": "int_uniform", "low": 16, "high": 4096}},
            },
            "train.batch_size",
            "4096",
        ),
        (
            {"space": {"model.layers[9].filters": {"type": "choice", "values": [1]}}},
            "space[model.layers[9].filters]",
            "",
        ),
        (
            {"space": {"train.optimizer.lr": {"type": "uniform", "low": 0.1, "high": 0.2}}},
            "space[train.optimizer.lr].type",
            "",
        ),
        (
            {"algorithm": "random", "space": {"train.optimizer.lr": {"type": "uniform", "low": 0.3, "high": 0.2}}},
            "space[train.optimizer.lr].high",
            "",
        ),
        ({"algorithm": "random"}, "max_trials", ""),
        ({"pruner": {"type": "hyperband"}}, "pruner.type", ""),
        ({"objective": {"metric": "test_accuracy"}}, "objective.metric", ""),
    ],
)
def test_invalid_studies_are_422_with_paths_and_store_nothing(client, headers, app_store, change, path, value):
    r = client.post("/api/v1/studies", json=study_body(**change), headers=headers)
    assert r.status_code == 422, r.get_json()
    details = r.get_json()["error"]["details"]
    assert any(d["path"].startswith(path) and value in d["message"] for d in details), details
    assert counts(app_store) == (0, 0)


def test_invalid_base_is_reported_under_base(client, headers, app_store):
    body = study_body()
    body["base"]["model"]["layers"][0]["kernel"] = 40
    r = client.post("/api/v1/studies", json=body, headers=headers)
    assert r.status_code == 422
    assert any(d["path"] == "base.model.layers[0].kernel" for d in r.get_json()["error"]["details"])
    assert counts(app_store) == (0, 0)


def test_top_up_twice_creates_each_trial_once_and_cancel_stops_everything(client, headers, app_store, settings):
    study = client.post("/api/v1/studies", json=study_body(), headers=headers).get_json()
    keeper = StudyKeeper(app_store, settings)
    assert keeper.top_up(study["id"]) == []  # full: max_concurrent trials are queued
    first = study["trials"][0]["job_id"]
    assert store.claim_job(app_store, first, "w1") is not None
    assert store.finish_job(app_store, first, "succeeded", result={}, worker="w1")
    made = [keeper.top_up(study["id"]), keeper.top_up(study["id"])]
    assert len(made[0]) == 1 and made[1] == []
    trials = client.get(f"/api/v1/studies/{study['id']}/trials", headers=headers).get_json()["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2]
    running = trials[1]["job_id"]
    assert store.claim_job(app_store, running, "w2") is not None

    r = client.post(f"/api/v1/studies/{study['id']}/cancel", headers=headers)
    assert r.status_code == 200 and r.get_json()["study"]["status"] == "cancelled"
    jobs = {t["job_id"]: client.get(f"/api/v1/jobs/{t['job_id']}", headers=headers).get_json() for t in trials}
    assert jobs[trials[2]["job_id"]]["status"] == "cancelled"
    assert jobs[running]["status"] == "running" and jobs[running]["cancel_requested"]
    assert keeper.top_up(study["id"]) == [] and keeper.sweep() == 0
    assert client.post(f"/api/v1/studies/{study['id']}/cancel", headers=headers).status_code == 409


def test_trials_download_as_csv_and_json(client, headers):
    study = client.post("/api/v1/studies", json=study_body(), headers=headers).get_json()
    r = client.get(f"/api/v1/studies/{study['id']}/trials.csv", headers=headers)
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [row["number"] for row in rows] == ["0", "1"]
    assert rows[1]["model.layers[0].filters"] == "4" and rows[1]["status"] == "queued"
    r = client.get(f"/api/v1/studies/{study['id']}/trials.json", headers=headers)
    assert [t["job_id"] for t in r.get_json()["trials"]] == [row["job_id"] for row in rows]


def test_other_users_do_not_see_a_study(client, headers, auth):
    study = client.post("/api/v1/studies", json=study_body(), headers=headers).get_json()
    bob = auth.headers("bob")
    assert client.get(f"/api/v1/studies/{study['id']}", headers=bob).status_code == 404
    assert client.post(f"/api/v1/studies/{study['id']}/cancel", headers=bob).status_code == 404
    assert client.get("/api/v1/studies", headers=bob).get_json()["total"] == 0


def test_a_retried_create_with_its_idempotency_key_makes_one_study(client, headers, app_store):
    keyed = {**headers, "Idempotency-Key": "study-1"}
    first = client.post("/api/v1/studies", json=study_body(), headers=keyed)
    again = client.post("/api/v1/studies", json=study_body(), headers=keyed)
    assert first.status_code == again.status_code == 201
    assert first.get_json()["id"] == again.get_json()["id"]
    assert counts(app_store) == (1, 2)

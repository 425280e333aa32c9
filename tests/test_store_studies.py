"""store.studies on SQLite and PostgreSQL: racing top-ups create each trial once, the sweep's query,
a study ends inside a top-up, cancel against top-up."""

from __future__ import annotations

import store
from convlab.studies.space import validate_study
from convlab.studies.trials import plan, spec_maker
from engine.spec import validate_job_spec
from tests.helpers import make_user, race, tiny_train_spec

MAKE = spec_maker(validate_job_spec)


def new_study(db, **kw):
    base = tiny_train_spec()
    base["data"]["validation_fraction"] = 0.2
    body = {
        "base": base,
        "algorithm": "grid",
        "max_concurrent": 2,
        "space": {"train.optimizer.lr": {"type": "choice", "values": [0.01, 0.02, 0.03, 0.04, 0.05]}},
    }
    body.update(kw)
    spec = validate_study(body, validate_job_spec, 1)
    study, created = store.create_study(db, make_user(db, "alice").id, spec, plan, MAKE)
    return study, created


def finish_all(db, job_ids, status="succeeded"):
    for job_id in job_ids:
        assert store.claim_job(db, job_id, "w") is not None
        assert store.finish_job(db, job_id, status, result={}, worker="w")


def test_racing_top_ups_create_each_trial_once_and_the_study_ends(db):
    study, created = new_study(db)
    assert len(created) == 2 and store.studies_to_top_up(db) == []
    while True:
        finish_all(db, created)
        assert store.studies_to_top_up(db) == [study["id"]]
        made = race(4, lambda i: store.top_up(db, study["id"], plan, MAKE))
        created = [job for batch in made for job in batch]
        if not created:
            break
        assert len(created) <= 2
    got, trials = store.get_study(db, study["id"], None)
    assert [t["number"] for t in trials] == [0, 1, 2, 3, 4]
    assert sorted(t["params"]["train.optimizer.lr"] for t in trials) == [0.01, 0.02, 0.03, 0.04, 0.05]
    assert got["status"] == "succeeded" and got["finished_at"] is not None
    assert store.studies_to_top_up(db) == []


def test_a_study_whose_trials_all_failed_ends_failed(db):
    study, created = new_study(db, space={"train.optimizer.lr": {"type": "choice", "values": [0.01]}})
    finish_all(db, created, "failed")
    assert store.top_up(db, study["id"], plan, MAKE) == []
    assert store.get_study(db, study["id"], None)[0]["status"] == "failed"


def test_no_trial_is_created_after_a_cancel(db):
    study, created = new_study(db)
    finish_all(db, created[:1])
    assert store.cancel_study(db, study["id"], None) == "cancelled"
    assert store.top_up(db, study["id"], plan, MAKE) == []
    _, trials = store.get_study(db, study["id"], None)
    assert [t["status"] for t in trials] == ["succeeded", "cancelled"]
    assert store.cancel_study(db, study["id"], None) == "finished"


def test_a_diverged_trial_has_no_objective_and_is_never_best(db):
    study, created = new_study(db, space={"train.optimizer.lr": {"type": "choice", "values": [0.01, 9.0]}})
    results = [
        {"train_loss": 0.5, "val_loss": 0.6, "epochs_completed": 1},
        {"train_loss": None, "val_loss": None, "epochs_completed": 1},
    ]  # non-finite losses
    for job_id, value, result in zip(created, [0.5, 0.99], results, strict=True):
        assert store.claim_job(db, job_id, "w") is not None
        assert store.record_metrics(db, job_id, [("val_accuracy", 10, value)], worker="w")
        assert store.finish_job(db, job_id, "succeeded", result=result, worker="w")
    _, trials = store.get_study(db, study["id"], None)
    assert [t["value"] for t in trials] == [0.5, None]
    from convlab.studies.trials import best

    assert best(study["spec"], trials)["job_id"] == created[0]

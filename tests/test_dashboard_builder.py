"""The Submit page's builder on the server side: its drop-downs and the summary it shows as you type."""

from __future__ import annotations

import html
import json
import re

import pytest

import store
from engine.constants import ACTIVATIONS, LAYER_TYPES
from engine.spec import BUILTIN_DATASETS, validate_job_spec
from engine.summary import model_summary
from service.dashboard.submit import LAYER_DEFAULTS, OPTIMIZER_DEFAULTS
from test_dashboard import Dashboard
from tests.helpers import example, make_user, tiny_train_spec


@pytest.fixture
def dash(client, auth) -> Dashboard:
    """Alice, signed in."""
    return Dashboard(client, auth.token("alice"))


def _choices(page: str) -> dict:
    return json.loads(html.unescape(re.search(r'data-choices="([^"]*)"', page).group(1)))


def test_the_page_carries_the_vocabularies_and_the_users_datasets(dash, auth, app_store):
    alice = auth.user("alice")
    bob = make_user(app_store, "bob")
    mine = store.save_dataset(app_store, alice.id, "mine", b"npz", samples=10, shape=(1, 8, 8), classes=2)
    store.save_dataset(app_store, bob.id, "bobs", b"npz", samples=10, shape=(1, 8, 8), classes=2)
    choices = _choices(dash.get("/submit").text)
    assert choices["layer_type"] == list(LAYER_TYPES) and choices["activation"] == list(ACTIVATIONS)
    values = [d["value"] for d in choices["dataset"]]
    assert values == [*BUILTIN_DATASETS, mine["id"]]  # not bob's
    assert choices["layer_defaults"] == LAYER_DEFAULTS


@pytest.mark.parametrize("kind", LAYER_TYPES)
def test_a_new_layer_of_each_type_validates(kind):
    """What the builder inserts (before the output layer) must be valid as it is."""
    spec = tiny_train_spec()
    spec["model"]["layers"].insert(-1, dict(LAYER_DEFAULTS[kind]))
    assert validate_job_spec(spec)["model"]["layers"][-2]["type"] == kind


@pytest.mark.parametrize("kind", sorted(OPTIMIZER_DEFAULTS))
def test_a_new_optimizer_validates(kind):
    spec = tiny_train_spec()
    spec["train"]["optimizer"] = dict(OPTIMIZER_DEFAULTS[kind])
    assert validate_job_spec(spec)["train"]["optimizer"]["type"] == kind


def test_the_summary_endpoint_is_the_api_summary(dash):
    spec = example("cnn-digits")
    spec["model"]["layers"][2]["kernel"] = 9
    resp = dash.post_json("/submit/summary", spec)
    assert resp.status_code == 200
    assert resp.json == model_summary(spec)
    assert resp.json["layers"][2]["errors"][0]["path"] == "model.layers[2].kernel"
    assert dash.post_json("/submit/summary", spec, csrf=False).status_code == 400

"""The study page and submitting a study, in Debian's Chromium against gunicorn and two real workers:
the live trials table (sorted by a click), best so far, parallel coordinates, overlaid curves, compare
from selected trials, and "Sweep this" from a job page through the form to a running study.
With ``CONVLAB_UPDATE_DOCS=1`` the study page is saved as ``docs/study-page.png``."""

from __future__ import annotations

import os
import shutil

import pytest

from tests import test_dashboard_browser as shared
from tests.cluster import ROOT
from tests.helpers import tiny_train_spec
from tests.test_dashboard_browser import TIMEOUT_MS, expect, shot

# The browser tests' fixtures (a cluster of this module's own, Chromium, a signed-in context).
cluster, token, alice, browser = shared.cluster, shared.token, shared.alice, shared.browser
session_state, context, page = shared.session_state, shared.context, shared.page

pytestmark = pytest.mark.processes  # gunicorn, workers and Chromium


def base(epochs: int = 3) -> dict:
    spec = tiny_train_spec(epochs=epochs)
    spec["data"]["validation_fraction"] = 0.2
    return spec


def test_study_page_is_live_sortable_and_compares(page, cluster, alice, request):
    body = {
        "name": "lr-width",
        "base": base(),
        "algorithm": "grid",
        "max_concurrent": 2,
        "space": {
            "train.optimizer.lr": {"type": "choice", "values": [0.02, 0.1]},
            "model.layers[0].filters": {"type": "choice", "values": [2, 6]},
        },
    }
    study = alice.request("POST", "/studies", body)
    page.goto(f"{cluster.url}/studies/{study['id']}")
    expect(page.locator("#main")).to_have_attribute("data-status", "succeeded", timeout=TIMEOUT_MS * 2)
    rows = page.locator("#trials-table tbody tr")
    expect(rows).to_have_count(4)
    expect(page.locator("#best-so-far")).to_have_attribute("data-points", "4")
    expect(page.locator("#parallel")).to_have_attribute("data-lines", "4")
    expect(page.locator("#parallel polyline")).to_have_count(4)
    expect(page.locator("#study-curves")).not_to_have_attribute("data-points", "0")
    done = alice.request("GET", f"/studies/{study['id']}")
    expect(page.locator("#study-best")).to_contain_text(done["best"]["job_id"][:8])
    expect(page.locator("tr.best")).to_have_attribute("data-job-id", done["best"]["job_id"])

    page.click("#trials-table th[data-key=value]")
    page.click("#trials-table th[data-key=value]")  # descending: the best value first
    best_value = max(t["value"] for t in done["trials"])
    expect(rows.first.locator("td").nth(6)).to_have_text(str(float(f"{best_value:.4g}")).rstrip("0").rstrip("."))
    shot(page, request, "study")
    if os.environ.get("CONVLAB_UPDATE_DOCS") == "1":
        shutil.copy(shot(page, request, "study-docs"), ROOT / "docs" / "study-page.png")

    rows.nth(0).locator("input[type=checkbox]").check()
    rows.nth(1).locator("input[type=checkbox]").check()
    page.click("#compare-selected")
    page.wait_for_url("**/compare?ids=*")
    expect(page.locator("#compare-jobs li")).to_have_count(2)


def test_sweep_this_from_a_job_starts_a_study(page, cluster, alice, request):
    job = alice.request("POST", "/jobs", base(epochs=2))
    page.goto(f"{cluster.url}/jobs/{job['id']}")
    page.click("#sweep-link")
    page.wait_for_url("**/studies/new?from=*")
    expect(page.locator("#trial-count")).to_have_attribute("data-trials", "3")
    page.fill("#dim-path", "model.layers[0].filters")
    page.fill("#dim-values", "2, 4")
    page.click("#add-dim")
    expect(page.locator("#trial-count")).to_have_attribute("data-trials", "6")

    text = page.input_value("#study-json")
    page.fill("#study-json", text.replace('"model.layers[0].filters"', '"model.layers[7].filters"'))
    page.click("#start-study")
    expect(page.locator("#errors")).to_contain_text("space[model.layers[7].filters]")

    page.fill("#study-json", text)
    page.click("#start-study")
    page.wait_for_url("**/studies/*")
    expect(page.locator("#trials-table tbody tr").first).to_be_visible()
    expect(page.locator("#main")).to_have_attribute("data-status", "succeeded", timeout=TIMEOUT_MS * 3)
    expect(page.locator("#trials-table tbody tr")).to_have_count(6)
    shot(page, request, "swept")

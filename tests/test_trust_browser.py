"""The trust cards in a real browser (Chromium via Playwright) against gunicorn and two real workers:
a diverged job's triage card and marked curve, the layer-health small multiples, and the certificate
card of a reproduction started with the job page's button.

With ``CONVLAB_UPDATE_DOCS=1`` the cards are saved as docs/triage.png and docs/certificate.png.
"""

# ruff: noqa: F811  (the browser fixtures of test_dashboard_browser are imported, then taken as arguments)
from __future__ import annotations

import os
import re

import pytest

from tests.cluster import ROOT
from tests.test_dashboard_browser import (  # noqa: F401  (fixtures)
    alice,
    browser,
    cluster,
    context,
    expect,
    page,
    session_state,
    shot,
    token,
)
from tests.test_trust_api import DIVERGING, SMALL

pytestmark = pytest.mark.processes


def _save_doc(locator, name: str) -> None:
    if os.environ.get("CONVLAB_UPDATE_DOCS") == "1":
        locator.screenshot(path=str(ROOT / "docs" / name))


def test_triage_card_and_the_marked_curve(page, cluster, alice, request):
    job = cluster.wait_status(alice, alice.submit(DIVERGING)["id"])
    assert job["status"] == "failed"
    page.goto(f"{cluster.url}/jobs/{job['id']}")
    card = page.locator("#triage-card")
    expect(card).to_be_visible()
    expect(page.locator("#triage-hint")).to_contain_text("learning rate")
    expect(page.locator("#triage-facts")).to_contain_text(job["triage"]["phase"])
    assert page.locator("#triage-history tbody tr").count() == len(job["triage"]["history"])
    expect(page.locator("#triage-history tr.diverged")).to_have_count(1)
    page.wait_for_function(
        "() => (window.convlabCharts['chart-loss'].data.get('diverged') || {xs: []}).xs.length === 1"
    )
    marked = page.evaluate("() => window.convlabCharts['chart-loss'].data.get('diverged').xs[0]")
    assert marked == job["triage"]["step"]
    expect(page.locator("#health-card")).to_be_hidden()  # it died before its first epoch ended
    shot(page, request, "triage")
    _save_doc(card, "triage.png")


def test_layer_health_and_a_certificate_from_the_reproduce_button(page, cluster, alice, request):
    spec = {**SMALL, "train": {**SMALL["train"], "epochs": 3}}
    job = cluster.wait_status(alice, alice.submit(spec)["id"])
    assert job["status"] == "succeeded"
    page.goto(f"{cluster.url}/jobs/{job['id']}")
    expect(page.locator("#health-card")).to_be_visible()
    for metric in ("weight_norm", "grad_norm", "update_ratio", "dead_relu"):
        # One line per layer (conv 0 and dense 2; dead ReLUs: the conv only), one point per epoch.
        expect(page.locator(f"#chart-health-{metric}")).to_have_attribute(
            "data-points", "3" if metric == "dead_relu" else "6"
        )
    shot(page, request, "health")

    page.click("#reproduce-button")
    page.wait_for_url(re.compile(r".*/jobs/(?!" + job["id"] + r")[0-9a-f]{32}$"))
    copy_id = page.url.rsplit("/", 1)[-1]
    assert alice.request("GET", f"/jobs/{copy_id}")["reproduces"] == job["id"]
    card = page.locator("#certificate-card")
    expect(card).to_be_visible(timeout=120_000)
    expect(page.locator("#certificate-verdict")).to_have_text("bitwise")
    expect(page.locator("#certificate-env tr.differs th")).to_have_text(["worker"])
    expect(page.locator("#chart-certificate")).not_to_have_attribute("data-points", "0")
    expect(page.locator("#certificate-of a")).to_have_attribute("href", f"/jobs/{job['id']}")
    shot(page, request, "certificate")
    _save_doc(card, "certificate.png")

    # The compare view overlays a layer-health series of both runs (layers.0.grad_norm first).
    page.goto(f"{cluster.url}/compare?ids={job['id']},{copy_id}")
    expect(page.locator("#compare-health-card")).to_be_visible()
    expect(page.locator("#compare-health-series")).to_have_value("layers.0.grad_norm")
    expect(page.locator("#compare-health")).to_have_attribute("data-points", "6")
    page.select_option("#compare-health-series", "layers.0.dead_relu")
    expect(page.locator("#compare-health")).to_have_attribute("data-points", "6")
    page.select_option("#compare-health-series", "layers.2.update_ratio")
    expect(page.locator("#compare-health")).to_have_attribute("data-points", "6")

"""The try-it panel in a real browser (Debian's Chromium via Playwright) against the real service
(gunicorn) and real Celery workers: train a small digits model, draw a digit on the pad and get its
probabilities (the same as the API answers for the same PNG), drop an image file, and see the
gallery of test images it gets wrong.  With ``CONVLAB_UPDATE_DOCS=1`` the panel is saved as
``docs/try-it.png`` (the README's picture)."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from tests.browser import chromium, embedded_cluster, expect
from tests.cluster import ROOT
from tests.helpers import example
from tests.test_dashboard_browser import Watch, shot, sign_in

pytestmark = pytest.mark.processes


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The API under gunicorn and one worker on an embedded SQLite database and broker."""
    with embedded_cluster(tmp_path_factory.mktemp("predict-home"), workers=1) as c:
        yield c


@pytest.fixture(scope="module")
def token(cluster) -> str:
    return cluster.token("alice")


@pytest.fixture(scope="module")
def digits_job(cluster, token) -> dict:
    """A small CNN trained on digits by a real worker (a few epochs: good, not perfect)."""
    client = cluster.client(token)
    spec = example("cnn-digits")
    spec.update(name="try-me")
    spec["train"]["epochs"] = 6
    job = client.request("POST", "/jobs", spec)
    done = cluster.wait_status(client, job["id"], timeout=180)
    assert done["status"] == "succeeded", done
    return done


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless (never a downloaded browser)."""
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser, cluster, token):
    """A signed-in page; page errors and dialogs fail the test."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    watch = Watch()
    page = watch.attach(ctx.new_page())
    sign_in(page, cluster, token)
    yield page
    ctx.close()
    assert not watch.problems, watch.problems


def draw(page, points: list[tuple[float, float]]) -> None:
    """One stroke through ``points`` given as fractions of the pad's width and height."""
    page.locator("#tryit-pad").scroll_into_view_if_needed()
    box = page.locator("#tryit-pad").bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=6)
    page.mouse.up()


def shown_probabilities(page) -> list[float]:
    """The bars' values, in class order."""
    return page.locator("#tryit-probs progress").evaluate_all("bars => bars.map(b => Number(b.value))")


def test_draw_a_digit_and_see_what_the_network_makes_of_it(page, cluster, token, digits_job, request):
    job_id = digits_job["id"]
    sent = []
    page.on("request", lambda r: sent.append(r.post_data) if r.url.endswith(f"/jobs/{job_id}/predict") else None)
    page.goto(f"{cluster.url}/jobs/{job_id}")
    card = page.locator("#tryit-card")
    expect(card).to_be_visible()

    # A "1": one stroke down the middle.  The pad answers after the stroke (debounced), no click needed.
    draw(page, [(0.52, 0.15), (0.5, 0.5), (0.48, 0.85)])
    expect(page.locator("#tryit-probs tr")).to_have_count(10)
    page.wait_for_function("() => document.getElementById('tryit-card').dataset.predicted !== ''")
    expect(page.locator("#tryit-prediction")).to_have_text("1")
    expect(page.locator("#tryit-probs tr.top")).to_have_attribute("data-class", "1")

    # What the page shows is what the API answers for the very PNG the page sent.
    page.wait_for_function("() => document.getElementById('tryit-card').dataset.pending === undefined")
    body = json.loads(sent[-1])
    assert len(body["inputs"]) == 1 and body["inputs"][0].startswith("data:image/png;base64,")
    api = cluster.client(token).request("POST", f"/jobs/{job_id}/predict", body)
    np.testing.assert_allclose(shown_probabilities(page), np.clip(api["probabilities"][0], 0, 1), rtol=0, atol=1e-12)
    assert api["predictions"] == [1]
    shot(page, request, "drawn")

    # A "0" drawn over it after clearing: the prediction follows the drawing.
    page.click("#tryit-clear")
    expect(page.locator("#tryit-prediction")).to_have_text("–")
    ring = [(0.5 + 0.25 * np.sin(t), 0.5 - 0.36 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 40)]
    draw(page, ring)
    expect(page.locator("#tryit-prediction")).to_have_text("0")
    if os.environ.get("CONVLAB_UPDATE_DOCS") == "1":
        card.screenshot(path=str(ROOT / "docs" / "try-it.png"))
    shot(page, request, "zero")


def test_drop_an_image_file(page, cluster, digits_job, request):
    """A photo-like image, dark ink on white paper, is inverted to the dataset's light-on-black and fitted."""
    from engine.datasets import load_builtin

    ds = load_builtin("digits")
    sample = ds.X[int(np.flatnonzero(ds.y == 7)[0]), 0]
    paper = Image.fromarray((255 - 255 * sample).astype(np.uint8), "L").resize((96, 120), Image.NEAREST)
    buf = io.BytesIO()
    paper.convert("RGB").save(buf, "PNG")
    page.goto(f"{cluster.url}/jobs/{digits_job['id']}")
    expect(page.locator("#tryit-card")).to_be_visible()
    page.set_input_files(
        "#tryit-file", files=[{"name": "seven.png", "mimeType": "image/png", "buffer": buf.getvalue()}]
    )
    expect(page.locator("#tryit-prediction")).to_have_text("7")
    shot(page, request, "dropped")


def test_the_gallery_of_mistakes(page, cluster, digits_job, request):
    """Every test image it got wrong is counted (as the confusion matrix does); clicking one tries it."""
    confusion = np.array(digits_job["result"]["confusion_matrix"])
    wrong = int(confusion.sum() - np.trace(confusion))
    assert wrong > 0, "the model should not be perfect after a few epochs"
    page.goto(f"{cluster.url}/jobs/{digits_job['id']}")
    gallery = page.locator("#mistakes")
    expect(gallery).to_have_attribute("data-loaded", "true")
    tiles = gallery.locator("button.mistake")
    expect(tiles).to_have_count(min(48, wrong))
    expect(page.locator("#mistakes-caption")).to_contain_text(f"{wrong} of {int(confusion.sum())}")
    first = tiles.first
    label, predicted = first.get_attribute("data-label"), first.get_attribute("data-predicted")
    assert label != predicted
    expect(first).to_contain_text(f"{label} → {predicted}")
    first.click()
    expect(page.locator("#tryit-prediction")).to_have_text(predicted)  # the same mistake, made again
    shot(page, request, "gallery")


def test_draw_with_a_finger_on_a_phone(browser, cluster, token, digits_job, request):
    """On a phone-sized touch screen the pad takes a finger's stroke (real touch events through the
    DevTools protocol), answers, and the page does not scroll sideways."""
    ctx = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    watch = Watch()
    page = watch.attach(ctx.new_page())
    try:
        sign_in(page, cluster, token)
        page.goto(f"{cluster.url}/jobs/{digits_job['id']}")
        pad = page.locator("#tryit-pad")
        expect(pad).to_be_visible()
        pad.scroll_into_view_if_needed()
        box = pad.bounding_box()
        cdp = ctx.new_cdp_session(page)

        def touch(kind: str, fx: float, fy: float) -> None:
            points = (
                [] if kind == "touchEnd" else [{"x": box["x"] + fx * box["width"], "y": box["y"] + fy * box["height"]}]
            )
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

        touch("touchStart", 0.5, 0.15)
        for fy in np.linspace(0.15, 0.85, 15)[1:]:
            touch("touchMove", 0.5, float(fy))
        touch("touchEnd", 0.5, 0.85)
        expect(page.locator("#tryit-prediction")).to_have_text("1")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the job page scrolls sideways by {overflow}px"
        shot(page, request, "phone")
    finally:
        ctx.close()
    assert not watch.problems, watch.problems

"""The Submit page's model builder in a real browser (Debian's Chromium via Playwright) against the real
service and a real worker: build a model from a single output layer with drop-downs and add/move/remove
buttons, watch the summary follow, see an impossible kernel flagged on its layer, then submit it."""

from __future__ import annotations

import pytest

from tests.browser import chromium, embedded_cluster, expect
from tests.test_dashboard_browser import Watch, shot, sign_in

pytestmark = pytest.mark.processes


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The API under gunicorn and one worker on an embedded SQLite database and broker."""
    with embedded_cluster(tmp_path_factory.mktemp("builder-home"), workers=1) as c:
        yield c


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless (never a downloaded browser)."""
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser, cluster):
    """A signed-in page; page errors and dialogs fail the test."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    watch = Watch()
    page = watch.attach(ctx.new_page())
    sign_in(page, cluster, cluster.token("builder"))
    yield page
    ctx.close()
    assert not watch.problems, watch.problems


def row(page, i: int):
    return page.locator(f"#summary tr[data-layer='{i}']")


def cells(page, i: int) -> list[str]:
    return [c.strip() for c in row(page, i).locator("td").all_inner_texts()]


def test_build_a_model_watch_the_summary_and_submit(page, cluster, request):
    page.goto(cluster.url + "/submit?template=cnn-digits")
    expect(row(page, 5)).to_be_visible()  # the template's six layers are summarised
    # From nothing: only the output layer (dense 10, softmax) is left.
    for _ in range(5):
        page.click("button[aria-label='remove layer 0']")
    expect(page.locator("#summary tr[data-layer]")).to_have_count(1)
    expect(row(page, 0)).to_contain_text("650")  # 8·8 inputs → 10 units: 640 + 10
    # A conv layer goes in before the output layer; its kernel is a free number, its activation a choice.
    page.select_option(".new-layer-type", "conv")
    page.click("text=Add layer")
    expect(page.locator("#summary tr[data-layer]")).to_have_count(2)
    expect(row(page, 0)).to_contain_text("8×6×6")  # 8 filters of 3×3 on 1×8×8
    assert cells(page, 0)[3] == "80"
    page.select_option("[data-path='model.layers[0].activation']", "tanh")
    page.select_option(".new-layer-type", "maxpool")
    page.click("text=Add layer")
    expect(row(page, 1)).to_contain_text("8×3×3")
    expect(row(page, 2)).to_contain_text("730")  # 72 inputs → 10 units
    # An impossible kernel is flagged on its layer, in the summary and in the form.
    page.fill("[data-path='model.layers[0].kernel']", "9")
    expect(row(page, 0)).to_have_class("bad")
    expect(row(page, 0)).to_contain_text("9 is larger than the 8×8 input")
    expect(page.locator("fieldset.layer[data-field='model.layers[0]']")).to_have_class("layer bad")
    expect(page.locator("#summary-status")).to_contain_text("1 problem(s)")
    shot(page, request, "kernel-flagged")
    page.fill("[data-path='model.layers[0].kernel']", "3")
    expect(page.locator("#summary tr.bad")).to_have_count(0)
    expect(page.locator("#summary-status")).to_contain_text("Valid.")
    expect(page.locator("#summary-status")).not_to_contain_text("null")
    # Move the pool first and back; change its type with the drop-down.
    page.click("button[aria-label='move down layer 0']")
    expect(row(page, 0)).to_contain_text("maxpool")
    expect(row(page, 1)).to_contain_text("8×2×2")  # the conv now sees 1×4×4
    page.click("button[aria-label='move up layer 1']")
    expect(row(page, 0)).to_contain_text("conv")
    page.select_option("[data-path='model.layers[1].type']", "avgpool")
    expect(row(page, 1)).to_contain_text("avgpool")
    page.fill("[data-path='train.epochs']", "1")
    shot(page, request, "built")
    page.click("#submit-button")
    page.wait_for_url("**/jobs/*")
    job_id = page.url.rstrip("/").rsplit("/", 1)[1]
    job = cluster.client(cluster.token("builder")).request("GET", f"/jobs/{job_id}")
    layers = job["spec"]["model"]["layers"]
    assert [layer["type"] for layer in layers] == ["conv", "avgpool", "dense"]
    assert layers[0]["activation"] == "tanh" and layers[0]["kernel"] == [3, 3] and layers[0]["filters"] == 8
    assert job["spec"]["train"]["epochs"] == 1

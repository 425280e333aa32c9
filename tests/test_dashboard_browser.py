"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright, against
the real service (gunicorn) and two real Celery workers (``tests/cluster.py``).

Screenshots of every page go to ``test-artifacts/screenshots/<test>-<page>.png``;
with ``CONVLAB_UPDATE_DOCS=1`` the job page is also saved as ``docs/job-page.png``
(the README's picture).  Chromium missing: skipped, except under ``CI=true``.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

import store
from tests.browser import chromium, embedded_cluster, expect
from tests.cluster import ROOT
from tests.helpers import example, tiny_train_spec

pytestmark = pytest.mark.processes  # gunicorn, workers and Chromium

SHOTS = ROOT / "test-artifacts" / "screenshots"
XSS = "<script>alert(1)</script>"
TIMEOUT_MS = 60_000


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The API under gunicorn and two workers on an embedded SQLite database and broker."""
    with embedded_cluster(tmp_path_factory.mktemp("dashboard-home"), workers=2) as c:
        yield c


@pytest.fixture(scope="module")
def token(cluster) -> str:
    """Alice's API token (she signs in to the dashboard with it)."""
    return cluster.token("alice")


@pytest.fixture(scope="module")
def alice(cluster, token):
    """An API client of alice, to arrange jobs the pages then show."""
    return cluster.client(token)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless (never a downloaded browser)."""
    with chromium() as b:
        yield b


def sign_in(page, cluster, token: str) -> None:
    """Sign in through the form."""
    page.goto(cluster.url + "/login")
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    page.wait_for_url("**/jobs")


@pytest.fixture(scope="module")
def session_state(browser, cluster, token):
    """Cookies of a signed-in session, so each test starts signed in."""
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, cluster, token)
    state = context.storage_state()
    context.close()
    return state


class Watch:
    """What a test must not see: page errors, dialogs (an executed alert), failed requests."""

    def __init__(self):
        self.problems: list[str] = []

    def attach(self, page):
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))
        page.set_default_timeout(TIMEOUT_MS)
        return page


@pytest.fixture
def context(browser, session_state, request):
    """A signed-in browser context at laptop size; page errors and dialogs fail the test."""
    ctx = browser.new_context(storage_state=session_state, viewport={"width": 1280, "height": 860})
    watch = Watch()
    ctx.watch = watch
    ctx.new_watched_page = lambda: watch.attach(ctx.new_page())
    yield ctx
    ctx.close()
    assert not watch.problems, watch.problems


@pytest.fixture
def page(context):
    """One signed-in page."""
    return context.new_watched_page()


def shot(page, request, name: str) -> Path:
    """Save a full-page screenshot as a test artefact."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{request.node.name}-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def status_of(page) -> str:
    return page.locator("#job-status .status").inner_text()


def wait_running(cluster, client, job_id: str) -> None:
    cluster.wait_status(client, job_id, ("running",), timeout=60)


# --- tests ----------------------------------------------------------------------------------------


def test_sign_in(browser, cluster, token, request):
    """A bad token shows an error on the form; a good one lands on the jobs table."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    page = ctx.new_page()
    page.goto(cluster.url + "/jobs")
    page.wait_for_url(re.compile(r"/login\?next=%2Fjobs$|/login\?next=/jobs$"))
    page.fill("#token", "cl_not-a-token")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("not valid")
    shot(page, request, "login-error")
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    page.wait_for_url("**/jobs")
    expect(page.locator("h1")).to_have_text("Jobs")
    assert token not in page.url
    cookies = {c["name"]: c for c in ctx.cookies()}
    assert cookies["session"]["httpOnly"] and cookies["session"]["sameSite"] == "Lax"
    shot(page, request, "jobs")
    ctx.close()


def test_submit_watch_live_and_cancel(context, cluster, alice, request):
    """Submit from a template and watch it on its page: queued -> running -> succeeded, the
    chart growing, no reload.  Meanwhile cancel a running job from its own page."""
    # Two long jobs take both workers, so the submitted job has to wait in the queue.
    long_spec = example("cnn-digits")
    long_spec["train"]["epochs"] = 300
    longs = [alice.request("POST", "/jobs", dict(long_spec, name=f"long-{i}"))["id"] for i in range(2)]
    try:
        for job_id in longs:
            wait_running(cluster, alice, job_id)

        page = context.new_watched_page()
        page.goto(cluster.url + "/submit")
        page.click("button.template[data-template='cnn-digits']")
        page.fill("[data-path='name']", "watch-me")
        # ~2 s of training on a quiet machine, so the stream delivers several batches of points, in
        # 480 train_loss points: under half of the chart's smallest max_points (1000), so never downsampled.
        page.fill("[data-path='train.epochs']", "48")
        page.fill("[data-path='train.batch_size']", "128")
        spec_json = page.locator("#spec-json").input_value()
        assert '"epochs": 48' in spec_json and '"batch_size": 128' in spec_json  # the form edits the JSON
        shot(page, request, "submit")
        page.click("#submit-button")
        page.wait_for_url(re.compile(r"/jobs/[0-9a-f]{32}$"))
        job_id = page.url.rsplit("/", 1)[1]
        page.evaluate("window.__marker = 'same page'")
        page.evaluate("""() => {
            window.__samples = [];
            const record = () => {
              const s = document.querySelector('#job-status .status').textContent;
              const n = Number(document.getElementById('chart-loss').dataset.points);
              const last = window.__samples[window.__samples.length - 1];
              if (!last || last[0] !== s || last[1] !== n) window.__samples.push([s, n]);
            };
            record();
            setInterval(record, 50);
        }""")
        expect(page.locator("#job-status .status")).to_have_text("queued")
        expect(page.locator("#progress-text")).to_contain_text("#1 in line")
        shot(page, request, "job-queued")

        # Cancel the first long job from its page: it stops, and frees a worker for ours.
        other = context.new_watched_page()
        other.goto(f"{cluster.url}/jobs/{longs[0]}")
        expect(other.locator("#job-status .status")).to_have_text("running")
        other.click("#cancel-button")
        expect(other.locator(".flash")).to_contain_text("Cancel requested")
        expect(other.locator("#job-status .status")).to_have_text("cancelled", timeout=30_000)
        expect(other.locator("#cancel-form")).to_be_hidden()
        shot(other, request, "job-cancelled")
        other.close()
        page.bring_to_front()

        expect(page.locator("#job-status .status")).to_have_text("running", timeout=30_000)
        page.wait_for_function("() => Number(document.getElementById('chart-loss').dataset.points) > 20")
        shot(page, request, "job-running")
        expect(page.locator("#job-status .status")).to_have_text("succeeded", timeout=120_000)
        expect(page.locator("#confusion-card")).to_be_visible()
        expect(page.locator("#kernels canvas")).to_have_count(16)

        samples = page.evaluate("window.__samples")
        statuses = [s for i, (s, _) in enumerate(samples) if i == 0 or samples[i - 1][0] != s]
        assert statuses == ["queued", "running", "succeeded"], samples
        growing = [n for s, n in samples if s == "running" and n > 0]
        assert len(set(growing)) >= 3 and growing == sorted(growing), samples
        final = page.evaluate("Number(document.getElementById('chart-loss').dataset.points)")
        assert final == 48 * 10 + 48  # 10 steps per epoch of train_loss, one val_loss per epoch
        assert page.evaluate("window.__marker") == "same page"  # never reloaded
        assert page.locator("#result").inner_text().startswith("test accuracy")
        path = shot(page, request, "job")
        if os.environ.get("CONVLAB_UPDATE_DOCS") == "1":
            (ROOT / "docs").mkdir(exist_ok=True)
            page.screenshot(path=str(ROOT / "docs" / "job-page.png"))
        assert path.exists()
        assert store.get_job(cluster.store, longs[0], None)["status"] == "cancelled"
    finally:
        for job_id in longs:
            store.request_cancel(cluster.store, job_id, None)


def test_invalid_spec_shows_the_field_error(page, cluster, request):
    """An invalid spec typed into the JSON editor: the API's 422 lands next to the field it names."""
    page.goto(cluster.url + "/submit?template=cnn-digits")
    text = page.locator("#spec-json").input_value()
    page.fill("#spec-json", text.replace('"kernel": 3', '"kernel": 99', 1))
    expect(page.locator("[data-path='model.layers[0].kernel']")).to_have_value("99")
    page.click("#submit-button")
    error = page.locator("[data-field='model.layers[0].kernel'] .field-error")
    expect(error).to_contain_text("over the limit")
    expect(page.locator("[data-path='model.layers[0].kernel']")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#errors")).to_contain_text("model.layers[0].kernel")
    assert page.url.endswith("/submit?template=cnn-digits")
    shot(page, request, "submit-error")


def test_ablation_pair_side_by_side(page, cluster, request):
    """The ablation template submits two gradient checks; they show pass (green) and fail (red)
    side by side, with the kernel, its 180° rotation and the delta maps."""
    page.goto(cluster.url + "/submit?template=ablation-pair")
    page.click("#submit-button")
    page.wait_for_url(re.compile(r"/gradcheck\?ids="))
    reports = page.locator(".gc-report[data-passed]")
    expect(reports).to_have_count(2, timeout=90_000)
    assert [reports.nth(i).get_attribute("data-passed") for i in range(2)] == ["true", "false"]
    colour = "el => getComputedStyle(el).backgroundColor"
    assert page.locator(".verdict.pass").evaluate(colour) == "rgb(220, 252, 231)"  # green
    assert page.locator(".verdict.fail").evaluate(colour) == "rgb(254, 226, 226)"  # red
    expect(page.locator(".verdict.fail")).to_contain_text("rotate_kernels: false")
    expect(page.locator("table.gc tr.fail").first).to_be_visible()

    def matrix(key: str) -> list[list[str]]:
        table = page.locator(f"figure.matrix[data-matrix='{key}']").first
        return table.locator("tbody tr").evaluate_all("rows => rows.map(r => [...r.cells].map(c => c.title))")

    expect(page.locator("#trace-card")).to_be_visible()
    kernel, rotated = matrix("kernel"), matrix("rotated")
    assert rotated == [row[::-1] for row in kernel[::-1]]
    assert matrix("delta_out_unrotated") != matrix("delta_out")
    # The formulas are typeset (KaTeX, served by the app), not shown as raw TeX.
    expect(page.locator("#trace .katex-html").first).to_be_visible()
    assert page.locator("#trace .math").count() >= 9
    typeset = page.locator("#trace .katex-html").all_inner_texts()
    assert typeset and not any("^{" in t or "\\" in t for t in typeset)
    assert page.locator("#trace .katex-error").count() == 0
    shot(page, request, "gradcheck")


def test_user_text_is_shown_as_text(page, cluster, alice, request):
    """A job named <script>alert(1)</script> appears live in the table and on its page as text."""
    page.goto(cluster.url + "/jobs")
    spec = dict(tiny_train_spec(epochs=1), name=XSS, tags=["<b>bold</b>"])
    job = alice.request("POST", "/jobs", spec)
    row = page.locator(f"tr[data-id='{job['id']}']")
    expect(row).to_be_visible()  # arrived without a reload
    expect(row.locator("td.name a")).to_have_text(XSS)
    expect(row.locator(".tag")).to_have_text("<b>bold</b>")
    page.goto(f"{cluster.url}/jobs/{job['id']}")
    expect(page.locator("#job-name")).to_have_text(XSS)
    expect(page.locator("#job-status .status")).to_have_text("succeeded", timeout=60_000)
    assert page.locator("script:not([src])").count() == 0
    assert page.title().startswith(XSS)
    shot(page, request, "job")


def test_compare_overlays_curves_and_lists_differences(page, cluster, alice, request):
    """Two jobs selected in the table: their curves overlaid and their spec differences listed."""
    ids = []
    for lr in (0.1, 0.02):
        spec = tiny_train_spec(epochs=2)
        spec["name"], spec["train"]["optimizer"]["lr"] = f"cmp-lr-{lr}", lr
        ids.append(alice.request("POST", "/jobs", spec)["id"])
    for job_id in ids:
        assert cluster.wait_status(alice, job_id)["status"] == "succeeded"
    page.goto(cluster.url + "/jobs?search=cmp-lr")
    expect(page.locator("#jobs-body tr")).to_have_count(2)
    for job_id in ids:
        page.check(f"input[name=ids][value='{job_id}']")
    page.click("#compare-button")
    page.wait_for_url(re.compile(r"/compare\?ids="))
    page.wait_for_selector("main[data-loaded]")
    for chart in ("compare-train-loss", "compare-val-loss", "compare-val-accuracy"):
        assert page.evaluate(f"window.convlabCharts['{chart}'].series.length") == 2
        counts = page.evaluate(f"[...window.convlabCharts['{chart}'].data.values()].map(d => d.xs.length)")
        assert len(counts) == 2 and all(n > 0 for n in counts), (chart, counts)
    expect(page.locator("#spec-diff")).to_contain_text("train.optimizer.lr")
    expect(page.locator("#spec-diff")).to_contain_text("0.02")
    shot(page, request, "compare")


def test_workers_page_lists_live_workers(page, cluster, request):
    """Both workers, with their heartbeat age."""
    page.goto(cluster.url + "/workers")
    expect(page.locator("#workers-body tr")).to_have_count(2)
    names = sorted(w["name"] for w in store.live_workers(cluster.store, 3))
    shown = sorted(page.locator("#workers-body tr td:first-child").all_inner_texts())
    assert shown == names
    expect(page.locator("#workers-body")).to_contain_text("s ago")
    shot(page, request, "workers")


def test_long_series_renders_downsampled_with_its_spike(page, cluster, alice, request):
    """100,000 points: the chart gets a min/max-downsampled series at once, and the spike survives."""
    job = alice.request("POST", "/jobs", dict(tiny_train_spec(epochs=1), name="long-series"))
    done = cluster.wait_status(alice, job["id"])
    first = done["progress"]["total_steps"] + 1
    spike_step = first + 61_803
    points = [
        ("train_loss", s, 40.0 if s == spike_step else 1.0 + 0.5 * ((s * 7919) % 100) / 100)
        for s in range(first, first + 100_000)
    ]
    assert store.record_metrics(cluster.store, job["id"], points) == 100_000

    started = time.monotonic()
    page.goto(f"{cluster.url}/jobs/{job['id']}")
    page.wait_for_function("() => Number(document.getElementById('chart-loss').dataset.points) > 100")
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"the chart took {elapsed:.1f}s"
    train = page.evaluate("window.convlabCharts['chart-loss'].data.get('train_loss')")
    max_points = int(page.locator("main").get_attribute("data-max-points"))
    assert len(train["xs"]) <= max_points < 100_000
    assert max(train["ys"]) == 40.0 and train["xs"][train["ys"].index(40.0)] == spike_step

    response = page.request.get(f"{cluster.url}/jobs/{job['id']}/series.json?names=train_loss&max_points=2000")
    series = response.json()["series"]["train_loss"]
    assert len(series) <= 2000 and [spike_step, 40.0] in series
    shot(page, request, "job")


def test_phone_layout(browser, session_state, cluster, alice, request):
    """On a phone the sidebar becomes a top bar and no page scrolls sideways."""
    job = alice.request("POST", "/jobs", dict(tiny_train_spec(epochs=1), name="on-a-phone"))
    cluster.wait_status(alice, job["id"])
    ctx = browser.new_context(
        storage_state=session_state,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    watch = Watch()
    page = watch.attach(ctx.new_page())
    try:
        for name, path in (
            ("jobs", "/jobs"),
            ("job", f"/jobs/{job['id']}"),
            ("submit", "/submit"),
            ("workers", "/workers"),
        ):
            page.goto(cluster.url + path)
            if name == "job":  # its event stream stays open until the job's end event
                expect(page.locator("#job-status .status")).to_have_text("succeeded")
            else:
                page.wait_for_load_state("networkidle")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} scrolls sideways by {overflow}px"
            shot(page, request, name)
            nav = page.locator("nav.sidebar").bounding_box()
            assert nav["width"] <= 390 and nav["height"] < 200, nav  # a bar on top, not a column
    finally:
        ctx.close()
    assert not watch.problems, watch.problems

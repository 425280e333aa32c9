"""What the browser tests share: Debian's Chromium driven by Playwright, and a service to point it at.

Playwright or Chromium missing: skipped, except under ``CI=true`` (where it fails).
Never a downloaded browser: Playwright launches ``/usr/bin/chromium``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.cluster import Cluster
from tests.helpers import skip_or_fail

try:
    from playwright import sync_api as playwright_api
except ImportError:
    skip_or_fail("playwright is not installed (pip install -e '.[test]')")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying hosts this machine cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium() -> Iterator:
    """Debian's Chromium, headless, closed on exit."""
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def embedded_cluster(home: Path, workers: int) -> Iterator[Cluster]:
    """The API under gunicorn and ``workers`` Celery workers on an embedded SQLite database and broker."""
    cluster = Cluster(home, f"sqlite:///{home / 'convlab.db'}")
    try:
        cluster.start(workers=workers)
        yield cluster
    finally:
        cluster.stop()

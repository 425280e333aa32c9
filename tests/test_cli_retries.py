"""`convlab submit` when the answer is lost on the way back: the CLI retries with the same
Idempotency-Key and the real API (gunicorn) creates the job once.  A proxy in the test forwards
each request to the API and drops the first submit's answer after the API has committed it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.cluster import Cluster
from tests.helpers import tiny_train_spec

pytestmark = pytest.mark.processes  # the API under gunicorn, a proxy and the CLI as a child


class LossyProxy(ThreadingHTTPServer):
    """Forwards to ``backend``; the first ``drop`` POSTs reach it, but their answers never come back."""

    daemon_threads = True

    def __init__(self, backend: str, drop: int = 1):
        super().__init__(("127.0.0.1", 0), _Forward)
        self.backend, self.drop = backend, drop
        self.posts: list[tuple[str | None, int]] = []  # (Idempotency-Key, status the API answered)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        req = urllib.request.Request(self.server.backend + self.path, data=body, method=self.command)
        for name in ("Authorization", "Content-Type", "Idempotency-Key"):
            if name in self.headers:
                req.add_header(name, self.headers[name])
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, headers, payload = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            status, headers, payload = exc.code, exc.headers, exc.read()
        if self.command == "POST":
            self.server.posts.append((self.headers.get("Idempotency-Key"), status))
            if self.server.drop > 0:
                self.server.drop -= 1
                self.close_connection = True  # the API committed; the client hears nothing
                return
        self.send_response(status)
        for name in ("Content-Type", "Location", "Idempotent-Replayed", "Retry-After"):
            if headers.get(name):
                self.send_header(name, headers[name])
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _forward


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    home = tmp_path_factory.mktemp("retry-home")
    c = Cluster(home, f"sqlite:///{home / 'convlab.db'}")
    c.start_api()
    yield c
    c.stop()


def test_submit_retries_with_the_same_key_and_creates_one_job(api, tmp_path):
    proxy = LossyProxy(api.url, drop=1)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    token = api.token("retrier")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny_train_spec()))
    env = dict(api.env, CONVLAB_URL=proxy.url, CONVLAB_TOKEN=token)
    try:
        first = subprocess.run(
            [sys.executable, "-m", "convlab.cli", "submit", str(spec)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert first.returncode == 0, first.stderr
        second = subprocess.run(
            [sys.executable, "-m", "convlab.cli", "submit", str(spec)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 0, second.stderr
    finally:
        proxy.shutdown()
        proxy.server_close()
    (k1, s1), (k2, s2), (k3, s3) = proxy.posts
    assert k1 and k1 == k2 and k3 != k1  # one key per submit, reused on its retry
    assert (s1, s2, s3) == (201, 201, 201)
    ids = [json.loads(first.stdout)["id"], json.loads(second.stdout)["id"]]
    jobs = api.client(token).request("GET", "/jobs")
    assert jobs["total"] == 2 and sorted(j["id"] for j in jobs["jobs"]) == sorted(ids)

"""The HTTP client behind ``convlab submit / jobs / status / cancel`` (stdlib only)."""
from __future__ import annotations

import functools
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from .names import TERMINAL_STATUSES
from .progress import ProgressBar


class ApiError(Exception):
    """An error answer of the API, with its status and message (and field paths)."""

    def __init__(self, status: int, body: dict | str):
        self.status, self.body = status, body
        if isinstance(body, dict) and "error" in body:
            err = body["error"]
            lines = [f"{err.get('message', '')} (HTTP {status})"]
            lines += [f"  {d['path']}: {d['message']}" for d in err.get("details") or []]
            super().__init__("\n".join(lines))
        else:
            super().__init__(f"HTTP {status}: {body}")


class Client:
    """A thin client of the HTTP API (docs/reference/http-api.md; ``CONVLAB_URL``, ``CONVLAB_TOKEN``)."""

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30):
        self.url = (url or os.environ.get("CONVLAB_URL") or "http://127.0.0.1:8000").rstrip("/")
        self.token = token or os.environ.get("CONVLAB_TOKEN")
        self.timeout = timeout
        if not self.token:
            raise SystemExit("convlab: set CONVLAB_TOKEN (make one with `convlab token create NAME`)")

    def request(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}/api/v1{path}", data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read().decode(errors="replace")
            try:
                raise ApiError(exc.code, json.loads(raw)) from None
            except json.JSONDecodeError:
                raise ApiError(exc.code, raw) from None

    def wait(self, job_id: str, poll_s: float = 0.5, bar: ProgressBar | None = None) -> dict:
        """Poll until the job ends, drawing its progress."""
        while True:
            job = self.request("GET", f"/jobs/{job_id}")
            if bar is not None and job["progress"]["total_steps"]:
                p = job["progress"]
                bar.update(p["epoch"], p["step"], p["total_steps"])
            if job["status"] in TERMINAL_STATUSES:
                return job
            time.sleep(poll_s)


def _print(obj) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _command(name: str):
    """Turn API and connection errors of a client command into a message and an exit code.

    409 (a conflict, e.g. cancelling a finished job) exits 1; other errors 2.
    """
    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs) -> int:
            try:
                return fn(*args, **kwargs)
            except ApiError as exc:
                print(f"convlab {name}: {exc}", file=sys.stderr)
                return 1 if exc.status == 409 else 2
            except urllib.error.URLError as exc:
                print(f"convlab {name}: cannot reach the API ({exc.reason}); is CONVLAB_URL right?",
                      file=sys.stderr)
                return 2
        return run
    return wrap


@_command("submit")
def submit(path: str, wait: bool) -> int:
    from .local import read_json
    try:
        spec = read_json(path)
    except (OSError, ValueError) as exc:
        print(f"convlab submit: {exc}", file=sys.stderr)
        return 2
    client = Client()
    job = client.request("POST", "/jobs", spec)
    print(f"job {job['id']} {job['status']}", file=sys.stderr)
    if not wait:
        _print(job)
        return 0
    bar = ProgressBar()
    job = client.wait(job["id"], bar=bar)
    bar.close()
    _print(job)
    return 0 if job["status"] == "succeeded" else 1


@_command("jobs")
def jobs(status: str | None, limit: int) -> int:
    query = urllib.parse.urlencode({"limit": limit, **({"status": status} if status else {})})
    out = Client().request("GET", f"/jobs?{query}")
    print(f"{'id':32}  {'type':9}  {'status':9}  {'progress':>9}  name")
    for j in out["jobs"]:
        p = j["progress"]
        prog = f"{p['step']}/{p['total_steps']}" if p["total_steps"] else "-"
        print(f"{j['id']:32}  {j['type']:9}  {j['status']:9}  {prog:>9}  {j['name']}")
    print(f"({len(out['jobs'])} of {out['total']})", file=sys.stderr)
    return 0


@_command("status")
def status(job_id: str) -> int:
    _print(Client().request("GET", f"/jobs/{urllib.parse.quote(job_id)}"))
    return 0


@_command("cancel")
def cancel(job_id: str) -> int:
    _print(Client().request("POST", f"/jobs/{urllib.parse.quote(job_id)}/cancel"))
    return 0

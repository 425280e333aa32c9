"""The HTTP client behind ``convlab submit / jobs / status / cancel`` (stdlib only)."""
from __future__ import annotations

import functools
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from .names import TERMINAL_STATUSES
from .progress import ProgressBar

RETRY_STATUSES = (502, 503, 504)        # the API or its database is away for a moment
MAX_RETRY_DELAY_S = 10.0
# The request may have reached the server (and committed) even though no answer came back.
CONNECTION_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException)


class ApiError(Exception):
    """An error answer of the API, with its status and message (and field paths)."""

    def __init__(self, status: int, body: dict | str, retry_after: float | None = None):
        self.status, self.body, self.retry_after = status, body, retry_after
        if isinstance(body, dict) and "error" in body:
            err = body["error"]
            lines = [f"{err.get('message', '')} (HTTP {status})"]
            lines += [f"  {d['path']}: {d['message']}" for d in err.get("details") or []]
            super().__init__("\n".join(lines))
        else:
            super().__init__(f"HTTP {status}: {body}")


class Client:
    """A thin client of the HTTP API (docs/reference/http-api.md; ``CONVLAB_URL``, ``CONVLAB_TOKEN``).

    Requests that are safe to repeat (GETs, and POSTs with an ``Idempotency-Key``)
    are retried up to ``retries`` times when the connection fails or the API
    answers 502/503/504, after its ``Retry-After`` or an exponential back-off.
    """

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30, retries: int = 4):
        self.url = (url or os.environ.get("CONVLAB_URL") or "http://127.0.0.1:8000").rstrip("/")
        self.token = token or os.environ.get("CONVLAB_TOKEN")
        self.timeout = timeout
        self.retries = retries
        if not self.token:
            raise SystemExit("convlab: set CONVLAB_TOKEN (make one with `convlab token create NAME`)")

    def submit(self, spec: dict) -> dict:
        """``POST /jobs`` once per call: a fresh ``Idempotency-Key``, the same on every retry of it."""
        return self.request("POST", "/jobs", spec, idempotency_key=str(uuid.uuid4()))

    def request(self, method: str, path: str, body: dict | None = None, idempotency_key: str | None = None):
        """One API call; the decoded JSON answer, or :class:`ApiError`. Retried when safe (see the class)."""
        retryable = method in ("GET", "HEAD") or idempotency_key is not None
        for attempt in range(self.retries + 1):
            delay = min(0.5 * 2 ** attempt, MAX_RETRY_DELAY_S)
            try:
                return self._send(method, path, body, idempotency_key)
            except ApiError as exc:
                if not retryable or exc.status not in RETRY_STATUSES or attempt == self.retries:
                    raise
                if exc.retry_after is not None:
                    delay = min(exc.retry_after, MAX_RETRY_DELAY_S)
            except CONNECTION_ERRORS:
                if not retryable or attempt == self.retries:
                    raise
            time.sleep(delay)

    def _send(self, method: str, path: str, body: dict | None, idempotency_key: str | None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}/api/v1{path}", data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if idempotency_key is not None:
            req.add_header("Idempotency-Key", idempotency_key)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read().decode(errors="replace")
            retry_after = exc.headers.get("Retry-After", "")
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                body = raw
            raise ApiError(exc.code, body, float(retry_after) if retry_after.isdigit() else None) from None

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
            except CONNECTION_ERRORS as exc:
                print(f"convlab {name}: cannot reach the API ({getattr(exc, 'reason', exc)}); "
                      "is CONVLAB_URL right?", file=sys.stderr)
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
    job = client.submit(spec)
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


@_command("delete")
def delete(item_id: str, dataset: bool = False) -> int:
    """Delete a job (409, exit 1, while it runs: cancel it first) or an uploaded dataset."""
    kind = "datasets" if dataset else "jobs"
    Client().request("DELETE", f"/{kind}/{urllib.parse.quote(item_id)}")
    print(f"deleted {kind[:-1]} {item_id}", file=sys.stderr)
    return 0


@_command("user limits")
def user_limits(name: str, values: dict, clear: bool = False) -> int:
    """Show user ``name``'s limits, or set ``values`` (``"none"``: back to the default) first; admins only."""
    path = f"/users/{urllib.parse.quote(name, safe='')}/limits"
    client = Client()
    if clear:
        values = {**dict.fromkeys(("max_running", "max_queued", "max_compute", "max_storage")), **values}
    body = {k: (None if v == "none" else v) for k, v in values.items()}
    _print(client.request("PUT", path, body) if body else client.request("GET", path))
    return 0

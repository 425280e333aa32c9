"""The HTTP client behind ``convlab submit / jobs / status / cancel`` (stdlib only)."""
from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request

from .progress import ProgressBar

TERMINAL = ("succeeded", "failed", "cancelled")


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
    """A thin client of SPEC §3 (``CONVLAB_URL``, ``CONVLAB_TOKEN``)."""

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
            if job["status"] in TERMINAL:
                return job
            time.sleep(poll_s)


def _print(obj) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def submit(path: str, wait: bool) -> int:
    from .local import read_json
    try:
        spec = read_json(path)
    except (OSError, ValueError) as exc:
        print(f"convlab submit: {exc}", file=sys.stderr)
        return 2
    client = Client()
    try:
        job = client.request("POST", "/jobs", spec)
    except ApiError as exc:
        print(f"convlab submit: {exc}", file=sys.stderr)
        return 2
    print(f"job {job['id']} {job['status']}", file=sys.stderr)
    if not wait:
        _print(job)
        return 0
    bar = ProgressBar()
    job = client.wait(job["id"], bar=bar)
    bar.close()
    _print(job)
    return 0 if job["status"] == "succeeded" else 1


def jobs(status: str | None, limit: int) -> int:
    query = f"?limit={limit}" + (f"&status={status}" if status else "")
    try:
        out = Client().request("GET", f"/jobs{query}")
    except ApiError as exc:
        print(f"convlab jobs: {exc}", file=sys.stderr)
        return 2
    print(f"{'id':32}  {'type':9}  {'status':9}  {'progress':>9}  name")
    for j in out["jobs"]:
        p = j["progress"]
        prog = f"{p['step']}/{p['total_steps']}" if p["total_steps"] else "-"
        print(f"{j['id']:32}  {j['type']:9}  {j['status']:9}  {prog:>9}  {j['name']}")
    print(f"({len(out['jobs'])} of {out['total']})", file=sys.stderr)
    return 0


def status(job_id: str) -> int:
    try:
        _print(Client().request("GET", f"/jobs/{job_id}"))
    except ApiError as exc:
        print(f"convlab status: {exc}", file=sys.stderr)
        return 2
    return 0


def cancel(job_id: str) -> int:
    try:
        _print(Client().request("POST", f"/jobs/{job_id}/cancel"))
    except ApiError as exc:
        print(f"convlab cancel: {exc}", file=sys.stderr)
        return 1 if exc.status == 409 else 2
    return 0

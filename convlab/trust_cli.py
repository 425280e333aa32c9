"""``convlab reproduce ID``: re-run a job as a reproduction and show its certificate (docs/trust.md)."""

from __future__ import annotations

import sys
import time
import urllib.parse
import uuid

from .client import Client, _command, _print
from .progress import ProgressBar


@_command("reproduce")
def reproduce(job_id: str, wait: bool, tolerance: float | None, poll_s: float = 0.5) -> int:
    """Queue the reproduction; with ``wait``, follow it and print its certificate (exit 1 if ``diverged``)."""
    client = Client()
    body = {} if tolerance is None else {"tolerance": tolerance}
    job = client.request(
        "POST", f"/jobs/{urllib.parse.quote(job_id)}/reproduce", body, idempotency_key=str(uuid.uuid4())
    )
    if not wait:
        _print(job)
        return 0
    bar = ProgressBar()
    job = client.wait(job["id"], poll_s, bar)
    bar.close()
    # The certificate is made once the original is terminal too (it may still be running).
    while job.get("certificate") is None:
        time.sleep(poll_s)
        job = client.request("GET", f"/jobs/{job['id']}")
    _print(
        {"id": job["id"], "reproduces": job["reproduces"], "status": job["status"], "certificate": job["certificate"]}
    )
    cert = job["certificate"]
    print(f"verdict: {cert['verdict']}", file=sys.stderr)
    return 1 if cert["verdict"] == "diverged" else 0

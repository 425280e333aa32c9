"""``convlab study create / status / cancel``: studies over HTTP through :class:`convlab.client.Client`
(docs/reference/cli.md, docs/reference/studies.md)."""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
import uuid

from .client import Client, _command, _print

FINISHED = ("succeeded", "failed", "cancelled")


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def summary(study: dict) -> str:
    """A study as a few lines of text: status, counts, best, and each configuration's mean ± std."""
    counts = ", ".join(f"{n} {s}" for s, n in sorted(study["counts"].items())) or "no trials yet"
    spec = study["spec"]
    lines = [
        f"study {study['id']} {study['name']!r}: {study['status']} ({counts})",
        f"objective: {spec['objective']['direction']} {spec['objective']['metric']}",
    ]
    best = study.get("best")
    if best:
        lines.append(
            f"best: {_fmt(best['value'])} ± {_fmt(best['std'])} over {best['seeds']} seed(s), "
            f"job {best['job_id']}, {json.dumps(best['params'])}"
        )
    for c in study.get("configurations", []):
        value = f"{_fmt(c['mean'])} ± {_fmt(c['std'])}" if c["complete"] else "/".join(c["statuses"])
        lines.append(f"  #{c['index']:<3} {value:24} {json.dumps(c['params'])}")
    return "\n".join(lines)


@_command("study create")
def create(path: str, wait: bool, poll_s: float = 1.0) -> int:
    """Submit a study file; with ``wait``, follow it to its end and print its summary."""
    from .local import read_json

    try:
        body = read_json(path)
    except (OSError, ValueError) as exc:
        print(f"convlab study create: {exc}", file=sys.stderr)
        return 2
    client = Client()
    study = client.request("POST", "/studies", body, idempotency_key=str(uuid.uuid4()))
    print(f"study {study['id']} {study['status']}", file=sys.stderr)
    if not wait:
        _print(study)
        return 0
    last = None
    while study["status"] not in FINISHED:
        time.sleep(poll_s)
        study = client.request("GET", f"/studies/{study['id']}")
        line = ", ".join(f"{n} {s}" for s, n in sorted(study["counts"].items()))
        if line != last:
            print(f"  {line}", file=sys.stderr)
            last = line
    print(summary(study))
    return 0 if study["status"] == "succeeded" else 1


@_command("study status")
def status(study_id: str, as_json: bool) -> int:
    """Print one study: its summary, or the whole answer as JSON."""
    study = Client().request("GET", f"/studies/{urllib.parse.quote(study_id)}")
    if as_json:
        _print(study)
    else:
        print(summary(study))
    return 0


@_command("study cancel")
def cancel(study_id: str) -> int:
    """Cancel a study (its queued trials now, its running ones at their next batch)."""
    study = Client().request("POST", f"/studies/{urllib.parse.quote(study_id)}/cancel")["study"]
    print(summary(study))
    return 0

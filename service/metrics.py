"""``GET /metrics``: Prometheus text format 0.0.4, written by hand (no client library).

Every value is read from the database at scrape time, so any number of API
processes report the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from flask import Blueprint, Response

import store

from .extension import convlab

bp = Blueprint("metrics", __name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Upper bounds (seconds) of the job duration histogram: from a quick gradcheck to a long training run.
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600)


def _number(x: float) -> str:
    """A sample value or ``le`` bound as Prometheus writes it (``+Inf``, ``1.0``, ``42``)."""
    if isinstance(x, int):
        return str(x)
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return "NaN" if math.isnan(x) else repr(float(x))


def _label_value(value: str) -> str:
    """A label value escaped for the text format."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, dict, float]]) -> list[str]:
    """``# HELP``, ``# TYPE`` and one line per ``(suffix, labels, value)`` sample."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for suffix, labels, value in samples:
        label_text = ",".join(f'{k}="{_label_value(str(v))}"' for k, v in labels.items())
        lines.append(
            f"{name}{suffix}{{{label_text}}} {_number(value)}" if labels else f"{name}{suffix} {_number(value)}"
        )
    return lines


def _histogram(durations: list[float]) -> list[tuple[str, dict, float]]:
    """Cumulative buckets, ``_sum`` and ``_count`` of ``durations``."""
    samples = [("_bucket", {"le": _number(float(b))}, sum(1 for d in durations if d <= b)) for b in DURATION_BUCKETS]
    samples.append(("_bucket", {"le": "+Inf"}, len(durations)))
    samples += [("_sum", {}, float(sum(durations))), ("_count", {}, len(durations))]
    return samples


def render(db: store.Store, worker_alive_s: float) -> str:
    """The whole exposition for the database ``db``."""
    counts = store.count_by_status(db)
    lines = _family(
        "convlab_jobs", "gauge", "Jobs by status.", [("", {"status": s}, counts[s]) for s in store.STATUSES]
    )
    lines += _family("convlab_queue_depth", "gauge", "Jobs waiting for a worker.", [("", {}, counts["queued"])])
    lines += _family(
        "convlab_job_duration_seconds",
        "histogram",
        "Run time of finished jobs, first start to finish.",
        _histogram(store.job_durations(db)),
    )
    lines += _family(
        "convlab_workers_live",
        "gauge",
        "Workers heard from recently.",
        [("", {}, len(store.live_workers(db, worker_alive_s)))],
    )
    return "\n".join(lines) + "\n"


@bp.get("/metrics")
def prometheus():
    """Job counts by status, queue depth, job durations and live workers, for Prometheus (no auth)."""
    ext = convlab()
    return Response(
        render(ext.store, ext.settings.worker_alive_s), content_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"}
    )

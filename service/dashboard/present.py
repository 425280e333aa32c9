"""How jobs and numbers are shown: one summary per job (the table, the job page and the
live streams all use it) and the template filters that format times and numbers."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from flask import Flask


def parse_time(value: str | None) -> datetime | None:
    """An API timestamp (ISO 8601, ``Z``) as an aware datetime."""
    return None if not value else datetime.fromisoformat(value.replace("Z", "+00:00"))


def job_summary(
    job: dict[str, Any],
    queue_position: int | None = None,
    now: datetime | None = None,
    queue_eta_s: float | None = None,
) -> dict[str, Any]:
    """What a row of the jobs table shows, computed once on the server.

    ``fraction`` is the share of steps done (0..1, None when unknown);
    ``eta_s`` is the time left at the rate so far (running train jobs);
    ``duration_s`` is start to finish, or start to now while running; ``queue_eta_s`` when a queued
    job may start (service.queue_eta).
    """
    now = now or datetime.now(UTC)
    progress = job["progress"]
    started, finished = parse_time(job["started_at"]), parse_time(job["finished_at"])
    total, step = progress.get("total_steps") or 0, progress.get("step") or 0
    fraction = min(1.0, step / total) if total else None
    if job["status"] == "succeeded":
        fraction = 1.0
    duration = ((finished or now) - started).total_seconds() if started else None
    eta = None
    if job["status"] == "running" and duration and fraction and 0 < fraction < 1:
        eta = duration * (1 - fraction) / fraction
    return {
        "id": job["id"],
        "name": job["name"],
        "type": job["type"],
        "status": job["status"],
        "tags": job["tags"],
        "user": job.get("user"),
        "attempts": job["attempts"],
        "created_at": job["created_at"],
        "started_at": job["started_at"],
        "finished_at": job["finished_at"],
        "progress": progress,
        "fraction": fraction,
        "eta_s": eta,
        "duration_s": None if duration is None else max(0.0, duration),
        "queue_position": queue_position,
        "queue_eta_s": queue_eta_s,
        "cancel_requested": job.get("cancel_requested", False),
    }


def duration(seconds: float | None) -> str:
    """``95`` -> ``1m 35s``; ``None`` -> an en dash."""
    if seconds is None:
        return "–"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def number(value: Any, digits: int = 4) -> str:
    """A metric for people: ``0.9861``, ``3.2e-09``; integers as they are; None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, (bool, int)):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.{digits}g}"


def timestamp(value: str | None) -> str:
    """``2025-01-02T03:04:05.678Z`` -> ``2025-01-02 03:04:05`` (UTC)."""
    dt = parse_time(value)
    return "–" if dt is None else dt.strftime("%Y-%m-%d %H:%M:%S")


def register_filters(app: Flask) -> None:
    """Make the formatters available to every template."""
    app.add_template_filter(duration, "duration")
    app.add_template_filter(number, "number")
    app.add_template_filter(timestamp, "timestamp")

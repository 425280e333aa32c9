"""What the pages read while they are open: the jobs table and workers as JSON (polled),
and one Server-Sent Events stream per job (status, progress, new metric points)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Response, abort, current_app, g, request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

import store
from engine.spec import JOB_TYPES

from ..extension import convlab
from ..outage import RETRY_AFTER_S, database_state, is_unavailable
from ..params import unstorable
from ..queue_eta import queue_etas
from ..schemas import error_json
from . import bp
from .present import job_summary

PAGE_SIZE = 50
DEFAULT_POINTS, MAX_POINTS = 2000, 20_000
POLL_S = 0.5  # how often a stream looks at the job
KEEPALIVE_S = 5.0  # a comment this often finds closed connections and keeps proxies open
STREAM_LIFETIME_S = 600  # then the stream ends and EventSource reconnects (after RETRY_MS)
RETRY_MS = 2000
# A live stream holds one server thread (gunicorn gthread: 16 per process) for its lifetime.
# Past this many in one process a stream sends one snapshot and closes: the browser
# reconnects after BUSY_RETRY_MS, which turns it into polling until a slot frees up.
MAX_STREAMS = 10
BUSY_RETRY_MS = 3000
STREAMS_KEY = "convlab.live_streams"
RESET_EVERY_S = 2.0  # a downsampled series is re-sent whole at most this often


class LiveStreams:
    """The live streams one server process may hold open at once; owned by the app
    (``app.extensions[STREAMS_KEY]``), so each app, and each test's app, counts its own."""

    def __init__(self, limit: int = MAX_STREAMS):
        """At most ``limit`` streams at a time."""
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    def try_open(self) -> bool:
        """Take a slot if one is free (never waits)."""
        return self._slots.acquire(blocking=False)

    def close(self) -> None:
        """Give back a slot taken by :meth:`try_open`."""
        self._slots.release()


def init_live(app) -> None:
    """Give ``app`` its stream slots."""
    app.extensions[STREAMS_KEY] = LiveStreams(app.config.get("DASHBOARD_MAX_STREAMS", MAX_STREAMS))


def visible_job(job_id: str) -> dict[str, Any]:
    """The job if the signed-in user may see it (their own; admins: any), else 404 (also for an id
    from a query string that no database could hold: it names nothing)."""
    job = None if unstorable(job_id) else store.get_job(convlab().store, job_id, g.user)
    if job is None:
        abort(404)
    return job


def job_state(db: store.Store, job: dict[str, Any], settings) -> dict[str, Any]:
    """The job as the pages need it live: its summary, result and error (not its spec).
    ``settings``: the running limit per user (queue positions follow the dispatch order) and how
    recent a live worker's heartbeat is (the start estimate); passed in, streams run outside the app."""
    position = store.queue_position(db, job["id"], settings.max_running_jobs) if job["status"] == "queued" else None
    eta = queue_etas(db, settings.worker_alive_s, {job["id"]: position}).get(job["id"]) if position else None
    return {**job_summary(job, position, queue_eta_s=eta), "result": job["result"], "error": job["error"]}


def _storable(text: str) -> str:
    """``text`` without the characters no database can compare (NUL, lone surrogates): dropped, like
    every other unusable filter value here."""
    return "".join(c for c in text if not unstorable(c))


def job_filters(args) -> dict[str, Any]:
    """The jobs table's filters from a query string; unknown values are dropped, not errors."""
    status = args.get("status") or None
    job_type = args.get("type") or None
    try:
        page = max(1, min(int(args.get("page", 1)), 10**6))
    except ValueError:
        page = 1
    return {
        "status": status if status in store.STATUSES else None,
        "type": job_type if job_type in JOB_TYPES else None,
        "tag": _storable(args.get("tag") or "").strip()[:64] or None,
        "search": _storable(args.get("search") or "").strip()[:200] or None,
        "page": page,
    }


def jobs_page(filters: dict[str, Any]) -> dict[str, Any]:
    """One page of the jobs table, with the counts the page shows and whether any worker is alive."""
    ext = convlab()
    offset = (filters["page"] - 1) * PAGE_SIZE
    jobs, total = store.list_jobs(
        ext.store,
        g.user,
        status=filters["status"],
        type=filters["type"],
        tag=filters["tag"],
        search=filters["search"],
        limit=PAGE_SIZE,
        offset=offset,
    )
    positions = store.queue_positions(
        ext.store, [j["id"] for j in jobs if j["status"] == "queued"], ext.settings.max_running_jobs
    )
    etas = queue_etas(ext.store, ext.settings.worker_alive_s, positions)
    rows = [job_summary(j, positions.get(j["id"]), queue_eta_s=etas.get(j["id"])) for j in jobs]
    workers = store.live_workers(ext.store, ext.settings.worker_alive_s, viewer=g.user)
    return {
        "jobs": rows,
        "total": total,
        "offset": offset,
        "page_size": PAGE_SIZE,
        "filters": filters,
        "workers_alive": len(workers),
    }


@bp.get("/jobs.json")
def jobs_json():
    """The jobs table as JSON (the page polls it every two seconds)."""
    return jobs_page(job_filters(request.args)), 200, {"Cache-Control": "no-store"}


@bp.get("/workers.json")
def workers_json():
    """Live workers with their heartbeat age and current job."""
    ext = convlab()
    return (
        {"workers": store.live_workers(ext.store, ext.settings.worker_alive_s, viewer=g.user)},
        200,
        {"Cache-Control": "no-store"},
    )


def _max_points() -> int:
    """``max_points`` of the query (what the chart can show), bounded."""
    try:
        return max(2, min(int(request.args.get("max_points", DEFAULT_POINTS)), MAX_POINTS))
    except ValueError:
        return DEFAULT_POINTS


@bp.get("/jobs/<job_id>/series.json")
def series_json(job_id: str):
    """The job's metric series, min/max-downsampled to ``max_points`` (spikes stay visible)."""
    visible_job(job_id)
    names = [n for n in _storable(request.args.get("names", "")).split(",") if n] or None
    return {"series": store.get_metrics(convlab().store, job_id, names, _max_points())}


def _sse(event: str, data: Any) -> str:
    """One Server-Sent Event (JSON data on one line)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _changes(state: dict[str, Any]) -> tuple:
    """What, when it changes, is worth an event (a job state's status, progress, place in line)."""
    return (
        state["status"],
        state["progress"]["step"],
        state["progress"]["epoch"],
        state["cancel_requested"],
        state["queue_position"],
    )


class MetricsFeed:
    """Sends a job's series once, then only the points after the last step sent.

    A series longer than ``max_points`` comes downsampled; its buckets move as
    it grows, so it is re-sent whole (``series`` event, at most every
    ``RESET_EVERY_S``, and when the job ends) instead of appended to
    (``points`` event).
    """

    def __init__(self, db: store.Store, job_id: str, max_points: int):
        """Nothing sent yet."""
        self.db, self.job_id, self.max_points = db, job_id, max_points
        self.last_step: dict[str, int] = {}
        self.last_reset = 0.0

    def events(self, final: bool = False) -> Iterator[str]:
        """The events that bring the client up to date (``final``: the job ended, send all)."""
        series = store.get_metrics(self.db, self.job_id, None, self.max_points)
        # A downsampled series keeps one or two points per bucket (max_points // 2 buckets), so
        # from half of max_points on it may be one: re-send it whole rather than append to it.
        downsampled = any(len(points) >= self.max_points // 2 for points in series.values())
        first = not self.last_step and not self.last_reset
        if first or downsampled:
            now = time.monotonic()
            if first or final or now - self.last_reset >= RESET_EVERY_S:
                self.last_reset = now
                self.last_step = {name: pts[-1][0] for name, pts in series.items() if pts}
                yield _sse("series", {"series": series, "downsampled": downsampled})
            return
        new = {name: [p for p in pts if p[0] > self.last_step.get(name, -1)] for name, pts in series.items()}
        new = {name: pts for name, pts in new.items() if pts}
        if new:
            self.last_step.update({name: pts[-1][0] for name, pts in new.items()})
            yield _sse("points", {"series": new})


@bp.get("/jobs/<job_id>/events")
def job_events(job_id: str):
    """Server-Sent Events of one job until it ends: ``job`` (state), ``series``/``points``
    (metrics), then ``end``.  Lives at most ``STREAM_LIFETIME_S``; the browser reconnects.
    If the database goes away mid-stream the stream ends with an ``unavailable`` event."""
    return event_response(visible_job(job_id))


def event_response(job: dict[str, Any]) -> Response:
    """The event stream of ``job`` (already checked visible to ``g.user``): the dashboard's
    and the API's (``GET /api/v1/jobs/{id}/events``, token auth) one code path."""
    job_id = job["id"]
    ext = convlab()
    user, db, feed = g.user, ext.store, MetricsFeed(ext.store, job_id, _max_points())
    settings = ext.settings
    streams: LiveStreams = current_app.extensions[STREAMS_KEY]
    database = database_state()  # the generator runs outside the app context

    def snapshot() -> Iterator[str]:
        yield f"retry: {BUSY_RETRY_MS}\n\n"
        yield _sse("job", job_state(db, job, settings))
        yield from feed.events(final=True)
        if job["status"] in store.TERMINAL_STATUSES:
            yield _sse("end", {"status": job["status"]})

    def stream() -> Iterator[str]:
        try:
            if not streams.try_open():
                yield from snapshot()
                return
            try:
                yield from live()
            finally:
                streams.close()
        except (DBAPIError, PoolTimeoutError) as exc:
            # The 200 is sent already: end the stream with the 503's body; the browser reconnects later.
            if not is_unavailable(exc):
                raise
            database.failed(exc)
            yield f"retry: {RETRY_AFTER_S * 1000}\n\n"
            yield _sse("unavailable", error_json("database_unavailable", "the database is unreachable; retry later"))

    def live() -> Iterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        state = job_state(db, job, settings)
        yield _sse("job", state)
        yield from feed.events(final=job["status"] in store.TERMINAL_STATUSES)
        seen, started, last_sent = _changes(state), time.monotonic(), time.monotonic()
        current = job
        while current["status"] not in store.TERMINAL_STATUSES:
            if time.monotonic() - started > STREAM_LIFETIME_S:
                return
            time.sleep(POLL_S)
            current = store.get_job(db, job_id, user)
            if current is None:  # deleted, or no longer visible
                break
            state = job_state(db, current, settings)
            if _changes(state) != seen:
                seen, last_sent = _changes(state), time.monotonic()
                yield _sse("job", state)
                yield from feed.events(final=current["status"] in store.TERMINAL_STATUSES)
            elif time.monotonic() - last_sent > KEEPALIVE_S:
                last_sent = time.monotonic()
                yield ": keepalive\n\n"
        yield _sse("end", {"status": None if current is None else current["status"]})

    return Response(
        stream(), mimetype="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )

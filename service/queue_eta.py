"""When a queued job may start: its place in the dispatch order (``store.queue_order``), the live
workers, and how long recent jobs ran.  An estimate for people (the API's ``queue_eta_s``, the
dashboard's "starts in ~"), never used to decide anything."""

from __future__ import annotations

import store


def queue_etas(db: store.Store, worker_alive_s: float, positions: dict[str, int]) -> dict[str, float]:
    """Seconds until each queued job (by its 1-based place) may start (workers heard from within
    ``worker_alive_s`` count); {} when there is no basis
    (no live worker, or no job has finished yet).

    With W workers each freeing up once per median run D, place p starts when the
    ``ceil(p / W)``-th round of the busy workers ends: ``((p − 1) // W + ½) · D`` (the jobs running
    now are half done on average).  Jobs held back by a running limit rank last, so their
    estimate is a lower bound.
    """
    if not positions:
        return {}
    workers = len(store.live_workers(db, worker_alive_s))
    typical = store.typical_run_s(db)
    if not workers or typical is None:
        return {}
    return {job_id: round(((place - 1) // workers + 0.5) * typical, 1) for job_id, place in positions.items()}

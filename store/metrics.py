"""Metric series of jobs: idempotent batched writes, min/max-downsampled reads."""

from __future__ import annotations

import math
from collections.abc import Iterable

from sqlalchemy import BigInteger, case, cast, func, or_, select

from .db import Store, upsert_insert
from .jobs import touch_if_owner
from .models import MetricPoint


def record_metrics(
    store: Store, job_id: str, points: Iterable[tuple[str, int, float]], worker: str | None = None
) -> int | None:
    """Store ``(series, step, value)`` points; a point already stored is left as it is.

    Idempotent per ``(job, series, step)``, so a redelivered job that replays
    steps writes no duplicates. None and non-finite values are stored as NULL
    (JSON has no NaN), a non-finite one with its kind in ``nonfinite``
    (``"nan"``, ``"inf"``, ``"-inf"``: :func:`get_nonfinite`). Returns how many points were new.  With ``worker``, only
    while the job runs on that worker (checked in the same transaction, like
    checkpoints): None if it does not, and nothing is written.
    """
    rows: dict[tuple[str, int], tuple[float | None, str | None]] = {}
    for series, step, value in points:
        v = None if value is None else float(value)
        rows.setdefault((series, int(step)), (v, None) if v is None or math.isfinite(v) else (None, _kind(v)))
    if not rows:
        return 0
    params = [
        {"job_id": job_id, "series": series, "step": step, "value": value, "nonfinite": kind}
        for (series, step), (value, kind) in rows.items()
    ]
    # INSERT ... ON CONFLICT DO NOTHING RETURNING: executed with many parameter sets, SQLAlchemy's
    # "insertmanyvalues" sends one multi-row statement per page of rows, sized to stay under
    # the driver's bound-parameter limit (SQLite's included); RETURNING lists only new rows.
    stmt = (
        upsert_insert(store, MetricPoint)
        .on_conflict_do_nothing(index_elements=["job_id", "series", "step"])
        .returning(MetricPoint.step)
    )
    with store.session() as s:
        if worker is not None and not touch_if_owner(s, job_id, worker):
            return None
        # Core execution: the ORM would take this for a bulk insert of objects.
        return len(s.connection().execute(stmt, params).all())


def _kind(v: float) -> str:
    """The spelling of a non-finite float: ``"nan"``, ``"inf"`` or ``"-inf"``."""
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


#: At most this many non-finite points are answered per job (a diverged run stops at its first).
MAX_NONFINITE = 1000


def get_nonfinite(store: Store, job_id: str, names: Iterable[str] | None = None) -> dict[str, list[list]]:
    """The job's non-finite points, never downsampled: ``{name: [[step, "nan" | "inf" | "-inf"], ...]}``.

    Their values read as null in :func:`get_metrics`; this says which
    non-finite number each was (at most :data:`MAX_NONFINITE`, first steps first).
    """
    mp = MetricPoint
    where = [mp.job_id == job_id, mp.nonfinite.is_not(None)]
    if names is not None:
        where.append(mp.series.in_(list(names)))
    out: dict[str, list[list]] = {}
    with store.session() as s:
        rows = s.execute(
            select(mp.series, mp.step, mp.nonfinite).where(*where).order_by(mp.step, mp.series).limit(MAX_NONFINITE)
        )
        for name, step, kind in rows:
            out.setdefault(name, []).append([step, kind])
    return out


def _downsampled(base, max_points: int):
    """SELECT over ``base`` (series, step, value, n, lo, hi) keeping at most ``max_points`` per series.

    A series longer than ``max_points`` is cut into ``max_points // 2`` equal
    step ranges; each keeps its lowest and highest point, so a one-step spike
    survives where averaging or striding would drop it.
    """
    buckets = max_points // 2
    # BIGINT: (step - lo) * buckets can pass 2**31 on PostgreSQL's int4.
    bucket = case(
        (base.c.n > max_points, cast(base.c.step - base.c.lo, BigInteger) * buckets // (base.c.hi - base.c.lo + 1)),
        else_=base.c.step,
    )
    b = select(base.c.series, base.c.step, base.c.value, base.c.n, bucket.label("bucket")).subquery()
    # NULL (non-finite) values rank last both ways: a bucket keeps one only if it holds nothing else.
    nulls_last = case((b.c.value.is_(None), 1), else_=0)
    by_bucket = (b.c.series, b.c.bucket)
    ranked = select(
        b.c.series,
        b.c.step,
        b.c.value,
        b.c.n,
        func.row_number().over(partition_by=by_bucket, order_by=(nulls_last, b.c.value, b.c.step)).label("lo_rank"),
        func.row_number()
        .over(partition_by=by_bucket, order_by=(nulls_last, b.c.value.desc(), b.c.step))
        .label("hi_rank"),
    ).subquery()
    return select(ranked.c.series, ranked.c.step, ranked.c.value).where(
        or_(ranked.c.n <= max_points, ranked.c.lo_rank == 1, ranked.c.hi_rank == 1)
    )


def get_metrics(
    store: Store, job_id: str, names: Iterable[str] | None = None, max_points: int | None = None
) -> dict[str, list[list]]:
    """The job's series as ``{name: [[step, value], ...]}`` in step order (all series if ``names`` is None).

    With ``max_points`` (>= 2), a longer series is min/max-downsampled in SQL
    (see :func:`_downsampled`) to at most ``max_points`` points.
    """
    if max_points is not None and max_points < 2:
        raise ValueError("max_points must be at least 2 (each bucket keeps its min and max)")
    mp = MetricPoint
    where = [mp.job_id == job_id]
    if names is not None:
        where.append(mp.series.in_(list(names)))
    if max_points is None:
        query = select(mp.series, mp.step, mp.value).where(*where)
    else:
        per_series = {"partition_by": mp.series}
        base = (
            select(
                mp.series,
                mp.step,
                mp.value,
                func.count().over(**per_series).label("n"),
                func.min(mp.step).over(**per_series).label("lo"),
                func.max(mp.step).over(**per_series).label("hi"),
            )
            .where(*where)
            .subquery()
        )
        query = _downsampled(base, max_points)
    cols = query.selected_columns
    series: dict[str, list[list]] = {}
    with store.session() as s:
        for name, step, value in s.execute(query.order_by(cols.series, cols.step)):
            series.setdefault(name, []).append([step, value])
    return series

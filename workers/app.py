"""The Celery app that ``convlab worker`` runs (``celery -A workers.app worker``).

Each pool process gets its own database engine, monitor thread and BLAS
thread budget after the fork (``worker_process_init``); the parent process
limits BLAS to one thread before it forks, so no OpenBLAS thread pool is
ever copied into a child mid-flight.
"""
from __future__ import annotations

import logging
import os
import socket

from celery.signals import worker_init, worker_process_init, worker_process_shutdown
from threadpoolctl import threadpool_limits

import store
from convlab.config import Settings

from .celery_app import TASK_RUN_JOB, make_celery, publish_job
from .monitor import Monitor
from .runner import JobRunner

log = logging.getLogger(__name__)

settings = Settings.from_env()
app = make_celery(settings)
_process: dict = {}


@worker_init.connect
def _limit_parent_blas(**_):
    """The parent only supervises: one BLAS thread, set before the pool forks."""
    threadpool_limits(limits=1)


@worker_process_init.connect
def _start_process(**_):
    """In each pool process: BLAS threads, a store of its own, the monitor thread."""
    threads = settings.blas_threads or os.cpu_count() or 1
    threadpool_limits(limits=threads)
    st = store.Store.from_url(settings.database_url)
    name = f"{socket.gethostname()}:{os.getpid()}"
    monitor = Monitor(st, settings, name, republish=lambda job_id: publish_job(app, job_id))
    monitor.start()
    _process.update(store=st, monitor=monitor, runner=JobRunner(st, settings, name, monitor))
    log.info("worker process %s ready (BLAS threads: %d)", name, threads)


@worker_process_shutdown.connect
def _stop_process(**_):
    monitor = _process.pop("monitor", None)
    if monitor is not None:
        monitor.stop()
    st = _process.pop("store", None)
    if st is not None:
        st.dispose()


@app.task(name=TASK_RUN_JOB, ignore_result=True)
def run_job(job_id: str) -> None:
    """Run one job by id (the database holds everything else about it)."""
    if not isinstance(job_id, str) or len(job_id) > 64:
        log.error("dropping a malformed message: %r", job_id)
        return
    _process["runner"].run(job_id)

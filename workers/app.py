"""The Celery app that ``convlab worker`` runs (``celery -A workers.app worker``).

Each pool process gets its own database engine, monitor thread and BLAS
thread budget after the fork (``worker_process_init``); the parent process
limits BLAS to one thread before it forks, so no OpenBLAS thread pool is
ever copied into a child mid-flight.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
from pathlib import Path

from celery.signals import worker_init, worker_process_init, worker_process_shutdown, worker_shutting_down
from threadpoolctl import threadpool_limits

import store
from convlab.blas import apply_blas_threads
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
    threads = apply_blas_threads(settings.blas_threads)
    st = store.Store.from_url(settings.database_url)
    name = f"{socket.gethostname()}:{os.getpid()}"
    monitor = Monitor(st, settings, name, republish=lambda job_id: publish_job(app, job_id))
    monitor.start()
    _process.update(store=st, monitor=monitor, runner=JobRunner(st, settings, name, monitor))
    log.info("worker process %s ready (BLAS threads: %d)", name, threads)


def _on_sigterm(signum, _frame):
    """While a job runs: SIGTERM stops it at its next batch, hands it back (its attempt not
    counted), and the process exits after the task.  Billiard's own handler (exit at once)
    is in place the rest of the time; it replaces anything set at process start, hence
    this one is installed per task."""
    _process["monitor"].stop_for_shutdown()
    _process["exit_after_task"] = True


@worker_shutting_down.connect
def _stop_running_jobs(**_):
    """In the parent, when a shutdown begins (docker stop sends SIGTERM to it alone): pass it on
    to the pool processes, so that their jobs are handed back instead of run to the end."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:                      # field 4 of /proc/PID/stat: the parent's pid
            try:
                os.kill(int(stat.parent.name), signal.SIGTERM)
            except ProcessLookupError:
                pass


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
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        _process["runner"].run(job_id)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if _process.pop("exit_after_task", False):
            os.kill(os.getpid(), signal.SIGTERM)     # now handled by billiard: the process exits

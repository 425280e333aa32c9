"""The Celery app that ``convlab worker`` runs (``celery -A workers.app worker``).

As in Flask's Celery pattern the tasks are ``@shared_task`` (bound to whichever
app runs them, easy to test) and the app is built from the settings in one place.
A message is a wake-up: the task claims the next queued job from the database
(the queue of record) and runs it (``workers.celery_app``).
The worker's life is in ``workers.lifecycle``: the main process keeps BLAS to
one thread (it only supervises, and must not fork with a BLAS thread pool
running), makes the shutdown notice before it forks, and announces a shutdown
through it; each pool process owns a :class:`WorkerProcess`, built after the
fork and closed when the process exits.
"""

from __future__ import annotations

import logging
import os

from celery import shared_task
from celery.signals import worker_init, worker_process_init, worker_process_shutdown, worker_shutting_down
from threadpoolctl import threadpool_limits

from convlab.config import Settings

from .celery_app import TASK_RUN_JOB, TASK_WAKE, Wakeups, make_celery
from .lifecycle import ShutdownNotice, WorkerProcess, stop_polling_brokers_promptly

log = logging.getLogger(__name__)

settings = Settings.from_env()
app = make_celery(settings)


@worker_init.connect
def _main_process_starts(**_):
    """Main process, before the pool forks: one BLAS thread, the notice its pool will watch, and
    broker polls that end when a shutdown begins."""
    threadpool_limits(limits=1)
    app.shutdown_notice = ShutdownNotice()
    stop_polling_brokers_promptly()


@worker_shutting_down.connect
def _main_process_stops(**_):
    """Main process, warm or cold shutdown (SIGTERM, Ctrl-C): every pool process hears it (one notice)."""
    notice = getattr(app, "shutdown_notice", None)
    if notice is not None:
        notice.announce()


@worker_process_init.connect
def _pool_process_starts(**_):
    """Pool process, after the fork: its own WorkerProcess, told when the main process stops or dies."""
    process = WorkerProcess(settings, wakeups=Wakeups(app))
    app.worker_process = process
    app.shutdown_notice.watch(process.shutting_down)
    log.info("worker process %s ready (BLAS threads: %d)", process.name, process.blas_threads)


@worker_process_shutdown.connect
def _pool_process_exits(**_):
    """Pool process, on its way out: the monitor and the connections go with it."""
    process = getattr(app, "worker_process", None)
    if process is not None:
        process.close()
        if process.stopping:
            # The worker is shutting down and this process has nothing left to do: exit now.
            # Billiard would next report the exit through the result queue and sleep 1 s so that
            # it is read; the main process, joining its pool, learns it from waitpid anyway.
            os._exit(0)


@shared_task(bind=True, name=TASK_WAKE, ignore_result=True)
def wake(self) -> None:
    """Work is available: claim the next queued job (queue order) and run it, then the next ones while they
    come, for at most ``CONVLAB_CHAIN_S`` (``JobRunner.run_wakeup``); if none is queued, return."""
    self.app.worker_process.take_work()


@shared_task(bind=True, name=TASK_RUN_JOB, ignore_result=True)
def run_job(self, job_id: object = None) -> None:
    """A message of a version before wake-ups (it named a job): taken as a wake-up."""
    self.app.worker_process.take_work()

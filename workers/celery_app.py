"""The Celery application, configured as docs/architecture.md says, and the wake-ups it carries.

The database is the queue of record; a broker message is a wake-up ("work is
available") that carries nothing, and the task that receives it claims the
next queued job from the database.  So a lost message costs the time until
the next sweep (:class:`Wakeups`: the monitors keep about one message per
queued job on the broker), and a duplicated one a query that finds nothing.

JSON only (nothing from the broker is ever unpickled), late acks with
reject-on-worker-lost (a worker holds its wake-up while it runs the job),
prefetch 1 (a worker never hoards wake-ups another idle worker could use),
results ignored (the database holds them), and a hard time limit below
Redis's visibility timeout.  The embedded broker is kombu's filesystem
transport with atomic puts and gets (``workers.broker``).
"""

from __future__ import annotations

import logging
import math

from celery import Celery

from convlab.config import Settings

from .broker import TRANSPORT

log = logging.getLogger(__name__)

QUEUE = "convlab"
TASK_WAKE = "convlab.wake"
TASK_RUN_JOB = "convlab.run_job"  # the message of versions before wake-ups: handled as a wake-up


def make_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings``' broker (Redis, or the embedded filesystem transport)."""
    app = Celery("convlab", broker=settings.broker_url, set_as_current=False)
    transport_options: dict = {}
    # A task may chain further jobs after the one it woke up for, but starts none past chain_s
    # (workers.runner): with chain_s added, every run still gets at least the configured limit.
    task_limit = settings.task_time_limit_s + math.ceil(settings.chain_s)
    if settings.embedded_broker:
        folder = settings.broker_folder
        for sub in ("queue", "processed", "control", "staging", "claimed"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        transport_options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),  # exchange bindings (default: ./control)
            "staging_folder": str(folder / "staging"),  # written here, renamed into queue/ (atomic)
            "claimed_folder": str(folder / "claimed"),  # a consumer renames a message here to take it
            "store_processed": False,
            "polling_interval": 0.1,
        }
    else:
        # Redis re-delivers an unacknowledged message after this long: keep it well above the
        # longest a task may run, so a slow job is never run twice at once.
        transport_options = {"visibility_timeout": task_limit + 3600}
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_time_limit=task_limit,
        task_soft_time_limit=max(task_limit - 60, 1),
        broker_transport_options=transport_options,
        # The embedded broker's URL stays filesystem://, but through our hardened transport.
        broker_transport=TRANSPORT if settings.embedded_broker else None,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # ride out a broker restart
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_default_queue=QUEUE,
        timezone="UTC",
        # The filesystem transport has no broadcast; our own heartbeats (in the database)
        # replace Celery's remote control and gossip anyway.
        worker_enable_remote_control=not settings.embedded_broker,
    )
    return app


def publish_job(app: Celery, job_id: str) -> None:
    """A job was queued: publish a wake-up (the id is not sent; any worker claims the next job in order)."""
    publish_wakeups(app, 1)


def publish_wakeups(app: Celery, count: int) -> None:
    """Put ``count`` wake-ups on the queue, over one connection."""
    if count <= 0:
        return
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=0)  # broker down: fail now (the caller retries later)
        producer = conn.Producer()
        for _ in range(count):
            app.send_task(TASK_WAKE, producer=producer)


def pending_wakeups(app: Celery) -> int:
    """How many wake-ups wait on the broker (not yet delivered to a worker)."""
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=0)  # not kombu's default: retry forever
        # Not passive: Redis reports a queue with no message as missing; declaring is idempotent.
        return conn.default_channel.queue_declare(queue=QUEUE, durable=True, auto_delete=False).message_count


class Wakeups:
    """Keeps about one wake-up on the broker per queued job: the sweep that makes lost messages cheap.

    Called by every worker process's monitor each heartbeat: it publishes what
    is missing (queued jobs minus waiting messages) in chunks, re-counting both
    between chunks, so that processes sweeping at the same moment overshoot by
    a chunk at most.  An extra wake-up finds nothing and returns; a missing one
    is published by the next sweep.
    """

    CHUNK = 32
    MAX_PER_SWEEP = 8 * CHUNK

    def __init__(self, app: Celery):
        """Wake-ups through ``app``'s broker."""
        self.app = app

    def top_up(self, count_queued) -> int:
        """Publish the wake-ups missing for ``count_queued()`` jobs; returns how many were published."""
        sent = 0
        while sent < self.MAX_PER_SWEEP:
            missing = count_queued() - pending_wakeups(self.app)
            if missing <= 0:
                break
            n = min(missing, self.CHUNK, self.MAX_PER_SWEEP - sent)
            publish_wakeups(self.app, n)
            sent += n
        return sent

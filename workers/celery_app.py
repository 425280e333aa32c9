"""The Celery application, configured as docs/architecture.md says.

JSON only (nothing from the broker is ever unpickled), late acks with
reject-on-worker-lost (a message is only gone once its job ran), prefetch 1
(a long job never holds a second one hostage), results ignored (the database
holds them), and a hard time limit below Redis's visibility timeout (a running
job is never handed to a second worker by the broker while the first still
runs it).
"""
from __future__ import annotations

from celery import Celery

from convlab.config import Settings

TASK_RUN_JOB = "convlab.run_job"


def make_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings``' broker (Redis, or the embedded filesystem transport)."""
    app = Celery("convlab", broker=settings.broker_url, set_as_current=False)
    transport_options: dict = {}
    if settings.embedded_broker:
        folder = settings.broker_folder
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        transport_options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),     # exchange bindings (default: ./control)
            "store_processed": False,
            "polling_interval": 0.1,
        }
    else:
        # Redis re-delivers an unacknowledged message after this long: keep it well above the
        # longest a task may run, so a slow job is never run twice at once.
        transport_options = {"visibility_timeout": settings.task_time_limit_s + 3600}
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_time_limit=settings.task_time_limit_s,
        task_soft_time_limit=max(settings.task_time_limit_s - 60, 1),
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,       # ride out a broker restart
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_default_queue="convlab",
        timezone="UTC",
        # The filesystem transport has no broadcast; our own heartbeats (in the database)
        # replace Celery's remote control and gossip anyway.
        worker_enable_remote_control=not settings.embedded_broker,
    )
    return app


def publish_job(app: Celery, job_id: str) -> None:
    """Put a job on the queue: only its id travels (the database holds the rest)."""
    app.send_task(TASK_RUN_JOB, args=[job_id])

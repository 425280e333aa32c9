"""The data layer of convlab: models, sessions, and the functions that read and change them.

API and workers call only these functions; this package imports neither Flask nor Celery.
"""
from .artifacts import load_artifact, save_artifact
from .auth import UserInfo, authenticate, create_token, get_user
from .datasets import get_dataset, list_datasets, load_dataset_bytes, save_dataset
from .db import Store, make_engine, ping
from .idempotency import IdempotentRequest, find_idempotency_key, sweep_idempotency_keys
from .jobs import (
    claim_job, count_by_status, create_job, create_jobs, finish_job, get_job, heartbeat, job_durations, list_jobs,
    mark_enqueued, queue_position, queue_positions, reap_stale_jobs, release_job, request_cancel, requeue_job, take_unpublished,
    unmark_enqueued, update_progress,
)
from .metrics import get_metrics, record_metrics
from .models import STATUSES, TERMINAL_STATUSES
from .workers import live_workers, remove_stale_workers, remove_worker, worker_heartbeat

__all__ = [
    "IdempotentRequest", "create_jobs", "find_idempotency_key", "sweep_idempotency_keys",
    "STATUSES", "TERMINAL_STATUSES", "Store", "UserInfo", "authenticate", "claim_job", "count_by_status",
    "create_job", "create_token", "finish_job", "get_dataset", "get_job", "get_metrics", "get_user", "heartbeat",
    "job_durations", "list_datasets", "list_jobs", "live_workers", "load_artifact", "load_dataset_bytes",
    "make_engine", "ping", "mark_enqueued", "queue_position", "queue_positions", "reap_stale_jobs", "release_job", "record_metrics", "remove_stale_workers",
    "remove_worker", "request_cancel", "requeue_job", "save_artifact", "take_unpublished", "unmark_enqueued", "save_dataset", "update_progress",
    "worker_heartbeat",
]

"""The data layer of convlab: models, sessions, and the functions that read and change them.

API and workers call only these functions; this package imports neither Flask nor Celery.
"""
from convlab.names import STATUSES, TERMINAL_STATUSES

from .artifacts import load_artifact
from .auth import (
    UserInfo,
    authenticate,
    create_token,
    end_session,
    get_user,
    list_tokens,
    revoke_tokens,
    rotate_token,
    session_user,
    start_session,
)
from .datasets import get_dataset, list_datasets, load_dataset_bytes, save_dataset
from .db import Store, make_engine, ping
from .deletion import delete_dataset, delete_job
from .idempotency import IdempotentRequest, find_idempotency_key, sweep_idempotency_keys
from .jobs import (
    claim_job,
    claim_next_job,
    count_by_status,
    count_claimable,
    count_queued,
    create_job,
    create_jobs,
    finish_job,
    finished_by,
    get_job,
    heartbeat,
    job_durations,
    list_jobs,
    queue_order,
    queue_position,
    queue_positions,
    reap_stale_jobs,
    release_job,
    request_cancel,
    requeue_job,
    save_artifact,
    typical_run_s,
    update_progress,
)
from .metrics import get_metrics, get_nonfinite, record_metrics
from .quotas import (
    LIMIT_FIELDS,
    Quota,
    QuotaExceeded,
    get_limits_by_name,
    set_limits_by_name,
    usage,
    user_limits,
)
from .studies import (
    cancel_study,
    create_study,
    get_study,
    list_studies,
    studies_to_top_up,
    top_up,
    trial_of,
)
from .trust import certify, create_reproduction, set_environment
from .workers import live_workers, remove_stale_workers, remove_worker, worker_heartbeat

__all__ = [
    "certify", "create_reproduction", "set_environment", "get_nonfinite",
    "end_session", "list_tokens", "revoke_tokens", "rotate_token", "session_user", "start_session",
    "LIMIT_FIELDS", "Quota", "QuotaExceeded", "count_claimable", "get_limits_by_name", "set_limits_by_name", "usage",
    "user_limits", "delete_dataset", "delete_job", "typical_run_s",
    "IdempotentRequest", "create_jobs", "find_idempotency_key", "sweep_idempotency_keys",
    "STATUSES", "TERMINAL_STATUSES", "Store", "UserInfo", "authenticate", "claim_job", "claim_next_job",
    "count_by_status", "count_queued", "create_job", "create_token", "finish_job", "finished_by", "get_dataset",
    "get_job", "get_metrics", "get_user", "heartbeat", "job_durations", "list_datasets", "list_jobs", "live_workers",
    "load_artifact", "load_dataset_bytes", "make_engine", "ping", "queue_order", "queue_position", "queue_positions",
    "reap_stale_jobs", "record_metrics", "release_job", "remove_stale_workers", "remove_worker", "request_cancel",
    "requeue_job", "save_artifact", "save_dataset", "update_progress", "worker_heartbeat",
    "cancel_study", "create_study", "get_study", "list_studies", "studies_to_top_up", "top_up", "trial_of",
]

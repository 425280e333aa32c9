"""SQLAlchemy models: the tables of convlab (the database is the source of truth for jobs).

Migrations are generated from these models (``migrations/``); change both together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from convlab.names import STATUSES, STUDY_STATUSES

# Stable constraint names on every database, so migrations can refer to them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    """ISO 8601 with ``Z`` for an aware UTC datetime (None stays None): how the API shows times."""
    return None if dt is None else dt.isoformat().replace("+00:00", "Z")


class UTCDateTime(TypeDecorator):
    """A ``DateTime(timezone=True)`` that always stores and returns aware UTC datetimes.

    SQLite has no time zones: values are stored as naive UTC there and given
    their UTC tzinfo back on read; PostgreSQL ``timestamptz`` values are
    converted to UTC whatever the session time zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        """Refuse naive datetimes (their zone is a guess); convert to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base whose metadata names constraints by :data:`NAMING_CONVENTION`."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    """A person or script that holds API tokens and owns jobs and datasets."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When a worker last claimed one of this user's jobs: fair share's tie-break (least recent usage first).
    last_claim_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class UserLimit(Base):
    """An admin's per-user overrides of the deployment's limits (``Settings.max_*``); NULL: the default."""

    __tablename__ = "user_limits"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    max_running: Mapped[int | None] = mapped_column(Integer)
    max_queued: Mapped[int | None] = mapped_column(Integer)
    max_compute: Mapped[float | None] = mapped_column(Double)
    max_storage: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiToken(Base):
    """An API token; only its sha256 is stored, the token itself is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # What the token is for ("convlab up" marks the one it rotates); shown by `convlab token list`.
    label: Mapped[str | None] = mapped_column(String(100))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Kept (not deleted) so that `token list` can say a token was revoked rather than forget it.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebSession(Base):
    """A dashboard session on the server: the cookie holds only its random id (stored hashed), so
    signing out, or revoking or expiring the token it was signed in with, ends it for every copy
    of the cookie."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Job(Base):
    """A training or gradcheck job: its spec, state, progress and result (docs/reference/http-api.md)."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("status IN ({})".format(", ".join(f"'{s}'" for s in STATUSES)), name="status"),
        UniqueConstraint("study_id", "trial_number", name="uq_jobs_study_trial"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    # none_as_null: a missing result is SQL NULL, not the JSON text 'null'.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(Integer, default=3, server_default=text("3"))
    epoch: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    step: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    total_steps: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    worker: Mapped[str | None] = mapped_column(String(200))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A study's trial (docs/studies.md): its study, its number in it (unique: a top-up that runs
    # twice inserts each trial once), and the values the study's space gave it.
    study_id: Mapped[str | None] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    trial_number: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # The spec's ``priority`` (-10..10): orders one user's own queued jobs (fair share orders the users).
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # Trust (docs/trust.md): where the job ran, why it diverged, what it reproduces and how well.
    environment: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    triage: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    reproduces: Mapped[str | None] = mapped_column(String(32), index=True)
    # A claim hint: a reproduction prefers any live worker but the one that ran the original.
    not_worker: Mapped[str | None] = mapped_column(String(200))
    certify_tolerance: Mapped[float | None] = mapped_column(Double)
    certificate: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # Unused since broker messages became wake-ups (the queue is this table, see store.jobs);
    # kept so that no migration is needed, drop it with the next one.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Study(Base):
    """A hyperparameter study (docs/studies.md): a base spec and a search space; its trials are jobs."""

    __tablename__ = "studies"
    __table_args__ = (
        CheckConstraint("status IN ({})".format(", ".join(f"'{s}'" for s in STUDY_STATUSES)), name="status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True, default="running")
    # The validated study spec, max_concurrent resolved (the base spec as submitted, not normalised).
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Bumped by every top-up: the UPDATE that does it is also the lock that serialises top-ups
    # and orders them against a cancel (docs/studies.md).
    topups: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class JobTag(Base):
    """One tag of a job; a table of its own so tag filters are portable SQL (no JSON operators)."""

    __tablename__ = "job_tags"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class MetricPoint(Base):
    """One point of a named metric series; the key makes rewrites after a redelivery no-ops."""

    __tablename__ = "metric_points"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    series: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    # NULL stands for a non-finite value (a diverged loss): SQLite turns NaN into NULL
    # anyway and JSON has no NaN/Infinity, so both databases agree on NULL.
    value: Mapped[float | None] = mapped_column(Double)
    # Which non-finite value a NULL stands for: "nan", "inf" or "-inf" (NULL for a finite value).
    nonfinite: Mapped[str | None] = mapped_column(String(4))


class Artifact(Base):
    """A named blob of a job (weights, checkpoint: see :mod:`convlab.names`), kept where every host reaches it."""

    __tablename__ = "artifacts"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Dataset(Base):
    """An uploaded dataset (the ``.npz`` bytes) and what a spec check needs to know about it."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    samples: Mapped[int] = mapped_column(Integer)
    shape: Mapped[list[int]] = mapped_column(JSON)
    classes: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Worker(Base):
    """A live (or recently live) worker process, upserted by its heartbeats."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Not a foreign key: worker rows are telemetry and must never fail on a job id.
    job_id: Mapped[str | None] = mapped_column(String(32))


class IdempotencyKey(Base):
    """A creating request's ``Idempotency-Key``: written in the same transaction as what it created,
    so a retry of a request that committed (whatever happened to its answer) finds it."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # Which call made it ("jobs.submit", ...) and a hash of its request: a retry must match both.
    operation: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    # The ids of what the request created (a job, a dataset, a batch of jobs), to answer a retry with.
    resources: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)

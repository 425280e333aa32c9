"""Configuration from the environment (``CONVLAB_*``), shared by the API, the workers and the CLI.

One place for every default, so that ``convlab up`` (embedded) and
docker-compose (distributed) differ only in the URLs they set.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from engine.datasets import DatasetLimits
from engine.spec import Limits


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(f"CONVLAB_{name}")
    return value if value not in (None, "") else default


def _float(name: str, default: float) -> float:
    return float(_env(name, str(default)))


def _int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def blas_threads_from_env() -> int | None:
    """``CONVLAB_BLAS_THREADS`` (None when unset): read alike by the workers and ``convlab run``."""
    blas = _env("BLAS_THREADS")
    return int(blas) if blas else None


@dataclass
class Settings:
    """Everything configurable, with its default.  Build with :meth:`from_env`."""

    home: Path
    database_url: str
    broker_url: str
    secret_key: str
    limits: Limits = field(default_factory=Limits)
    dataset_limits: DatasetLimits = field(default_factory=DatasetLimits)
    max_request_bytes: int = 16 * 2**20          # request bodies above this get 413 (dataset uploads included)
    max_attempts: int = 3                        # runs of one job before a lost worker fails it
    heartbeat_s: float = 2.0                     # how often a running job's worker reports
    stale_after_s: float = 30.0                  # a running job silent this long goes back to the queue
    republish_after_s: float = 5.0               # a queued job not on the broker this long is published again
    republish_lost_after_s: float = 900.0        # a job published this long ago and never claimed: again
    worker_alive_s: float = 15.0                 # a worker silent this long is not listed as live
    task_time_limit_s: int = 6 * 3600            # hard limit of one job run, below the broker's visibility timeout
    metrics_flush_s: float = 0.5                 # metric points are written in batches at most this often
    blas_threads: int | None = None              # per worker process; default: all cores / local workers
    secure_cookies: bool = False                 # set behind HTTPS: the session cookie is then sent over HTTPS only
    idempotency_ttl_s: float = 24 * 3600         # an Idempotency-Key is remembered this long (Stripe: 24 h)

    def __post_init__(self) -> None:
        # A worker that is merely slow must never look lost: several heartbeats fit in the timeout.
        if self.stale_after_s < 3 * self.heartbeat_s:
            raise ValueError(f"CONVLAB_STALE_AFTER_S ({self.stale_after_s}) must be at least 3 × "
                             f"CONVLAB_HEARTBEAT_S ({self.heartbeat_s})")

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_folder(self) -> Path:
        return self.home / "broker"

    @classmethod
    def from_env(cls) -> "Settings":
        """Read ``CONVLAB_*``; the defaults put SQLite and the embedded broker under ``CONVLAB_HOME``."""
        home = Path(_env("HOME", "./var")).resolve()
        database_url = _env("DATABASE_URL", f"sqlite:///{home / 'convlab.db'}")
        broker_url = _env("BROKER_URL", "filesystem://")
        limit_overrides = {k[len("CONVLAB_LIMIT_"):].lower(): v for k, v in os.environ.items()
                           if k.startswith("CONVLAB_LIMIT_")}
        return cls(
            home=home,
            database_url=database_url,
            broker_url=broker_url,
            secret_key=_env("SECRET_KEY") or _home_secret(home),
            limits=Limits.from_mapping(limit_overrides),
            dataset_limits=DatasetLimits(max_bytes=_int("MAX_DATASET_BYTES", DatasetLimits.max_bytes)),
            max_request_bytes=_int("MAX_REQUEST_BYTES", 16 * 2**20),
            max_attempts=_int("MAX_ATTEMPTS", 3),
            heartbeat_s=_float("HEARTBEAT_S", 2.0),
            stale_after_s=_float("STALE_AFTER_S", 30.0),
            republish_after_s=_float("REPUBLISH_AFTER_S", 5.0),
            republish_lost_after_s=_float("REPUBLISH_LOST_AFTER_S", 900.0),
            worker_alive_s=_float("WORKER_ALIVE_S", 15.0),
            task_time_limit_s=_int("TASK_TIME_LIMIT_S", 6 * 3600),
            metrics_flush_s=_float("METRICS_FLUSH_S", 0.5),
            blas_threads=blas_threads_from_env(),
            secure_cookies=_env("SECURE_COOKIES", "0").lower() in ("1", "true", "yes"),
            idempotency_ttl_s=_float("IDEMPOTENCY_TTL_S", 24 * 3600),
        )


def _home_secret(home: Path) -> str:
    """The session-signing key of an embedded install: made once, kept under CONVLAB_HOME.

    Every process of one install (API, workers) reads the same file; a
    distributed deployment sets CONVLAB_SECRET_KEY instead.
    """
    path = home / "secret_key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(secrets.token_urlsafe(48))
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)          # atomic and exclusive: the first process to get here wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()

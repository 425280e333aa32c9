"""Configuration from the environment (``CONVLAB_*``), shared by the API, the workers and the CLI.

One place for every default, so that ``convlab up`` (embedded) and
docker-compose (distributed) differ only in the URLs they set.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

# Configuration sits at the bottom of the import graph: this module imports nothing of convlab's,
# so the store, the engine's callers, the workers and the service can all read it.  The job-spec
# limits themselves belong to the spec (``engine.spec.Limits``); here they are only raw overrides.
LIMIT_PREFIX = "CONVLAB_LIMIT_"


def _env(name: str) -> str | None:
    value = os.environ.get(f"CONVLAB_{name}")
    return value if value not in (None, "") else None


def _flag(text: str) -> bool:
    return text.lower() in ("1", "true", "yes")


@dataclass
class Settings:
    """Everything configurable, with its default.  Build with :meth:`from_env`.

    Each field ``x`` is read from ``CONVLAB_X`` (:meth:`from_env`); the default
    written here is the only one.  docs/reference/configuration.md lists them.
    """

    home: Path
    database_url: str
    broker_url: str
    secret_key: str
    limit_overrides: dict[str, str] = field(default_factory=dict)  # CONVLAB_LIMIT_<NAME>: engine.spec.Limits
    max_dataset_bytes: int | None = None  # an upload and its arrays decompressed; None: 4 × max_request_bytes
    upload_memory_bytes: int = 2**30  # what uploads being checked hold at once, per API process (more: 503)
    max_request_bytes: int = 16 * 2**20  # request bodies above this get 413 (dataset uploads included)
    max_attempts: int = 3  # runs of one job before a lost worker fails it
    heartbeat_s: float = 2.0  # how often a running job's worker reports
    stale_after_s: float = 30.0  # a running job silent this long goes back to the queue
    worker_alive_s: float = 15.0  # a worker silent this long is not listed as live
    task_time_limit_s: int = 6 * 3600  # hard limit of one job run, below the broker's visibility timeout
    metrics_flush_s: float = 0.5  # metric points are written in batches at most this often
    # A running job's checkpoint is saved at an epoch's end at most this often (0: every epoch).
    checkpoint_s: float = 5.0
    chain_s: float = 60.0  # a task that ended a job within this many seconds claims the next queued job itself
    blas_threads: int | None = None  # per worker process; default: all cores / local workers
    max_predict_batch: int = 256  # inputs of one prediction request (more: 413)
    max_predict_pixels: int = 2**20  # PNG pixels of one prediction request, checked before inflating
    predict_cache_models: int = 8  # trained networks kept loaded per API process
    predict_cache_bytes: int = 256 * 2**20  # and their parameters' bytes at most
    secure_cookies: bool = False  # set behind HTTPS: the session cookie is then sent over HTTPS only
    idempotency_ttl_s: float = 24 * 3600  # an Idempotency-Key is remembered this long (Stripe: 24 h)
    # Per-user limits (docs/reference/configuration.md, "Per-user limits"); an admin overrides them per
    # user (PUT /api/v1/users/NAME/limits).  None (CONVLAB_MAX_...=none): no limit.
    max_running_jobs: int | None = None  # a user's jobs running at once (the claim skips them past it)
    max_queued_jobs: int | None = 1000  # a user's queued jobs; past it a submit is 429
    max_compute_flops: float | None = 1e15  # estimated operations of one job (engine.work); past it 429
    max_storage_bytes: int | None = 10 * 2**30  # artifacts + datasets + metric points of a user; past it 429
    certificate_tolerance: float = 1e-6  # a reproduction agrees within it: |a-b| <= tol*max(1,|a|,|b|)

    def __post_init__(self) -> None:
        # A worker that is merely slow must never look lost: several heartbeats fit in the timeout.
        if self.stale_after_s < 3 * self.heartbeat_s:
            raise ValueError(
                f"CONVLAB_STALE_AFTER_S ({self.stale_after_s}) must be at least 3 × "
                f"CONVLAB_HEARTBEAT_S ({self.heartbeat_s})"
            )

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_folder(self) -> Path:
        return self.home / "broker"

    @classmethod
    def from_env(cls) -> Settings:
        """Read ``CONVLAB_*``; the defaults put SQLite and the embedded broker under ``CONVLAB_HOME``.

        A value that does not parse is a ``ValueError`` naming the variable.
        """
        home = Path(_env("HOME") or "./var").resolve()
        values: dict = {
            "home": home,
            "database_url": _env("DATABASE_URL") or f"sqlite:///{home / 'convlab.db'}",
            "broker_url": _env("BROKER_URL") or "filesystem://",
            "secret_key": _env("SECRET_KEY") or _home_secret(home),
            "limit_overrides": limit_overrides_from_env(),
        }
        for f in dataclasses.fields(cls):
            text = _env(f.name.upper())
            if f.name in values or text is None:
                continue  # set above, or left at the dataclass default
            values[f.name] = _parse(f, text)
        return cls(**values)


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def limit_overrides_from_env() -> dict[str, str]:
    """The raw ``CONVLAB_LIMIT_<NAME>`` overrides, by lower-case name (``convlab summary`` reads them
    without the rest of the settings, which would create a secret key under the home)."""
    return {k[len(LIMIT_PREFIX) :].lower(): v for k, v in os.environ.items() if k.startswith(LIMIT_PREFIX)}


def blas_threads_from_env() -> int | None:
    """``CONVLAB_BLAS_THREADS`` (None when unset), read alike by the workers and ``convlab run``
    (which needs no other setting, and must not create a secret key under the home)."""
    text = _env("BLAS_THREADS")
    return None if text is None else _parse(_FIELDS["blas_threads"], text)


def _parse(f: dataclasses.Field, text: str):
    """``text`` as the type of field ``f`` (its annotation: int, float, bool, optional int)."""
    kind = f.type.split(" | ")[0]
    if f.type.endswith("| None") and text.strip().lower() in ("none", "unlimited"):
        return None
    try:
        if kind == "bool":
            return _flag(text)
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise ValueError(f"CONVLAB_{f.name.upper()}={text!r} is not a valid {kind}") from None
    return text


def _home_secret(home: Path) -> str:
    """The session-signing key of an embedded install: made once, kept under CONVLAB_HOME.

    Every process of one install (API, workers) reads the same file; a
    distributed deployment sets CONVLAB_SECRET_KEY instead.
    """
    path = home / "secret_key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        # Created 0600, not chmod-ed after writing: the key is never readable by others, not even briefly.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)  # atomic and exclusive: the first process to get here wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()

"""Engines and sessions: one :class:`Store` per process, shared by API and workers."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def _normalize_url(url: str):
    """Parse ``url``; a bare ``postgresql://`` / ``postgres://`` gets the psycopg 3 driver.

    (SQLAlchemy's default PostgreSQL driver is psycopg2, which we do not install.)
    """
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def _plain(value: Any) -> Any:
    """``value`` with NumPy arrays/scalars as lists/numbers and NaN or infinities as None."""
    if hasattr(value, "tolist"):  # NumPy, without importing it here
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def json_dumps(value: Any) -> str:
    """Serialize a JSON column: JSON has no NaN or Infinity (PostgreSQL rejects them, SQLite
    would keep them), so both databases store null for them, as for metric points."""
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):  # the rare result holding NumPy values or a diverged loss
        return json.dumps(_plain(value), allow_nan=False)


def _create_private(path: Path) -> None:
    """Create the SQLite file ``path`` (and its folder) readable by its owner only, if it is missing.

    It holds token hashes, sessions and everyone's jobs; SQLite creates its ``-wal`` and ``-shm``
    files with the database file's permissions, so they are private too.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    """Per-connection SQLite settings: several processes share one file."""
    cur = dbapi_connection.cursor()
    # WAL: readers never block the writer; busy_timeout: writers wait for each other
    # instead of failing at once; foreign_keys: SQLite ignores them unless told.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")  # durable across app crashes in WAL mode, and faster
    cur.close()


# A client cut off between an UPDATE and its COMMIT (a worker whose host left the network) holds
# the row lock until the server notices it is gone: by TCP defaults, hours, and the reaper's
# fencing UPDATE would wait that long.  So every connection asks the server to probe an idle
# client (keepalives: a dead one is dropped after ~11 s) and to end a transaction left idle for
# 15 s (ours never idle: each is one short call), which releases its locks.  The client side
# gives up connecting after 5 s and probes the server likewise.  No server configuration needed.
POSTGRES_CONNECT_ARGS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "options": "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3"
    " -c idle_in_transaction_session_timeout=15000",
}


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

    SQLite: WAL, ``busy_timeout`` 30 s, foreign keys on, usable from any thread;
    the parent directory of a file database is created. PostgreSQL: pooled
    connections are pinged before use (they die with server restarts), and a dead
    peer on either side is noticed in seconds (:data:`POSTGRES_CONNECT_ARGS`). JSON
    columns are written by :func:`json_dumps`.
    ``kwargs`` go to :func:`sqlalchemy.create_engine`.
    """
    u = _normalize_url(url)
    kwargs.setdefault("json_serializer", json_dumps)
    if u.get_backend_name() == "sqlite":
        db = u.database or ""
        if db and db != ":memory:" and not db.startswith("file:"):
            _create_private(Path(db))
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("check_same_thread", False)
        engine = create_engine(u, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    connect_args = dict(kwargs.pop("connect_args", {}))
    for key, value in POSTGRES_CONNECT_ARGS.items():
        connect_args.setdefault(key, value)
    return create_engine(u, connect_args=connect_args, **kwargs)


class Store:
    """An engine and its session factory: the handle every ``store`` function takes."""

    def __init__(self, engine: Engine):
        """Wrap ``engine``; sessions keep loaded values after commit (no lazy reloads)."""
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Store:
        """A store on a new engine for ``url`` (see :func:`make_engine`)."""
        return cls(make_engine(url, **kwargs))

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed if the block succeeds, rolled back if it raises."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self, close: bool = True) -> None:
        """Close the pooled connections. In a freshly forked child call ``dispose(close=False)``:
        it drops the parent's connections without closing them under the parent's feet."""
        self.engine.dispose(close=close)


def ping(store: Store) -> None:
    """Raise unless the database answers a trivial query (health checks)."""
    with store.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def upsert_insert(store: Store, model):
    """An ``INSERT`` for ``model`` that knows ``ON CONFLICT`` (``.on_conflict_do_nothing`` /
    ``.on_conflict_do_update``): SQLite and PostgreSQL spell it alike, through their dialects."""
    return _INSERTS[store.dialect](model)

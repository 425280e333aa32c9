"""Fixtures shared by the tests (pytest finds them here; no import needed).

Data layer: ``db``, a migrated :class:`store.Store` on SQLite and on PostgreSQL
(each test using it runs on both), ``empty_db_url`` likewise, and
``pg_databases``, a factory of fresh PostgreSQL databases. Databases are created
through the maintenance database at ``CONVLAB_TEST_PG_ADMIN_URL`` (default: local
trust auth) with unique names, and dropped at the end of the session. If it is
unreachable the PostgreSQL cases are skipped, except under ``CI=true``, where
that is a failure.

Service: settings over a fresh migrated SQLite database, the app, its test
client, and tokens. The app publishes through ``publisher``: here a fake that
records job ids. A test module that needs real workers overrides it to return
``None`` (``create_app`` then publishes through Celery on ``settings.broker_url``).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url
from sqlalchemy.exc import OperationalError

import store
from convlab.config import Settings
from migrations.runner import upgrade
from service import create_app
from store.models import Base
from tests.helpers import skip_or_fail

PG_ADMIN_URL = os.environ.get("CONVLAB_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgresql")


# ---------------------------------------------------------------- data layer


@pytest.fixture(scope="session")
def pg_databases():
    """A factory of fresh, uniquely named PostgreSQL databases (URLs), all dropped after the session."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect():
            pass
    except OperationalError as exc:
        admin.dispose()
        skip_or_fail(f"PostgreSQL is unreachable at {PG_ADMIN_URL}: {str(exc.orig).strip()}")
    created: list[str] = []

    def create() -> str:
        name = f"convlab_test_{os.getpid()}_{secrets.token_hex(4)}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        created.append(name)
        return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    yield create
    with admin.connect() as conn:
        for name in created:
            # FORCE: a connection leaked by a failed test must not keep the database alive.
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def pg_store_url(pg_databases) -> str:
    """One PostgreSQL database per session, migrated to head (tests empty it, see :func:`db`)."""
    url = pg_databases()
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """A SQLite database migrated to head once per session: tests get copies (migrating each is slow)."""
    path = tmp_path_factory.mktemp("migrated") / "convlab.db"
    upgrade(f"sqlite:///{path}")
    return path


def sqlite_copy(template: Path, path: Path) -> str:
    """Copy the SQLite database ``template`` to ``path`` (through SQLite: WAL content included); its URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(template)) as src, closing(sqlite3.connect(path)) as dst:
        src.backup(dst)
    return f"sqlite:///{path}"


@pytest.fixture(params=BACKENDS)
def empty_db_url(request, tmp_path) -> str:
    """The URL of an empty database, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return request.getfixturevalue("pg_databases")()


@pytest.fixture(params=BACKENDS)
def db(request, tmp_path):
    """A :class:`store.Store` on an empty, migrated database, on each backend."""
    if request.param == "sqlite":
        url = sqlite_copy(request.getfixturevalue("migrated_sqlite"), tmp_path / "var" / "convlab.db")
    else:
        url = request.getfixturevalue("pg_store_url")
    db = store.Store.from_url(url)
    if request.param == "postgresql":
        # Re-creating a database per test is slow; emptying every table is not.
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with db.engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    yield db
    db.dispose()


# ---------------------------------------------------------------- service


class FakePublisher:
    """Records published job ids; checks that each job is already committed when it is published."""

    def __init__(self) -> None:
        """No store yet (the ``app`` fixture attaches it), nothing published."""
        self.store: store.Store | None = None
        self.published: list[str] = []
        self.fail = False  # True: raise like an unreachable broker

    def __call__(self, job_id: str) -> None:
        """Publish ``job_id``: the row must be readable from another session already (docs/architecture.md)."""
        if self.store is not None:
            job = store.get_job(self.store, job_id, None)
            assert job is not None and job["status"] == "queued", "published before the commit"
        if self.fail:
            raise ConnectionError("broker unreachable")
        self.published.append(job_id)


class Auth:
    """Users and their ``Authorization`` headers, made on first use."""

    def __init__(self, db: store.Store) -> None:
        """Tokens are created in ``db``."""
        self._db = db
        self._tokens: dict[str, str] = {}

    def token(self, name: str = "alice", admin: bool = False) -> str:
        """The token of user ``name`` (created with ``admin`` the first time)."""
        if name not in self._tokens:
            self._tokens[name] = store.create_token(self._db, name, admin=admin)
        return self._tokens[name]

    def headers(self, name: str = "alice", admin: bool = False) -> dict[str, str]:
        """``{"Authorization": "Bearer <token>"}`` for user ``name``."""
        return {"Authorization": f"Bearer {self.token(name, admin)}"}

    def user(self, name: str = "alice") -> store.UserInfo:
        """The user ``name`` as the API sees them."""
        return store.authenticate(self._db, self.token(name))


@pytest.fixture
def database_url(tmp_path, migrated_sqlite) -> str:
    """A fresh SQLite database, migrated to head."""
    return sqlite_copy(migrated_sqlite, tmp_path / "var" / "convlab.db")


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    """Settings for that database, the embedded broker under ``tmp_path``, default limits."""
    return Settings(
        home=tmp_path / "var", database_url=database_url, broker_url="filesystem://", secret_key="test-secret-key"
    )


@pytest.fixture
def test_config() -> dict:
    """Flask config overrides of the ``app`` fixture (override the fixture to change them)."""
    return {"TESTING": True}


@pytest.fixture
def publisher() -> FakePublisher | None:
    """The app's job publisher: a recording fake (None: real Celery)."""
    return FakePublisher()


@pytest.fixture
def app(settings, test_config, publisher):
    """The Flask app under test."""
    app = create_app(test_config, settings, publish=publisher)
    if isinstance(publisher, FakePublisher):
        publisher.store = app.extensions["convlab"].store
    yield app
    app.extensions["convlab"].store.dispose()


@pytest.fixture
def app_store(app) -> store.Store:
    """The app's data layer handle, to arrange and inspect the database directly."""
    return app.extensions["convlab"].store


@pytest.fixture
def client(app):
    """A test client of the app."""
    return app.test_client()


@pytest.fixture
def auth(app_store) -> Auth:
    """Tokens and headers of users (``auth.headers("bob")``, ``auth.headers("root", admin=True)``)."""
    return Auth(app_store)


@pytest.fixture
def headers(auth) -> dict[str, str]:
    """Authorization headers of the ordinary user ``alice``."""
    return auth.headers("alice")

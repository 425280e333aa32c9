"""Fixtures for the data layer tests: migrated stores on SQLite and PostgreSQL.

Import them explicitly in a test module (pytest finds fixtures in its namespace):
``from store_fixtures import db, empty_db_url, pg_databases, pg_store_url  # noqa: F401``.

PostgreSQL: databases are created through the maintenance database at
``CONVLAB_TEST_PG_ADMIN_URL`` (default: local trust auth) with unique names,
and dropped at the end of the session. If it is unreachable the PostgreSQL
cases are skipped, except under ``CI=true``, where that is a failure.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url
from sqlalchemy.exc import OperationalError

from store import Store, UserInfo, authenticate, create_token
from migrations.runner import upgrade
from store.models import Base

PG_ADMIN_URL = os.environ.get("CONVLAB_TEST_PG_ADMIN_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_databases():
    """A factory of fresh, uniquely named PostgreSQL databases (URLs), all dropped after the session."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect():
            pass
    except OperationalError as exc:
        admin.dispose()
        reason = f"PostgreSQL is unreachable at {PG_ADMIN_URL}: {str(exc.orig).strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
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


def _sqlite_url(path: Path) -> str:
    """The URL of a SQLite file database at ``path``."""
    return f"sqlite:///{path}"


@pytest.fixture(params=BACKENDS)
def empty_db_url(request, tmp_path) -> str:
    """The URL of an empty database, on each backend."""
    if request.param == "sqlite":
        return _sqlite_url(tmp_path / "empty.db")
    return request.getfixturevalue("pg_databases")()


@pytest.fixture(params=BACKENDS)
def db(request, tmp_path):
    """A :class:`store.Store` on an empty, migrated database, on each backend."""
    if request.param == "sqlite":
        url = _sqlite_url(tmp_path / "var" / "convlab.db")  # "var/": make_engine creates the directory
        upgrade(url)
    else:
        url = request.getfixturevalue("pg_store_url")
    store = Store.from_url(url)
    if request.param == "postgresql":
        # Re-creating a database per test is slow; emptying every table is not.
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with store.engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    yield store
    store.dispose()


def make_user(store: Store, name: str, admin: bool = False) -> UserInfo:
    """A user (created with a token) as the API would see it."""
    return authenticate(store, create_token(store, name, admin=admin))


def job_spec(name: str = "job", type: str = "train", tags: tuple[str, ...] = ()) -> dict:
    """A normalised-looking job spec; the store does not validate specs, it stores them."""
    spec = {"type": type, "name": name, "tags": list(tags),
            "model": {"input_shape": [1, 8, 8], "layers": [{"type": "dense", "units": 10,
                                                            "activation": "softmax"}],
                      "loss": "cross_entropy"}}
    if type == "train":
        spec["data"] = {"dataset": "digits", "test_fraction": 0.2, "validation_fraction": 0.1}
        spec["train"] = {"epochs": 1, "batch_size": 32, "seed": 0, "dtype": "float32",
                         "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.0}, "weight_decay": 0.0}
    else:
        spec["gradcheck"] = {"batch_size": 2, "eps": 1e-6, "seed": 0, "rotate_kernels": True}
    return spec

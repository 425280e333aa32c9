"""Tests of migrations/: the migrated schema is the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from migrations.runner import alembic_config, current, downgrade, upgrade
from store.db import make_engine
from store.models import Base


def _schema_diff(url: str) -> list:
    """What autogenerate would still have to do to make the database match the models."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    """The names of the tables in the database at ``url``."""
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_gives_the_models_schema_and_round_trips(empty_db_url):
    head = ScriptDirectory.from_config(alembic_config(empty_db_url)).get_current_head()
    assert current(empty_db_url) is None

    upgrade(empty_db_url)
    assert current(empty_db_url) == head
    assert _tables(empty_db_url) == set(Base.metadata.tables) | {"alembic_version"}
    assert _schema_diff(empty_db_url) == []

    downgrade(empty_db_url, "base")
    assert current(empty_db_url) is None
    assert _tables(empty_db_url) == {"alembic_version"}

    upgrade(empty_db_url)
    assert current(empty_db_url) == head
    assert _schema_diff(empty_db_url) == []


def test_upgrade_through_a_given_connection(empty_db_url):
    """env.py migrates through a Connection passed in ``config.attributes["connection"]``."""
    cfg = alembic_config("sqlite://")  # never used: the connection wins
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()
    assert _schema_diff(empty_db_url) == []

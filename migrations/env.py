"""Alembic environment: the schema target is ``store.models.Base.metadata``.

The database URL comes from ``migrations.runner.alembic_config(url)`` (never an
ini file); a caller may instead pass an open Connection in
``config.attributes["connection"]``.
"""

from alembic import context
from sqlalchemy import pool
from sqlalchemy.types import TypeDecorator

from store.db import make_engine
from store.models import Base

config = context.config
target_metadata = Base.metadata


def render_item(type_, obj, autogen_context):
    """Render our TypeDecorators (UTCDateTime) as their plain SQLAlchemy type.

    A revision must not import today's models: it has to keep working when they change.
    """
    if type_ == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


def _configure(**kwargs) -> None:
    """Options shared by offline and online runs."""
    context.configure(target_metadata=target_metadata, compare_type=True, render_item=render_item, **kwargs)


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade --sql``) for the configured URL."""
    url = config.get_main_option("sqlalchemy.url")
    _configure(
        url=url, literal_binds=True, dialect_opts={"paramstyle": "named"}, render_as_batch=url.startswith("sqlite")
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    """Run the migrations on ``connection``; SQLite gets batch mode (ALTER by copy-and-rename)."""
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate through the caller's Connection if given, else through a new engine for the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        # The caller owns it (and, on SQLite, should have turned foreign keys off).
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # Batch mode drops and re-creates tables; with foreign keys on, dropping
                # ``jobs`` would cascade-delete every job's metrics and artifacts.
                # (PRAGMA outside a transaction: the driver opens none for it.)
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()  # else Alembic would join this transaction and never commit
            _run(connection)
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left dangling foreign keys: {broken[:5]}")
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

"""Run the schema migrations without an ``alembic.ini``: the URL comes from the caller, never a file.

It lives beside the revisions, not in ``store``: the migrations import the
store's engine factory, and the store imports nothing of theirs.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from store.db import make_engine

SCRIPT_LOCATION = Path(__file__).parent


def alembic_config(url: str) -> Config:
    """An Alembic config for the database at ``url`` using the ``migrations`` package's scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    # Revision files are named like 0001_initial.py.
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    # The config is a ConfigParser: a "%" in the URL (an escaped password) must be doubled.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (creates a missing SQLite file)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision`` (``"base"``: no tables)."""
    command.downgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    """The revision the database at ``url`` is at, None if it was never migrated."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()

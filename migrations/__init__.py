"""Alembic migrations of the convlab schema (run them with ``migrations.runner``)."""

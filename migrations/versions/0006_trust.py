"""trust: a job's environment, triage, reproduction link, claim hint, certificate; non-finite metric kinds

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 18:45:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the trust columns of jobs (docs/trust.md) and metric_points.nonfinite."""
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("environment", sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column("triage", sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column("reproduces", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("not_worker", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("certify_tolerance", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("certificate", sa.JSON(none_as_null=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_reproduces"), ["reproduces"], unique=False)
    with op.batch_alter_table("metric_points", schema=None) as batch_op:
        batch_op.add_column(sa.Column("nonfinite", sa.String(length=4), nullable=True))


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("metric_points", schema=None) as batch_op:
        batch_op.drop_column("nonfinite")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_reproduces"))
        batch_op.drop_column("certificate")
        batch_op.drop_column("certify_tolerance")
        batch_op.drop_column("not_worker")
        batch_op.drop_column("reproduces")
        batch_op.drop_column("triage")
        batch_op.drop_column("environment")

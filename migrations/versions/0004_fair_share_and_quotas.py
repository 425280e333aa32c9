"""fair share and quotas: jobs.priority, users.last_claim_at, per-user limit overrides

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 18:45:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the columns fair share reads and the table of per-user limits."""
    op.add_column("jobs", sa.Column("priority", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column("users", sa.Column("last_claim_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "user_limits",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("max_running", sa.Integer(), nullable=True),
        sa.Column("max_queued", sa.Integer(), nullable=True),
        sa.Column("max_compute", sa.Double(), nullable=True),
        sa.Column("max_storage", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_limits_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_limits")),
    )


def downgrade() -> None:
    """Drop them again (SQLite drops columns by copying the table: batch mode)."""
    op.drop_table("user_limits")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("last_claim_at")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("priority")

"""studies: the studies table, jobs.study_id / trial_number / params, and the terminal status 'pruned'

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 19:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')"
NEW_STATUSES = "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'pruned')"


def upgrade() -> None:
    """Create studies; give jobs their study columns; allow the status 'pruned'."""
    op.create_table(
        "studies",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("topups", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed', 'cancelled')", name=op.f("ck_studies_status")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_studies_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studies")),
    )
    op.create_index(op.f("ix_studies_created_at"), "studies", ["created_at"], unique=False)
    op.create_index(op.f("ix_studies_status"), "studies", ["status"], unique=False)
    op.create_index(op.f("ix_studies_user_id"), "studies", ["user_id"], unique=False)
    # Batch mode: SQLite cannot alter a CHECK constraint or add a foreign key in place.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("study_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("trial_number", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("params", sa.JSON(none_as_null=True), nullable=True))
        batch.create_foreign_key(op.f("fk_jobs_study_id_studies"), "studies", ["study_id"], ["id"], ondelete="CASCADE")
        batch.create_unique_constraint("uq_jobs_study_trial", ["study_id", "trial_number"])
        batch.create_index(op.f("ix_jobs_study_id"), ["study_id"], unique=False)
        batch.drop_constraint(op.f("ck_jobs_status"), type_="check")
        batch.create_check_constraint(op.f("ck_jobs_status"), sa.text(NEW_STATUSES))


def downgrade() -> None:
    """Drop the study columns and table; pruned trials become failed (the old statuses have no 'pruned')."""
    op.execute("UPDATE jobs SET status = 'failed' WHERE status = 'pruned'")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("ck_jobs_status"), type_="check")
        batch.create_check_constraint(op.f("ck_jobs_status"), sa.text(OLD_STATUSES))
        batch.drop_index(op.f("ix_jobs_study_id"))
        batch.drop_constraint("uq_jobs_study_trial", type_="unique")
        batch.drop_constraint(op.f("fk_jobs_study_id_studies"), type_="foreignkey")
        batch.drop_column("params")
        batch.drop_column("trial_number")
        batch.drop_column("study_id")
    op.drop_index(op.f("ix_studies_user_id"), table_name="studies")
    op.drop_index(op.f("ix_studies_status"), table_name="studies")
    op.drop_index(op.f("ix_studies_created_at"), table_name="studies")
    op.drop_table("studies")

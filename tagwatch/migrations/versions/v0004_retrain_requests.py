"""Retrain requests: the monitor files them, a retrain runner claims and runs them (tagwatch.retrain_queue).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "retrain_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("drift_run_id", sa.Integer(), nullable=True),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("parent_version", sa.String(64), nullable=True),
        sa.Column("data_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(160), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["drift_run_id"],
            ["drift_runs.id"],
            name="fk_retrain_requests_drift_run_id_drift_runs",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_retrain_requests"),
    )
    op.create_index("ix_retrain_requests_requested_at", "retrain_requests", ["requested_at"])
    op.create_index("ix_retrain_requests_status", "retrain_requests", ["status"])


def downgrade() -> None:
    op.drop_index("ix_retrain_requests_status", table_name="retrain_requests")
    op.drop_index("ix_retrain_requests_requested_at", table_name="retrain_requests")
    op.drop_table("retrain_requests")

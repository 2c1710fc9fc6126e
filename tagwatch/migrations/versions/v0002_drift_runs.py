"""Monitor runs: drift_runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    kinds = []
    for kind in ("data", "concept", "feature"):
        kinds += [
            sa.Column(f"{kind}_score", sa.Float(), nullable=True),
            sa.Column(f"{kind}_threshold", sa.Float(), nullable=True),
            sa.Column(f"{kind}_detected", sa.Boolean(), nullable=False),
        ]
    op.create_table(
        "drift_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("window_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("n_current", sa.Integer(), nullable=False),
        sa.Column("n_labelled", sa.Integer(), nullable=False),
        *kinds,
        sa.Column("confirmed", JSON, nullable=False),
        sa.Column("retrain_triggered", sa.Boolean(), nullable=False),
        sa.Column("reasons", JSON, nullable=False),
        sa.Column("retrain", JSON, nullable=True),
        sa.Column("report_path", sa.String(512), nullable=True),
        sa.Column("summary", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_drift_runs"),
    )
    op.create_index("ix_drift_runs_started_at", "drift_runs", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_drift_runs_started_at", table_name="drift_runs")
    op.drop_table("drift_runs")

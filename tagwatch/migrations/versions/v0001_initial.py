"""The request log: prediction_requests and feedback.

Revision ID: 0001
Revises:
Create Date: 2025-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "prediction_requests",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_format", sa.String(16), nullable=True),
        sa.Column("predicted", JSON, nullable=False),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("latency_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prediction_requests"),
    )
    op.create_index("ix_prediction_requests_created_at", "prediction_requests", ["created_at"])
    op.create_table(
        "feedback",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_feedback"),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["prediction_requests.id"],
            name="fk_feedback_request_id_prediction_requests",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_index("ix_prediction_requests_created_at", table_name="prediction_requests")
    op.drop_table("prediction_requests")

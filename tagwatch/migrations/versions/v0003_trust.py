"""Trust boundaries: append-only feedback with the sending key's name, and the history of alias moves.

feedback: one record per submission (primary key ``id``), not one per request; existing records keep their
request id as their id. The latest record of a request counts (``tagwatch.db.fetch_requests``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("key_name", sa.String(64), nullable=True))
    op.execute("UPDATE feedback SET id = request_id")
    with op.batch_alter_table("feedback") as batch:
        batch.alter_column("id", existing_type=sa.String(64), nullable=False)
        batch.drop_constraint("pk_feedback", type_="primary")
        batch.create_primary_key("pk_feedback", ["id"])
        batch.create_index("ix_feedback_request_id", ["request_id"])

    op.create_table(
        "alias_moves",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("moved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("from_version", sa.String(64), nullable=True),
        sa.Column("to_version", sa.String(64), nullable=True),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alias_moves"),
    )
    op.create_index("ix_alias_moves_moved_at", "alias_moves", ["moved_at"])


def downgrade() -> None:
    op.drop_index("ix_alias_moves_moved_at", table_name="alias_moves")
    op.drop_table("alias_moves")
    # Back to one record per request: keep the latest of each.
    op.execute(
        "DELETE FROM feedback WHERE id NOT IN (SELECT id FROM (SELECT id, row_number() OVER "
        "(PARTITION BY request_id ORDER BY received_at DESC, id DESC) AS rank FROM feedback) AS ranked "
        "WHERE rank = 1)"
    )
    with op.batch_alter_table("feedback") as batch:
        batch.drop_index("ix_feedback_request_id")
        batch.drop_constraint("pk_feedback", type_="primary")
        batch.create_primary_key("pk_feedback", ["request_id"])
        batch.drop_column("key_name")
        batch.drop_column("id")

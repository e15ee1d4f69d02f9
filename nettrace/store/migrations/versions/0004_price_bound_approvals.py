"""Price-bound approvals: what a decision binds, and how urgent and latch-aware an order is.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 17:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("exit_reason", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("price_bound", sa.Float(), nullable=True))
        batch.add_column(sa.Column("stop_price", sa.Float(), nullable=True))
        batch.add_column(sa.Column("entry_decision_id", sa.String(length=32), nullable=True))
    with op.batch_alter_table("orders") as batch:
        batch.add_column(
            sa.Column("urgency", sa.String(length=8), server_default="normal", nullable=False)
        )
        batch.add_column(
            sa.Column("hardstop_active", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.create_check_constraint("urgency", "urgency IN ('normal', 'critical')")
    with op.batch_alter_table("hardstop_state") as batch:
        batch.add_column(
            sa.Column("flatten", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("hardstop_state") as batch:
        batch.drop_column("flatten")
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint("urgency", type_="check")
        batch.drop_column("hardstop_active")
        batch.drop_column("urgency")
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("entry_decision_id")
        batch.drop_column("stop_price")
        batch.drop_column("price_bound")
        batch.drop_column("exit_reason")

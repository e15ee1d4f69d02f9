"""Signal ids are unique per source region: the primary key becomes (source_region, id).

A signal's id is the client's idempotency key, and each region's scout chooses its own: two
regions may well both send ``sig-1``. Keyed on ``id`` alone, the second region's signal was
acknowledged as a duplicate and silently dropped.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 21:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signals", recreate="auto") as batch:
        batch.drop_constraint("pk_signals", type_="primary")
        batch.create_primary_key("pk_signals", ["source_region", "id"])


def downgrade() -> None:
    # The old key cannot hold the same id from two regions: keep the alphabetically first
    # region's row of each such id (the downgrade loses the others, as the old code would have).
    op.execute(
        sa.text(
            "DELETE FROM signals WHERE EXISTS (SELECT 1 FROM signals AS other "
            "WHERE other.id = signals.id AND other.source_region < signals.source_region)"
        )
    )
    with op.batch_alter_table("signals", recreate="auto") as batch:
        batch.drop_constraint("pk_signals", type_="primary")
        batch.create_primary_key("pk_signals", ["id"])

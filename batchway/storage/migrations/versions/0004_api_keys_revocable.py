"""api keys revocable

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("apikey", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_used_at", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("revoked_at", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_apikey_revoked_at"), ["revoked_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("apikey", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_apikey_revoked_at"))
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("last_used_at")

"""file lifecycle

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batchrecord", schema=None) as batch_op:
        batch_op.add_column(sa.Column("output_ttl_seconds", sa.Integer(), nullable=True))

    with op.batch_alter_table("filerecord", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upload_complete", sa.Boolean(), server_default="1", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("filerecord", schema=None) as batch_op:
        batch_op.drop_column("upload_complete")

    with op.batch_alter_table("batchrecord", schema=None) as batch_op:
        batch_op.drop_column("output_ttl_seconds")

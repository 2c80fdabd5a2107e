"""org page indexes: batches and files of an org in list order, replacing the plain org_id indexes

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = ("batchrecord", "filerecord")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f"ix_{table}_org_page", ["org_id", "created_ns", "id"], unique=False)
            batch_op.drop_index(f"ix_{table}_org_id")


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f"ix_{table}_org_id", ["org_id"], unique=False)
            batch_op.drop_index(f"ix_{table}_org_page")

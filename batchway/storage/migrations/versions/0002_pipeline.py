"""pipeline: the adapter's upstream record on batches, result chunks, request-log rows that point at
their bytes, provider options

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resultchunk",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("batch_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("resultchunk", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_resultchunk_batch_id"), ["batch_id"], unique=False)

    with op.batch_alter_table("batchrecord", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upstream", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("submit_started_at", sa.Integer(), nullable=True))
    # What the OpenAI adapter recorded in two columns becomes its upstream record.
    batches = sa.table(
        "batchrecord",
        sa.column("id", sa.String),
        sa.column("upstream", sa.JSON),
        sa.column("upstream_input_file_id", sa.String),
        sa.column("upstream_batch_id", sa.String),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(batches.c.id, batches.c.upstream_input_file_id, batches.c.upstream_batch_id).where(
            batches.c.upstream_input_file_id.is_not(None)
        )
    ).all()
    for batch_id, file_id, upstream_batch_id in rows:
        record: dict[str, object] = {"checkpoint": {"input_file_id": file_id, "create_attempted": True}}
        if upstream_batch_id:
            record["ref"] = {"input_file_id": file_id, "batch_id": upstream_batch_id}
        connection.execute(batches.update().where(batches.c.id == batch_id).values(upstream=record))
    with op.batch_alter_table("batchrecord", schema=None) as batch_op:
        batch_op.drop_column("upstream_batch_id")
        batch_op.drop_column("upstream_input_file_id")

    with op.batch_alter_table("providerconfig", schema=None) as batch_op:
        batch_op.add_column(sa.Column("options", sa.JSON(), nullable=True))

    # Rows logged before this revision have no chunk: their batches ended, their files are written.
    with op.batch_alter_table("requestlog", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default="batch")
        )
        batch_op.add_column(sa.Column("ok", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("latency_ms", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("chunk_key", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("chunk_offset", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("chunk_length", sa.Integer(), nullable=False, server_default="0"))
        batch_op.drop_index(batch_op.f("ix_requestlog_batch_id"))
        batch_op.create_index(
            "ix_requestlog_batch_chunk", ["batch_id", "chunk_key", "chunk_offset"], unique=False
        )
    log = sa.table(
        "requestlog",
        sa.column("ok", sa.Boolean),
        sa.column("status_code", sa.Integer),
        sa.column("error_code"),
    )
    connection.execute(
        log.update()
        .where(log.c.status_code >= 200, log.c.status_code < 300, log.c.error_code.is_(None))
        .values(ok=True)
    )
    with op.batch_alter_table("requestlog", schema=None) as batch_op:
        for column in ("source", "ok", "chunk_key", "chunk_offset", "chunk_length"):
            batch_op.alter_column(column, server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("requestlog", schema=None) as batch_op:
        batch_op.drop_index("ix_requestlog_batch_chunk")
        batch_op.create_index(batch_op.f("ix_requestlog_batch_id"), ["batch_id"], unique=False)
        for column in ("chunk_length", "chunk_offset", "chunk_key", "latency_ms", "ok", "source"):
            batch_op.drop_column(column)

    with op.batch_alter_table("providerconfig", schema=None) as batch_op:
        batch_op.drop_column("options")

    with op.batch_alter_table("batchrecord", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upstream_input_file_id", sa.VARCHAR(), nullable=True))
        batch_op.add_column(sa.Column("upstream_batch_id", sa.VARCHAR(), nullable=True))
        batch_op.drop_column("submit_started_at")
        batch_op.drop_column("upstream")

    with op.batch_alter_table("resultchunk", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resultchunk_batch_id"))
    op.drop_table("resultchunk")

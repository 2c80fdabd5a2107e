"""observability: the request log's public ids, sessions, input pointers, costs and scores; plans,
prices and webhooks

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plan",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("monthly_token_cap", sa.BigInteger(), nullable=True),
        sa.Column("feedback", sa.Boolean(), nullable=False),
        sa.Column("judge_sample_rate", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "price",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("input_per_million", sa.Float(), nullable=False),
        sa.Column("cached_input_per_million", sa.Float(), nullable=False),
        sa.Column("output_per_million", sa.Float(), nullable=False),
        sa.Column("batch_discount", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider", "model"),
    )
    op.create_table(
        "webhookdelivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("batch_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("event_type", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("webhookdelivery", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhookdelivery_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_webhookdelivery_org_id"), ["org_id"], unique=False)

    op.create_table(
        "webhookendpoint",
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("url", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("secret", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("org_id"),
    )
    with op.batch_alter_table("batchrecord", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("request_headers", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("cost_micros", sa.BigInteger(), server_default="0", nullable=False))

    with op.batch_alter_table("org", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plan", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("judge_provider", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("judge_model", sqlmodel.sql.sqltypes.AutoString(), nullable=True))

    with op.batch_alter_table("requestlog", schema=None) as batch_op:
        batch_op.add_column(sa.Column("line_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("cost_micros", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("input_offset", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("input_length", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("heuristic_score", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("heuristic_reasons", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("judge_score", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("judge_reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    # Rows logged before this revision get the id their line has in the batch's files
    # (batchway.ids.result_line_id, repeated here: a migration must not change with the code).
    log = sa.table(
        "requestlog",
        sa.column("id", sa.Integer),
        sa.column("batch_id"),
        sa.column("custom_id"),
        sa.column("line_id"),
    )
    connection = op.get_bind()
    for row_id, batch_id, custom_id in connection.execute(
        sa.select(log.c.id, log.c.batch_id, log.c.custom_id)
    ).all():
        digest = hashlib.sha256(f"{batch_id}\x00{custom_id}".encode()).hexdigest()[:32]
        connection.execute(log.update().where(log.c.id == row_id).values(line_id=f"batch_req_{digest}"))
    with op.batch_alter_table("requestlog", schema=None) as batch_op:
        batch_op.alter_column("line_id", existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=False)
        batch_op.create_index(batch_op.f("ix_requestlog_line_id"), ["line_id"], unique=True)
        batch_op.create_index("ix_requestlog_org_created", ["org_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_requestlog_session_id"), ["session_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("requestlog", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_requestlog_session_id"))
        batch_op.drop_index("ix_requestlog_org_created")
        batch_op.drop_index(batch_op.f("ix_requestlog_line_id"))
        batch_op.drop_column("judge_reason")
        batch_op.drop_column("judge_score")
        batch_op.drop_column("heuristic_reasons")
        batch_op.drop_column("heuristic_score")
        batch_op.drop_column("input_length")
        batch_op.drop_column("input_offset")
        batch_op.drop_column("cost_micros")
        batch_op.drop_column("session_id")
        batch_op.drop_column("line_id")

    with op.batch_alter_table("org", schema=None) as batch_op:
        batch_op.drop_column("judge_model")
        batch_op.drop_column("judge_provider")
        batch_op.drop_column("plan")

    with op.batch_alter_table("batchrecord", schema=None) as batch_op:
        batch_op.drop_column("cost_micros")
        batch_op.drop_column("request_headers")
        batch_op.drop_column("session_id")

    op.drop_table("webhookendpoint")
    with op.batch_alter_table("webhookdelivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhookdelivery_org_id"))
        batch_op.drop_index(batch_op.f("ix_webhookdelivery_batch_id"))

    op.drop_table("webhookdelivery")
    op.drop_table("price")
    op.drop_table("plan")

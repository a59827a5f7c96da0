"""sessions' kept output

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 00:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_logs",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("kept_bytes", sa.BigInteger(), nullable=False),
        sa.Column("dropped_bytes", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_session_logs_session_id_sessions"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_session_logs")),
    )
    op.create_table(
        "session_log_chunks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_session_log_chunks_session_id_sessions"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_log_chunks")),
    )
    with op.batch_alter_table("session_log_chunks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_session_log_chunks_session_id"), ["session_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("session_log_chunks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_log_chunks_session_id"))
    op.drop_table("session_log_chunks")
    op.drop_table("session_logs")

"""listing indexes and stored folder usage

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 00:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_user_created")
        batch_op.create_index("ix_sessions_user_list", ["user_id", "created_at", "id", "status"], unique=False)
        batch_op.create_index("ix_sessions_domain_list", ["domain_name", "created_at", "id", "status"], unique=False)
        batch_op.create_index("ix_sessions_created_list", ["created_at", "id", "status"], unique=False)
    with op.batch_alter_table("vfolders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("used_bytes", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("file_count", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("usage_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("vfolders", schema=None) as batch_op:
        batch_op.drop_column("usage_at")
        batch_op.drop_column("file_count")
        batch_op.drop_column("used_bytes")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_created_list")
        batch_op.drop_index("ix_sessions_domain_list")
        batch_op.drop_index("ix_sessions_user_list")
        batch_op.create_index("ix_sessions_user_created", ["user_id", "created_at", "status"], unique=False)

"""GPU memory in usage samples

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 00:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("session_usage", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gpu_mem_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("session_usage", schema=None) as batch_op:
        batch_op.drop_column("gpu_mem_bytes")

"""images on agents and their installs

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 00:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_images",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("reference", sa.String(length=512), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress_current", sa.BigInteger(), nullable=True),
        sa.Column("progress_total", sa.BigInteger(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_images_agent_id_agents"),
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agent_id", "reference", name=op.f("pk_agent_images")),
    )
    with op.batch_alter_table("agent_images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_images_reference"), ["reference"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("agent_images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_images_reference"))
    op.drop_table("agent_images")

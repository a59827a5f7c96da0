"""secrets encrypted at rest

Keypair secret keys, SSH private keys and registry passwords written in clear by earlier
versions are encrypted with the operator's key (``jupyter_backendai.db.encryption``); the
columns become TEXT, since an encrypted value is longer than ``VARCHAR(40)`` allows. The key is
found (or, on a database without encrypted values, created) by ``engine.upgrade`` before this
runs. Downgrading writes the values back in clear.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 00:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from jupyter_backendai.db.encryption import MARKER, SECRET_COLUMNS, SecretKeyError, keyring_of

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PRIMARY_KEYS = {"keypairs": "access_key", "ssh_keypairs": "user_id", "container_registries": "id"}


def _rewrite(change) -> None:
    bind = op.get_bind()
    ring = keyring_of(bind.dialect)
    for table, column in SECRET_COLUMNS:
        pk = PRIMARY_KEYS[table]
        rows = bind.execute(sa.text(f"SELECT {pk}, {column} FROM {table} WHERE {column} IS NOT NULL")).all()
        for key, value in rows:
            new = change(ring, value, f"{table}.{column}")
            if new != value:
                bind.execute(
                    sa.text(f"UPDATE {table} SET {column} = :value WHERE {pk} = :key"), {"value": new, "key": key}
                )


def _encrypt(ring, value: str, where: str) -> str:
    if value.startswith(MARKER):
        try:
            ring.decrypt(value, where)
            return value  # encrypted already (a second run after an interrupted one)
        except SecretKeyError:
            pass  # a clear value that happens to begin with the marker
    return ring.encrypt(value)


def _decrypt(ring, value: str, where: str) -> str:
    return ring.decrypt(value, where)


def upgrade() -> None:
    with op.batch_alter_table("keypairs", schema=None) as batch_op:
        batch_op.alter_column(
            "secret_key", existing_type=sa.String(length=40), type_=sa.Text(), existing_nullable=False
        )
    with op.batch_alter_table("container_registries", schema=None) as batch_op:
        batch_op.alter_column("password", existing_type=sa.String(length=256), type_=sa.Text(), existing_nullable=True)
    _rewrite(_encrypt)


def downgrade() -> None:
    _rewrite(_decrypt)
    with op.batch_alter_table("container_registries", schema=None) as batch_op:
        batch_op.alter_column("password", existing_type=sa.Text(), type_=sa.String(length=256), existing_nullable=True)
    with op.batch_alter_table("keypairs", schema=None) as batch_op:
        batch_op.alter_column(
            "secret_key", existing_type=sa.Text(), type_=sa.String(length=40), existing_nullable=False
        )

"""The database: SQLAlchemy 2 models, Alembic migrations, engine set-up and the operations on it."""

from .engine import DEFAULT_DB_URL, Database, connect, upgrade

__all__ = ["DEFAULT_DB_URL", "Database", "connect", "upgrade"]

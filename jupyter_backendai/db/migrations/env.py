"""Alembic environment: runs on the engine handed over by ``jupyter_backendai.db.engine.upgrade``."""

from alembic import context

from jupyter_backendai.db.engine import make_engine
from jupyter_backendai.db.models import Base

config = context.config
engine = config.attributes.get("engine") or make_engine(config.get_main_option("sqlalchemy.url") or None)

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=True,
        compare_type=True,
    )
    context.run_migrations()

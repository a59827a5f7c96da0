"""Alembic environment: runs on the engine handed over by ``jupyter_backendai.db.engine.upgrade``."""

from alembic import context

from jupyter_backendai.db.engine import make_engine
from jupyter_backendai.db.models import Base

config = context.config
engine = config.attributes.get("engine") or make_engine(config.get_main_option("sqlalchemy.url") or None)

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # SQLite changes a column by copying its table (batch mode) and dropping the old one; with
        # foreign keys enforced, that drop deletes the rows referring to it (ON DELETE CASCADE) or
        # fails. So they are off while migrating, as SQLite's documentation prescribes for table
        # rebuilds, and every reference is checked before the commit. (The pragma has no effect
        # inside a transaction, hence the commit before the migration's own.)
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        with connection.begin():
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                # SQLite cannot ALTER most things; batch mode copies the table instead.
                render_as_batch=True,
                compare_type=True,
            )
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"the migration left rows with dangling references: {broken[:5]}")
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()

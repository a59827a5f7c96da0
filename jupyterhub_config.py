"""JupyterHub configuration of jupyter-backendai.

Start the hub from this directory with ``jupyterhub -f jupyterhub_config.py``. The product's
authenticator, session spawners and manager service are configured here as they land; for
now this holds only what every deployment shares: where the hub and the product keep their
databases.
"""

import os

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

# The product's own database (users, keypairs, policies, sessions, folders); the operator
# CLI reads the same variable, so both agree.
os.environ.setdefault("BACKENDAI_DB_URL", "sqlite:///jupyter_backendai.sqlite")

c.JupyterHub.db_url = os.environ.get("JUPYTERHUB_DB_URL", "sqlite:///jupyterhub.sqlite")
c.JupyterHub.bind_url = os.environ.get("JUPYTERHUB_BIND_URL", "http://127.0.0.1:8000")

"""JupyterHub configuration of jupyter-backendai.

Start the hub from this directory with ``jupyterhub -f jupyterhub_config.py``. On first start
it creates the product's database (SQLite by default, or ``$BACKENDAI_DB_URL``), the default
domain, group, policy and resource group, and an ``admin`` superadmin whose first password
it prints once (it must be changed at first login).

Session spawners arrive with the compute-sessions work; until then the hub spawns plain
single-user servers as the hub's own user, which does not isolate users.
"""

import os

from jupyter_backendai.hub import TEMPLATES
from jupyter_backendai.hub.first_run import prepare_database
from jupyter_backendai.hub.provision import post_auth_hook

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

# The product's database; the operator CLI reads the same variable, so both agree.
db_url = os.environ.setdefault("BACKENDAI_DB_URL", "sqlite:///jupyter_backendai.sqlite")
first_password = prepare_database(db_url)
if first_password:
    print(
        "\n  jupyter-backendai: created the superadmin 'admin' with the password\n\n"
        f"      {first_password}\n\n  (shown once; it must be changed at first login)\n",
        flush=True,
    )

c.JupyterHub.db_url = os.environ.get("JUPYTERHUB_DB_URL", "sqlite:///jupyterhub.sqlite")
c.JupyterHub.bind_url = os.environ.get("JUPYTERHUB_BIND_URL", "http://127.0.0.1:8000")

# Login with the product's accounts, its pages, and users of any other authenticator mapped
# to db users (set c.BackendAI.auto_provision = True to create them on first login).
c.JupyterHub.authenticator_class = "backendai"
c.JupyterHub.template_paths = [TEMPLATES]
c.Authenticator.post_auth_hook = post_auth_hook
c.BackendAIAuthenticator.allow_signup = os.environ.get("BACKENDAI_ALLOW_SIGNUP", "") == "1"

c.JupyterHub.spawner_class = "simple"

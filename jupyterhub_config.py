"""JupyterHub configuration of jupyter-backendai.

``jupyterhub -f jupyterhub_config.py`` runs the product with embedded defaults: on first start
it creates the product's database (SQLite, or ``$BACKENDAI_DB_URL``) with the default domain,
group, policy, resource group and presets, and an ``admin`` superadmin whose first password it
prints once (it must be changed at first login). Sessions run as Docker containers when an
engine answers and the session image is built (``images/session/build-offline.sh``), else as
local processes, which it says in the log and on the spawn form.

Environment: ``BACKENDAI_DB_URL``, ``BACKENDAI_BACKEND`` (auto | docker | local | swarm |
kubernetes; swarm with ``DOCKER_HOST`` at a swarm manager, kubernetes with the hub's kubeconfig or
in-cluster service account), ``BACKENDAI_HUB_IP`` (the hub's API address that sessions reach, for
sessions on other machines),
``BACKENDAI_BOOTSTRAP`` (a YAML file loaded at start, idempotently), ``BACKENDAI_STORAGE``
(the folder storage directory), ``BACKENDAI_ALLOW_SIGNUP=1``, ``JUPYTERHUB_BIND_URL``,
``BACKENDAI_PUBLIC_URL`` (the URL users open, for links in e-mail; default: the bind URL),
``BACKENDAI_DB_KEY`` or ``BACKENDAI_DB_KEY_FILE`` (the key of the secrets in the database; by
default ``jupyter_backendai_secret.key`` here, created on first start).
"""

import logging
import os

from jupyter_backendai.db.encryption import key_environment
from jupyter_backendai.db.engine import DatabaseError
from jupyter_backendai.hub import TEMPLATES
from jupyter_backendai.hub.first_run import choose, prepare_database, register_agent_at_start
from jupyter_backendai.hub.provision import post_auth_hook
from jupyter_backendai.hub.roles import session_roles
from jupyter_backendai.settings import ENV_DB_URL, default_db_url, default_storage_root

logging.basicConfig(level=logging.INFO, format="[%(levelname).1s %(asctime)s %(name)s] %(message)s")

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

# The product's database; the operator CLI reads the same variable, so both agree.
db_url = os.environ.setdefault(ENV_DB_URL, default_db_url())
try:
    first_password = prepare_database(db_url, bootstrap=os.environ.get("BACKENDAI_BOOTSTRAP") or None)
except DatabaseError as e:  # a server out of reach, a key that does not decrypt the secrets
    raise SystemExit(f"jupyter-backendai: {e}") from None
if first_password:
    print(
        "\n  jupyter-backendai: created the superadmin 'admin' with the password\n\n"
        f"      {first_password}\n\n  (shown once; it must be changed at first login)\n",
        flush=True,
    )

c.JupyterHub.db_url = os.environ.get("JUPYTERHUB_DB_URL", "sqlite:///jupyterhub.sqlite")
c.JupyterHub.bind_url = os.environ.get("JUPYTERHUB_BIND_URL", "http://127.0.0.1:8000")
# Sessions (and the Python client inside them) reach the manager through the proxy.
c.Spawner.environment = {"BACKENDAI_ENDPOINT": c.JupyterHub.bind_url.rstrip("/") + "/services/backendai"}

# Login with the product's accounts, its pages, and users of any other authenticator mapped
# to db users (set c.BackendAI.auto_provision = True to create them on first login).
c.JupyterHub.authenticator_class = "backendai"
c.JupyterHub.template_paths = [TEMPLATES]
c.Authenticator.post_auth_hook = post_auth_hook
c.BackendAIAuthenticator.allow_signup = os.environ.get("BACKENDAI_ALLOW_SIGNUP", "") == "1"

# One session = one named server. How many may run at once is the keypair policy's rule, checked
# at admission with the reason shown; JupyterHub's own named_server_limit_per_user stays 0 (it
# counts stopped servers too, and a callable answering None broke every page that reads it).
# Which backend runs and why (a missing engine or image) is in the log and on the spawn form.
backend, c.LocalSessionSpawner.backend_reason = choose(db_url, prefer=os.environ.get("BACKENDAI_BACKEND", "auto"))
c.JupyterHub.spawner_class = f"backendai-{backend}"
register_agent_at_start(c, backend)  # so that presets fit before the first spawn
c.JupyterHub.allow_named_servers = True
c.JupyterHub.default_url = "/hub/home"
storage = default_storage_root()
c.StorageSettings.storage_root = storage  # every spawner's
if os.environ.get("BACKENDAI_HUB_IP"):  # sessions on swarm or cluster nodes call the hub's API there
    c.JupyterHub.hub_ip = os.environ["BACKENDAI_HUB_IP"]
c.Spawner.default_url = "/lab"

# The manager service (REST API for folders, transfers, sessions, resources, administration) at
# /services/backendai/, started and stopped by the hub, on the same database and storage.
import sys  # noqa: E402

manager_port = int(os.environ.get("BACKENDAI_MANAGER_PORT", "8090"))
c.JupyterHub.services = [
    {
        "name": "backendai",
        "url": f"http://127.0.0.1:{manager_port}",
        "command": [sys.executable, "-m", "jupyter_backendai.manager"],
        # JupyterHub does not pass its environment on: the manager gets the same key of the
        # database's secrets as the hub found (or made) in prepare_database.
        "environment": {"BACKENDAI_DB_URL": db_url, "BACKENDAI_STORAGE": storage, **key_environment()},
        "oauth_no_confirm": True,
    }
]
c.JupyterHub.load_roles = [
    {
        # Starts and stops sessions for users through the hub's API, and checks their tokens.
        "name": "backendai-manager",
        "services": ["backendai"],
        "scopes": ["admin:users", "admin:servers", "list:users", "read:users", "access:servers"],
    },
    # Users and their sessions' own tokens may call the manager (the lab panels, the widgets);
    # it refuses tokens without access:services!service=backendai.
    *session_roles("backendai"),
]

"""The demo hub of binder/start: the repository's configuration, on ports and in a state
directory of its own, so that it runs alongside anything else on the machine.

binder/start sets the environment read here and by the repository's ``jupyterhub_config.py``:
``BACKENDAI_DEMO_STATE`` (the state directory, also the working directory),
``BACKENDAI_DEMO_HUB_PORT`` and ``BACKENDAI_DEMO_PROXY_API_PORT`` (loopback ports of the hub
and the proxy's API), plus ``JUPYTERHUB_BIND_URL``, ``BACKENDAI_MANAGER_PORT``,
``BACKENDAI_DB_URL``, ``BACKENDAI_STORAGE`` and ``BACKENDAI_BACKEND=local``.
"""

import os
import secrets
from pathlib import Path

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

load_subconfig(str(Path(__file__).resolve().parent.parent / "jupyterhub_config.py"))  # noqa: F821

state = Path(os.environ["BACKENDAI_DEMO_STATE"])
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("BACKENDAI_DEMO_HUB_PORT", "8081"))
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(os.environ.get('BACKENDAI_DEMO_PROXY_API_PORT', '8001'))}"
# A token of our own: the proxy would otherwise read $CONFIGPROXY_AUTH_TOKEN from the caller.
c.ConfigurableHTTPProxy.auth_token = secrets.token_hex(32)
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(state / "jupyterhub-proxy.pid")
c.LocalSessionSpawner.sessions_root = str(state / "sessions")
# Sessions of the demo are small; the machine may be shared (Binder gives a couple of cores).
c.LocalSessionSpawner.agent_capacity = {
    "cpu": os.environ.get("BACKENDAI_DEMO_CPU", "2"),
    "mem": os.environ.get("BACKENDAI_DEMO_MEM", "4g"),
}
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True

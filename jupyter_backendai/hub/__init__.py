"""What runs inside JupyterHub: the authenticator, its pages, the session spawners."""

from pathlib import Path

#: The product's hub page templates; put this in ``c.JupyterHub.template_paths``.
TEMPLATES = str(Path(__file__).with_name("templates"))

"""jupyter-backendai: Backend.AI's compute sessions and virtual folders for JupyterHub and JupyterLab."""

from ._version import __version__

__all__ = ["__version__"]

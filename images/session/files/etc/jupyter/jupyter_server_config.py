# Session-wide Jupyter server settings of the jupyter-backendai session image.
c = get_config()  # noqa: F821

# The web terminal's shell runs inside tmux (F21): closing the browser tab leaves the shell
# running, and reopening the terminal attaches to the same session.
c.ServerApp.terminado_settings = {"shell_command": ["tmux", "new-session", "-A", "-s", "main"]}

# Session-wide Jupyter server settings of the jupyter-backendai session image.
c = get_config()  # noqa: F821

# Each web terminal runs in a tmux session of its own, named after the terminal (F21): two
# terminals never mirror each other, closing the browser leaves the shell running, and a
# terminal reopened under its name (JupyterLab does so after a reload) attaches to it again.
# The terminal manager passes the name to session-terminal in $JUPYTER_TERMINAL_NAME.
c.ServerApp.terminado_settings = {"shell_command": ["session-terminal"]}
c.TerminalsExtensionApp.terminal_manager_class = "jupyter_backendai.serverext.terminals.SessionTerminalManager"

# The session's Python environment first on PATH, also for login shells (Debian's
# /etc/profile resets PATH for them: terminals, tmux windows, ssh logins). The user's own
# scripts (~/.local/bin: `pip install --user`, kept in the automounted `.local` folder) go
# before it, as the image's ENV PATH has them.
case ":$PATH:" in
  *:/opt/venv/bin:*) ;;
  *) PATH=/opt/venv/bin:$PATH; export PATH ;;
esac
case ":$PATH:" in
  *:"$HOME/.local/bin":*) ;;
  *) PATH=$HOME/.local/bin:$PATH; export PATH ;;
esac

# The session's Python environment first on PATH, also for login shells (Debian's
# /etc/profile resets PATH for them: terminals, tmux windows, ssh logins).
case ":$PATH:" in
  *:/opt/venv/bin:*) ;;
  *) PATH=/opt/venv/bin:$PATH; export PATH ;;
esac

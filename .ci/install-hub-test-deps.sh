#!/usr/bin/env bash
# Install what the browser tests of a real JupyterHub need (testing/hub.py):
#   - Debian's chromium (driven by Playwright; `playwright install` cannot download here),
#   - configurable-http-proxy from npm (JupyterHub's default proxy),
#   - Python's playwright and aiosmtpd.
# Idempotent and quiet: a second run only checks and returns.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
PYTHON=${PYTHON:-python}
# Wait for another apt/dpkg run (CI steps or other jobs on the machine) instead of failing.
apt_opts=(-qq -o DPkg::Lock::Timeout=300)

# Debian packages: chromium, and node/npm for the proxy when they are missing.
need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  # Update the package lists only when they do not know a package we need (or are empty),
  # and once more if an install fails on stale lists.
  lists_ok=1
  for pkg in "${need_apt[@]}"; do
    cand=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then lists_ok=0; fi
  done
  [ "$lists_ok" = 1 ] || apt-get "${apt_opts[@]}" update
  if ! apt-get "${apt_opts[@]}" install -y --no-install-recommends "${need_apt[@]}" >/dev/null 2>&1; then
    apt-get "${apt_opts[@]}" update
    apt-get "${apt_opts[@]}" install -y --no-install-recommends "${need_apt[@]}" >/dev/null
  fi
fi

# configurable-http-proxy, globally, so that JupyterHub finds it on PATH.
if ! configurable-http-proxy --version >/dev/null 2>&1; then
  npm install -g --silent --no-audit --no-fund configurable-http-proxy >/dev/null
  configurable-http-proxy --version >/dev/null
fi

# Python packages (into the interpreter that runs the tests).
if ! "$PYTHON" -c "import playwright.sync_api, aiosmtpd.controller" >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --disable-pip-version-check playwright aiosmtpd 2>&1 \
    | grep -vE '^WARNING: (Location|Running pip as)' || true
  "$PYTHON" -c "import playwright.sync_api, aiosmtpd.controller"
fi

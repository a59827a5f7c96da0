#!/usr/bin/env bash
# Start a Docker engine for CI and tests (idempotent).
#
# - installs docker.io (the engine) and debootstrap (for images/session/build-offline.sh) from
#   Debian when they are missing;
# - starts dockerd in the background when `docker info` does not answer yet, with
#   --bridge=none (no default bridge on a range that is not ours: each session gets a network
#   of its own, cut from 10.231.0.0/16) and its iptables rules on, which drop traffic between
#   two bridge networks and out of internal ones (the sessions' isolation); --ip-masq=false,
#   since no session network routes out in tests;
# - restarts an engine that an earlier run started with --iptables=false (no isolation);
# - waits (at most DOCKER_START_TIMEOUT seconds, 60 by default) until `docker info` answers.
#
# Log: $DOCKERD_LOG (default /var/log/dockerd.log).
set -euo pipefail

timeout_s=${DOCKER_START_TIMEOUT:-60}
log=${DOCKERD_LOG:-/var/log/dockerd.log}
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" -ne 0 ]; then
  echo "start-docker.sh: must run as root (it installs packages and starts dockerd)" >&2
  exit 1
fi

need_apt=()
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "start-docker.sh: installing ${need_apt[*]} from Debian"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
  if pgrep -a -x dockerd | grep -q -- '--iptables=false'; then
    echo "start-docker.sh: the running engine has no iptables rules (no isolation between sessions); restarting it"
    pkill -x dockerd
    for _ in $(seq 30); do pgrep -x dockerd >/dev/null || break; sleep 1; done
  else
    echo "start-docker.sh: the Docker engine already answers"
    exit 0
  fi
fi

if pgrep -x dockerd >/dev/null 2>&1; then
  echo "start-docker.sh: dockerd is running but not answering yet; waiting for it"
else
  mkdir -p "$(dirname "$log")"
  echo "start-docker.sh: starting dockerd (log: $log)"
  # setsid + nohup: the engine outlives this script and the shell that ran it.
  setsid nohup dockerd --bridge=none --ip-masq=false >>"$log" 2>&1 </dev/null &
fi

start=$SECONDS
until docker info >/dev/null 2>&1; do
  if [ $((SECONDS - start)) -ge "$timeout_s" ]; then
    echo "start-docker.sh: ERROR: the Docker engine did not answer 'docker info' within ${timeout_s}s." >&2
    echo "start-docker.sh: last lines of $log:" >&2
    tail -n 20 "$log" >&2 2>/dev/null || true
    exit 1
  fi
  sleep 1
done
echo "start-docker.sh: the Docker engine answers after $((SECONDS - start))s" \
  "(server $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"

# shellcheck shell=bash disable=SC2034
# lib.sh - settings and helpers shared by build.sh, up.sh and down.sh (sourced, not run).
# Every name the cluster puts on the host starts with "ktc" (k8s test cluster); every address it uses
# is on loopback (127.0.0.0/8) or in 10.231.0.0/16.

K8S_VERSION=v1.20.2
K8S_DEB_VERSION=${K8S_DEB_VERSION:-1.20.5+really1.20.2-1.1+deb12u1}  # Debian 12 source package "kubernetes"
REFLECT2_DEB_VERSION=1.0.2-2           # golang-github-modern-go-reflect2-dev, replaces vendored 1.0.1
KUBERNETES_ASYNCIO_VERSION=36.1.0      # for fake_kubelet.py

# Outside the clone, so that every checkout and CI run on a machine reuses one build.
CACHE=${CACHE:-${BACKENDAI_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jupyter-backendai-k8s}}
RUN=${RUN:-$CACHE/run}                 # PKI, etcd data, kubelet dirs, logs, PID files, host-state records
BIN=$CACHE/bin/$K8S_VERSION
VENV=$CACHE/venv
STATE=$RUN/state                       # what the host looked like before up.sh changed it
PAUSE_IMAGE=k8s-test-cluster/pause:3.2 # built offline by build.sh; never pulled

ETCD_PORT=${ETCD_PORT:-12379}; ETCD_PEER_PORT=${ETCD_PEER_PORT:-12380}
API_PORT=${API_PORT:-16443}; SCHED_PORT=${SCHED_PORT:-10259}; KCM_PORT=${KCM_PORT:-10257}

NET=10.231.0.0/16                      # nodes and pods; nothing is routed beyond it
NODE_BR=ktc-br0 HOST_IP=10.231.2.1     # node bridge; node1's IP is the host side of it
KTC_RUNDIR=/run/ktc                    # node2's mount-namespace file, its engine's socket and exec-root
NODE2_SOCK=$KTC_RUNDIR/node2-docker.sock

# host-wide settings that the kubelet (setupKernelTunables) and the CNI bridge plugin (ip_forward) may
# change; up.sh records them and down.sh restores them
HOST_SYSCTLS="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys
  kernel.keys.root_maxbytes net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables"

KUBECTL=${KUBECTL:-$(command -v kubectl || echo "$BIN/kubectl")}
export KUBECONFIG=$RUN/kubeconfig
kc() { "$KUBECTL" --cache-dir="$RUN/kubectl-cache" "$@"; }   # kubectl, without writing to ~/.kube

node_vars() {  # node_vars node1|node2 : the per-node settings used by up.sh and down.sh
  NAME=$1 NR=$RUN/$1 CGROOT=/ktc-$1
  case $1 in
    node1) NETNS='' NODE_IP=$HOST_IP POD_CIDR=10.231.64.0/24 POD_GW=10.231.64.1 CNI_BR=ktc-cni1
           DOCKER_SOCK=/var/run/docker.sock APISERVER=https://127.0.0.1:$API_PORT ;;
    node2) NETNS=ktc-node2 NODE_IP=10.231.2.12 POD_CIDR=10.231.65.0/24 POD_GW=10.231.65.1 CNI_BR=ktc-cni2
           DOCKER_SOCK=$NODE2_SOCK APISERVER=https://$HOST_IP:$API_PORT ;;
    *) echo "unknown node $1" >&2; return 2 ;;
  esac
}

T0=${T0:-${EPOCHREALTIME/./}}; export T0
log() {  # log MSG : "[script  12.3s] MSG", seconds since the outermost script started
  local us=$(( ${EPOCHREALTIME/./} - T0 ))
  printf '[%s %3d.%ds] %s\n' "${LOG_TAG:-$(basename "$0" .sh)}" $((us / 1000000)) $((us / 100000 % 10)) "$*"
}
wait_for() {  # wait_for SECONDS DESCRIPTION CMD... : poll CMD every 0.2 s
  local t=$1 desc=$2; shift 2
  for _ in $(seq 1 $((t * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "timeout after ${t}s waiting for $desc" >&2; return 1
}
alive() {  # alive PIDFILE PATTERN : the recorded PID still runs and its command line matches
  local p; [ -f "$1" ] && p=$(cat "$1") && [ -n "$p" ] && [ -r "/proc/$p/cmdline" ] \
    && tr '\0' ' ' < "/proc/$p/cmdline" | grep -qF -- "$2"
}
stop_pid() {  # stop_pid PIDFILE PATTERN [PIDFILE PATTERN]... : SIGTERM each recorded process that is
  local pids=() p left                # still ours (alive), wait for all, SIGKILL what is left after 15 s
  while [ $# -ge 2 ]; do
    if alive "$1" "$2"; then p=$(cat "$1"); kill "$p" 2>/dev/null && pids+=("$p"); fi
    rm -f "$1"; shift 2
  done
  for _ in $(seq 1 75); do
    left=0; for p in "${pids[@]}"; do [ -d "/proc/$p" ] && left=1; done
    [ $left = 0 ] && return 0
    sleep 0.2
  done
  for p in "${pids[@]}"; do [ -d "/proc/$p" ] && kill -9 "$p" 2>/dev/null && echo "  killed $p after 15 s"; done
  return 0
}
copy_image() {  # copy_image IMAGE DOCKER_SOCK : docker save | load from the host engine, unless the same
  # image (by ID: a rebuilt tag must be copied again) is there already
  local want; want=$(docker image inspect -f '{{.Id}}' "$1") || return 1
  [ "$(docker -H "unix://$2" image inspect -f '{{.Id}}' "$1" 2>/dev/null)" = "$want" ] && return 0
  log "copying image $1 into the engine at $2 (docker save | docker load)"
  docker save "$1" | docker -H "unix://$2" load -q >/dev/null
}

#!/usr/bin/env bash
# up.sh - a Kubernetes v1.20.2 cluster on this machine, for tests (testing/k8s/ runs it). Idempotent: with the same settings
# and everything running it only reports; with other settings it restarts the cluster (fresh etcd).
#   control plane  etcd + kube-apiserver + kube-scheduler + kube-controller-manager on 127.0.0.1
#   node1          real kubelet (dockershim) on the host's running Docker engine; node IP 10.231.2.1,
#                  pods 10.231.64.0/24 on CNI bridge ktc-cni1
#   node2          real kubelet + its own dockerd in network namespace ktc-node2 and a private mount
#                  namespace; node IP 10.231.2.12, pods 10.231.65.0/24
#   sim-node-N     simulated nodes (fake_kubelet.py): pods turn Running, nothing runs
# Env: REAL_NODES=1 (0-2)  SIM_NODES=0  SIM_NODES_JSON=file  SIM_KUBELET_ARGS="--capacity ... --labels ..."
#      NODE_GRACE (controller-manager --node-monitor-grace-period: 10s with real nodes, else 8760h)
#      IMAGES="img ..." (copied from the host engine into node2's engine)  CNI=1 (0: hostNetwork pods only)
#      CACHE, RUN, ETCD_PORT, ETCD_PEER_PORT, API_PORT, SCHED_PORT, KCM_PORT (see lib.sh)
# Then: export KUBECONFIG=$RUN/kubeconfig (printed at the end). ./down.sh undoes everything.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
REAL_NODES=${REAL_NODES:-1} SIM_NODES=${SIM_NODES:-0} SIM_NODES_JSON=${SIM_NODES_JSON:-}
SIM_KUBELET_ARGS=${SIM_KUBELET_ARGS:-} CNI=${CNI:-1} IMAGES=${IMAGES:-}
if [ "$REAL_NODES" -gt 0 ]; then NODE_GRACE=${NODE_GRACE:-10s}; else NODE_GRACE=${NODE_GRACE:-8760h}; fi
case $REAL_NODES in 0|1|2) ;; *) echo "REAL_NODES must be 0, 1 or 2" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "up.sh: run as root" >&2; exit 1; }
if [ "$REAL_NODES" -gt 0 ]; then
  [ "$(stat -fc %T /sys/fs/cgroup)" = tmpfs ] || { echo "up.sh: real nodes need cgroup v1" >&2; exit 1; }
  [ "$(docker info -f '{{.CgroupDriver}}' 2>/dev/null)" = cgroupfs ] \
    || { echo "up.sh: real nodes need the host's Docker engine running, with the cgroupfs driver" >&2; exit 1; }
fi
NODES=$(seq -f 'node%g' 1 "$REAL_NODES" | tr '\n' ' ')

if [ "${SKIP_BUILD:-0}" = 1 ]; then   # the test fixture: building takes minutes, CI builds beforehand
  for b in kube-apiserver kube-scheduler kube-controller-manager kubelet; do
    [ -x "$BIN/$b" ] || { echo "up.sh: $BIN/$b is missing: run $HERE/build.sh" >&2; exit 3; }; done
  [ -f "$CACHE/pause/pause.tar" ] && "$VENV/bin/python" -c 'import kubernetes_asyncio' 2>/dev/null \
    || { echo "up.sh: the pause image or the venv is missing: run $HERE/build.sh" >&2; exit 3; }
else
  "$HERE/build.sh" | sed 's/^/  /'
fi

# ================================================================ control plane
PKI=$RUN/pki
sign() {  # sign NAME SUBJECT EXTENSIONS : a key + certificate signed by our CA, in $PKI
  (cd "$PKI" && openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null \
     && printf '%b' "$3" > "$1.ext" \
     && openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 3650 \
          -extfile "$1.ext" 2>/dev/null && rm -f "$1.csr" "$1.ext" && chmod 600 "$1.key")
}
make_pki() {  # once per $RUN: CA, apiserver serving cert, kubelet-client cert, SA keys, admin token, node certs
  [ -f "$PKI/node2.crt" ] && return 0
  log "generating the CA, certificates, service-account keys and the admin token"
  rm -rf "$PKI"; mkdir -p "$PKI"
  (cd "$PKI" && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
     -subj /CN=k8s-test-cluster-ca 2>/dev/null && openssl genrsa -out sa.key 2048 2>/dev/null \
     && openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null \
     && echo "$(openssl rand -hex 24),admin,admin-uid,\"system:masters\"" > tokens.csv && chmod 600 ca.key sa.key tokens.csv)
  # 10.231.128.1: the "kubernetes" Service IP; $HOST_IP: how node2 reaches the apiserver
  sign apiserver /CN=kube-apiserver "subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.231.128.1,IP:$HOST_IP\nextendedKeyUsage=serverAuth\n"
  sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" 'extendedKeyUsage=clientAuth\n'
  for n in node1 node2; do sign "$n" "/O=system:nodes/CN=system:node:$n" 'extendedKeyUsage=clientAuth\n'; done
}
write_kubeconfig() {  # write_kubeconfig FILE SERVER USER-YAML
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: k8s-test-cluster
  cluster: {server: "$2", certificate-authority: "$PKI/ca.crt"}
users:
- name: user
  user: $3
contexts:
- name: k8s-test-cluster
  context: {cluster: k8s-test-cluster, user: user, namespace: default}
current-context: k8s-test-cluster
EOF
  chmod 600 "$1"
}
start() {  # start NAME CMD... : in the background, log in $RUN/logs/NAME.log, PID in $RUN/pids/NAME.pid
  local name=$1; shift
  nohup "$@" > "$RUN/logs/$name.log" 2>&1 &
  echo $! > "$RUN/pids/$name.pid"
}
cp_alive() {
  alive "$RUN/pids/etcd.pid" "$RUN/etcd" && alive "$RUN/pids/kube-apiserver.pid" "$BIN/kube-apiserver" \
    && alive "$RUN/pids/kube-scheduler.pid" "$BIN/kube-scheduler" \
    && alive "$RUN/pids/kube-controller-manager.pid" "$BIN/kube-controller-manager" \
    && kc get --raw /readyz >/dev/null 2>&1
}
control_plane_up() {
  mkdir -p "$RUN"/{logs,pids}
  for p in $ETCD_PORT $ETCD_PEER_PORT $API_PORT $SCHED_PORT $KCM_PORT; do
    ! ss -Hltn "sport = :$p" | grep -q . || { echo "up.sh: port $p is in use; set *_PORT (lib.sh)" >&2; exit 1; }
  done
  make_pki
  write_kubeconfig "$RUN/kubeconfig" "https://127.0.0.1:$API_PORT" "{token: \"$(cut -d, -f1 "$PKI/tokens.csv")\"}"
  local grace_s; grace_s=$(duration_s "$NODE_GRACE")
  local startup=60s; [ "$grace_s" -gt 60 ] && startup=$NODE_GRACE

  rm -rf "$RUN/etcd"
  log "starting etcd (127.0.0.1:$ETCD_PORT, fresh data dir)"
  start etcd etcd --name ktc --data-dir "$RUN/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "ktc=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state new \
    --quota-backend-bytes 4294967296 --snapshot-count 100000
  wait_for 30 etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"

  log "starting kube-apiserver (https://127.0.0.1:$API_PORT)"
  start kube-apiserver "$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --secure-port "$API_PORT" --advertise-address 127.0.0.1 --insecure-port 0 \
    --endpoint-reconciler-type none --service-cluster-ip-range 10.231.128.0/24 \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" --token-auth-file "$PKI/tokens.csv" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" --kubelet-preferred-address-types InternalIP \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --authorization-mode RBAC --allow-privileged=true \
    --max-requests-inflight 1000 --max-mutating-requests-inflight 500 --profiling=false --event-ttl 1h --v 1
  wait_for 90 "kube-apiserver /readyz" kc get --raw /readyz

  log "starting kube-scheduler and kube-controller-manager (node-monitor-grace-period $NODE_GRACE)"
  start kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$RUN/kubeconfig" \
    --authentication-kubeconfig "$RUN/kubeconfig" --authorization-kubeconfig "$RUN/kubeconfig" \
    --leader-elect=false --port 0 --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" \
    --kube-api-qps 500 --kube-api-burst 1000 --profiling=false --v 1
  start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig "$RUN/kubeconfig" \
    --authentication-kubeconfig "$RUN/kubeconfig" --authorization-kubeconfig "$RUN/kubeconfig" \
    --leader-elect=false --port 0 --bind-address 127.0.0.1 --secure-port "$KCM_PORT" \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --use-service-account-credentials=false --controllers '*' --flex-volume-plugin-dir "$RUN/flexvolume" \
    --node-monitor-period 1s --node-monitor-grace-period "$NODE_GRACE" \
    --node-startup-grace-period "$startup" --pod-eviction-timeout "$startup" \
    --kube-api-qps 500 --kube-api-burst 1000 --profiling=false --v 1
  wait_for 60 "the default service account" kc get serviceaccount default -n default
  wait_for 30 "kube-scheduler /healthz" curl -skf "https://127.0.0.1:$SCHED_PORT/healthz"
  wait_for 30 "kube-controller-manager /healthz" curl -skf "https://127.0.0.1:$KCM_PORT/healthz"
  # kubelets log in as system:node:<name> (group system:nodes); RBAC is the only authorizer, so the
  # bootstrap ClusterRole system:node is bound to that group (no Node authorizer/NodeRestriction)
  kc apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: k8s-test-cluster-nodes}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:node"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "system:nodes"}]
EOF
}
duration_s() {  # 10s / 5m / 8760h -> seconds
  case $1 in *h) echo $(( ${1%h} * 3600 )) ;; *m) echo $(( ${1%m} * 60 )) ;; *s) echo "${1%s}" ;; *) echo "$1" ;; esac
}

# ================================================================ host pieces shared by the real nodes
record_host_state() {  # once per up..down cycle: what down.sh restores
  mkdir -p "$STATE"
  [ -f "$STATE/sysctl" ] || for s in $HOST_SYSCTLS; do
    v=$(sysctl -n "$s" 2>/dev/null) && echo "$s=$v"; done > "$STATE/sysctl"
  [ -f "$STATE/dockerd-oom" ] || { p=$(cat /var/run/docker.pid) && echo "$p $(cat "/proc/$p/oom_score_adj")"; } > "$STATE/dockerd-oom"
  for d in /var/log/pods /var/log/containers /var/lib/kubelet /var/lib/kubelet/device-plugins /run/netns; do
    f=$STATE/existed${d//\//_}; [ -f "$f" ] || { [ -e "$d" ] && echo 1 || echo 0; } > "$f"
  done
  [ -f "$STATE/netns-mounted" ] || { mountpoint -q /run/netns && echo 1 || echo 0; } > "$STATE/netns-mounted"
  [ -f "$STATE/route-unreachable" ] || { ip route show "$NET" | grep -q . && echo 1 || echo 0; } > "$STATE/route-unreachable"
}
ipt() {  # ipt CHAIN MATCH... [-j TARGET] : insert the rule once, tagged with our comment
  local chain=$1; shift
  local args=("$@") target=()
  if [ $# -ge 2 ] && [ "${args[$# - 2]}" = -j ]; then target=(-j "${args[$# - 1]}"); args=("${args[@]:0:$# - 2}"); fi
  iptables -C "$chain" "${args[@]}" -m comment --comment k8s-test-cluster "${target[@]}" 2>/dev/null \
    || iptables -I "$chain" "${args[@]}" -m comment --comment k8s-test-cluster "${target[@]}"
}
host_net_up() {
  ip link show $NODE_BR >/dev/null 2>&1 \
    || { ip link add $NODE_BR type bridge; ip addr add $HOST_IP/24 dev $NODE_BR; ip link set $NODE_BR up; }
  # anything in 10.231.0.0/16 without a more specific route (e.g. Service IPs: no kube-proxy) fails
  # here instead of following the default route off the machine
  ip route show "$NET" | grep -q . || ip route add unreachable "$NET"
  ipt FORWARD -s "$NET" ! -d "$NET" -j DROP            # pods never reach beyond 10.231.0.0/16
  ipt FORWARD -i $NODE_BR -o $NODE_BR -j ACCEPT
  ipt OUTPUT -d 169.254.169.254/32                     # a counter only: down.sh reports it (must be 0)
}
cgroup_root_up() {  # kubelet --cgroup-root must exist in every v1 hierarchy
  local h
  for h in /sys/fs/cgroup/*/; do
    [ "$(basename "$h")" = unified ] && continue
    mkdir -p "$h$CGROOT"
    if [ "$(basename "$h")" = cpuset ]; then
      [ -n "$(cat "$h$CGROOT/cpuset.cpus")" ] || cat "$h/cpuset.cpus" > "$h$CGROOT/cpuset.cpus"
      [ -n "$(cat "$h$CGROOT/cpuset.mems")" ] || cat "$h/cpuset.mems" > "$h$CGROOT/cpuset.mems"
    fi
  done
}
import_pause() {  # import_pause DOCKER_SOCK : our offline pause image into that engine (once)
  docker -H "unix://$1" image inspect "$PAUSE_IMAGE" >/dev/null 2>&1 && return 0
  docker -H "unix://$1" import --change 'ENTRYPOINT ["/pause"]' "$CACHE/pause/pause.tar" "$PAUSE_IMAGE" >/dev/null
  # in the host's engine down.sh removes exactly the image imported here
  [ "$1" = /var/run/docker.sock ] && docker image inspect -f '{{.Id}}' "$PAUSE_IMAGE" > "$STATE/pause-image-id"
  return 0
}

# ================================================================ node2's namespaces and engine
node2_env_up() {
  local MNT=$KTC_RUNDIR/node2.mnt
  ip netns list | grep -qw "$NETNS" || ip netns add "$NETNS"
  if ! ip link show ktc-v2 >/dev/null 2>&1; then
    ip link add ktc-v2 type veth peer name eth0 netns "$NETNS"
    ip link set ktc-v2 master $NODE_BR up
    ip -n "$NETNS" addr add "$NODE_IP/24" dev eth0
    ip -n "$NETNS" link set eth0 up; ip -n "$NETNS" link set lo up
    ip -n "$NETNS" route add "$NET" via $HOST_IP                # no default route
  fi
  ip route show "$POD_CIDR" | grep -q . || ip route add "$POD_CIDR" via "$NODE_IP"
  # Own mount namespace: kubelet 1.20 hard-codes /var/log/pods, /var/log/containers and
  # /var/lib/kubelet/device-plugins; two kubelets sharing them delete each other's pod logs.
  # The namespace file lives on a private bind mount of /run/ktc (unshare refuses shared mounts).
  mkdir -p $KTC_RUNDIR
  mountpoint -q $KTC_RUNDIR || { mount --bind $KTC_RUNDIR $KTC_RUNDIR; mount --make-private $KTC_RUNDIR; }
  if ! nsenter --mount="$MNT" true 2>/dev/null; then
    mkdir -p "$NR"/varlog/{pods,containers} "$NR/device-plugins" /var/log/pods /var/log/containers /var/lib/kubelet/device-plugins
    touch "$MNT"; unshare --mount="$MNT" --propagation private true
    nsenter --mount="$MNT" -- sh -c "mount --bind '$NR/varlog/pods' /var/log/pods \
      && mount --bind '$NR/varlog/containers' /var/log/containers \
      && mount --bind '$NR/device-plugins' /var/lib/kubelet/device-plugins"
    if [ -S /run/containerd/containerd.sock ]; then   # else node2's dockerd would share the host's containerd
      mkdir -p "$NR/run-containerd"; nsenter --mount="$MNT" -- mount --bind "$NR/run-containerd" /run/containerd
    fi
  fi
  alive "$NR/pids/socat.pid" "TCP-LISTEN:$API_PORT,bind=$HOST_IP" || {   # node2 -> apiserver
    nohup socat "TCP-LISTEN:$API_PORT,bind=$HOST_IP,reuseaddr,fork" "TCP:127.0.0.1:$API_PORT" > "$NR/logs/socat.log" 2>&1 &
    echo $! > "$NR/pids/socat.pid"; }
  if ! docker -H "unix://$DOCKER_SOCK" info >/dev/null 2>&1; then
    log "starting node2's dockerd (data-root $CACHE/docker-node2)"
    mkdir -p "$CACHE/docker-node2"
    nohup nsenter --net="/run/netns/$NETNS" --mount="$MNT" -- dockerd --data-root "$CACHE/docker-node2" \
      --exec-root $KTC_RUNDIR/node2-docker --pidfile $KTC_RUNDIR/node2-docker.pid -H "unix://$DOCKER_SOCK" \
      --bridge=none --iptables=false --ip-masq=false > "$NR/logs/dockerd.log" 2>&1 &
    echo $! > "$NR/pids/dockerd.pid"
    wait_for 60 "node2's dockerd" docker -H "unix://$DOCKER_SOCK" info
  fi
  for img in $IMAGES; do copy_image "$img" "$DOCKER_SOCK"; done
}

# ================================================================ a real node
node_up() {
  node_vars "$1"; local LOG_TAG=$NAME
  if alive "$NR/pids/kubelet.pid" "--root-dir=$NR/kubelet"; then log "kubelet already running"; return 0; fi
  mkdir -p "$NR"/{pids,logs}
  record_host_state
  host_net_up
  if [ "$NAME" = node2 ]; then node2_env_up; fi
  import_pause "$DOCKER_SOCK"
  cgroup_root_up
  write_kubeconfig "$NR/kubeconfig" "$APISERVER" "{client-certificate: \"$PKI/$NAME.crt\", client-key: \"$PKI/$NAME.key\"}"
  printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' > "$RUN/pod-resolv.conf"   # no DNS for pods
  cat > "$NR/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: "$PKI/ca.crt"}}
authorization: {mode: Webhook}
address: "$NODE_IP"
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
cgroupDriver: cgroupfs
cgroupRoot: "$CGROOT"            # each kubelet owns only /ktc-nodeN/kubepods in every hierarchy
failSwapOn: false
nodeLeaseDurationSeconds: 8      # renewed every 2 s; the controller-manager waits NODE_GRACE
nodeStatusUpdateFrequency: 2s
imageGCHighThresholdPercent: 100 # never delete the engine's images
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi"}   # no nodefs/imagefs eviction (it deletes images)
makeIPTablesUtilChains: false
resolvConf: "$RUN/pod-resolv.conf"
volumePluginDir: "$NR/volume-plugins"
maxPods: 50
podPidsLimit: 4096               # a pod's pids limit is the kubelet's (sessions: DEFAULT_PIDS_LIMIT)
EOF
  local net=()
  if [ "$CNI" = 1 ]; then
    mkdir -p "$NR/cni/net.d"
    cat > "$NR/cni/net.d/10-ktc.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "ktc-$NAME", "plugins": [
  {"type": "bridge", "bridge": "$CNI_BR", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$NR/cni/ipam", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GW"}]],
            "routes": [{"dst": "$NET"}]}}]}
EOF
    net=(--network-plugin=cni --cni-conf-dir="$NR/cni/net.d" --cni-bin-dir=/usr/lib/cni --cni-cache-dir="$NR/cni/cache")
  fi
  local nsx=() extra=()
  if [ -n "$NETNS" ]; then
    nsx=(nsenter --net="/run/netns/$NETNS" --mount="$KTC_RUNDIR/node2.mnt" --)
    extra=(--docker="unix://$DOCKER_SOCK")                        # cAdvisor's view of the engine
  fi
  log "starting kubelet (engine $DOCKER_SOCK, node IP $NODE_IP, CNI=$CNI)"
  local since; since=$(date -u -d @$(( $(date +%s) - 1 )) +%Y-%m-%dT%H:%M:%SZ)
  # AWS_EC2_METADATA_DISABLED=true is REQUIRED: kubelet 1.20 links the AWS credential provider even
  # with -tags providerless, and its startup probe would contact 169.254.169.254
  nohup "${nsx[@]}" env AWS_EC2_METADATA_DISABLED=true "$BIN/kubelet" \
    --config="$NR/kubelet-config.yaml" --kubeconfig="$NR/kubeconfig" \
    --hostname-override="$NAME" --node-ip="$NODE_IP" --node-labels="k8s-test-cluster/node=$NAME" \
    --root-dir="$NR/kubelet" --cert-dir="$NR/kubelet/pki" \
    --container-runtime=docker --docker-endpoint="unix://$DOCKER_SOCK" \
    --container-runtime-endpoint="unix://$NR/dockershim.sock" \
    --experimental-dockershim-root-directory="$NR/dockershim" --pod-infra-container-image="$PAUSE_IMAGE" \
    "${net[@]}" "${extra[@]}" --v=2 > "$NR/logs/kubelet.log" 2>&1 &
  echo $! > "$NR/pids/kubelet.pid"
  # Ready, untainted, and a heartbeat from THIS kubelet (the Node may be left from an earlier start)
  node_ready() { kc get node "$NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastHeartbeatTime} {.spec.taints}' \
    | awk -v s="$since" '$1 == "True" && $2 >= s && NF == 2 {ok = 1} END {exit !ok}'; }
  wait_for 120 "node $NAME Ready" node_ready || { tail -20 "$NR/logs/kubelet.log"; exit 1; }
  log "Ready"
}

# ================================================================ simulated nodes
sim_up() {
  [ "$SIM_NODES" -gt 0 ] || [ -n "$SIM_NODES_JSON" ] || return 0
  if alive "$RUN/pids/fake-kubelet.pid" fake_kubelet.py; then log "fake_kubelet.py already running"; return 0; fi
  local hb; hb=$(awk -v g="$(duration_s "$NODE_GRACE")" 'BEGIN {print g / 4}')
  log "starting fake_kubelet.py: $SIM_NODES simulated nodes${SIM_NODES_JSON:+ + $SIM_NODES_JSON}, lease every ${hb}s"
  rm -f "$RUN/fake-kubelet.ready"
  # shellcheck disable=SC2086
  start fake-kubelet "$VENV/bin/python" -u "$HERE/fake_kubelet.py" --kubeconfig "$RUN/kubeconfig" \
    --count "$SIM_NODES" ${SIM_NODES_JSON:+--nodes-json "$SIM_NODES_JSON"} --heartbeat "$hb" \
    --ready-file "$RUN/fake-kubelet.ready" $SIM_KUBELET_ARGS
  wait_for 600 "simulated nodes" test -f "$RUN/fake-kubelet.ready" || { tail "$RUN/logs/fake-kubelet.log"; exit 1; }
  # the controller-manager lifts the not-ready taint that admission puts on every new node
  untainted() { ! kc get nodes -l k8s-test-cluster/simulated=true \
      -o jsonpath='{range .items[*]}{.spec.taints[*].key}{"\n"}{end}' | grep -q node.kubernetes.io/not-ready; }
  wait_for 300 "simulated nodes to become schedulable" untainted
  log "$(cat "$RUN/fake-kubelet.ready") simulated nodes Ready"
}

# ================================================================ main
config="REAL_NODES=$REAL_NODES SIM_NODES=$SIM_NODES SIM_NODES_JSON=$SIM_NODES_JSON SIM_KUBELET_ARGS=$SIM_KUBELET_ARGS NODE_GRACE=$NODE_GRACE CNI=$CNI"
if cp_alive && [ "$(cat "$RUN/config" 2>/dev/null)" = "$config" ]; then
  log "control plane already running"
else
  "$HERE/down.sh" | sed 's/^/  /'            # nodes of an earlier etcd must start again too
  control_plane_up
  echo "$config" > "$RUN/config"
fi
for n in $NODES; do node_up "$n"; done
sim_up
kc get nodes -o wide 2>/dev/null | sed 's/^/  /'
log "up. export KUBECONFIG=$RUN/kubeconfig   (stop: $HERE/down.sh)"

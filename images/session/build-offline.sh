#!/usr/bin/env bash
# Build the session image without any container registry (no `docker pull`, no remote FROM).
#
#   images/session/build-offline.sh [TAG]          (TAG default: $SESSION_IMAGE or
#                                                   jupyter-backendai-session:local)
#
# Needs: root, a running Docker engine (.ci/start-docker.sh), debootstrap, the Debian mirror
# that apt is configured with, and PyPI. It makes the same image as ./Dockerfile:
#
#   1. rootfs   debootstrap bookworm (minbase) with packages.txt + python3, python3-venv.
#               Cached as a directory under $SESSION_BUILD_CACHE, keyed by the package list.
#   2. base     a copy of that rootfs; chroot: venv at /opt/venv, pip install of
#               requirements.txt and the project's dependencies (pyproject.toml), user
#               `work` (uid 1000); caches cleaned; `tar | docker import` as
#               jupyter-backendai-session-base:<base hash>. Reused while its inputs match.
#   3. image    the project's wheel (`pip wheel --no-deps` of the repo, on the host), then a
#               `docker build --network none` FROM the base: files/ copied to /, the wheel
#               installed (--no-deps --no-index), the Dockerfile's LABEL lines, USER work,
#               WORKDIR /home/work.
#
# Reuse: a hash of all inputs (requirements.txt, packages.txt, this script, the Dockerfile's
# LABEL lines, files/, the project sources under jupyter_backendai/, pyproject.toml,
# setup.cfg, README.md) is stored in the image label org.jupyter-backendai.inputs-hash; when an image
# with that label exists, nothing is built (it is only tagged as TAG). A source change only
# redoes step 3 (seconds); a requirements change redoes steps 2-3; a package change all.
#
# Environment: SESSION_IMAGE (tag), SESSION_BASE_IMAGE (base repository name),
# SESSION_BUILD_CACHE (work dir, default /var/tmp/jupyter-backendai-session),
# SESSION_DEBIAN_MIRROR (default: read from apt's configuration), SESSION_FORCE_REBUILD=1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
script="$here/$(basename "${BASH_SOURCE[0]}")"

tag=${1:-${SESSION_IMAGE:-jupyter-backendai-session:local}}
base_repo=${SESSION_BASE_IMAGE:-jupyter-backendai-session-base}
cache=${SESSION_BUILD_CACHE:-/var/tmp/jupyter-backendai-session}
suite=bookworm
hash_label=org.jupyter-backendai.inputs-hash
base_label=org.jupyter-backendai.base-hash
# Debian packages that the python base image of the Dockerfile has already.
offline_packages=(python3 python3-venv)

t_start=$EPOCHREALTIME
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[build-offline %6ss] %s\n' "$(since "$t_start")" "$*"; }
die() { printf 'build-offline: ERROR: %s\n' "$*" >&2; exit 1; }
# step NAME CMD...: run CMD, print how long it took.
step() {
  local name=$1 t0 rc=0
  shift
  t0=$EPOCHREALTIME
  log "step $name ..."
  "$@" || rc=$?
  [ "$rc" -eq 0 ] || die "step $name failed (exit $rc)"
  log "step $name done in $(since "$t0")s"
}
sha() { sha256sum | cut -c1-64; }

# --- checks -----------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot)"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer; run .ci/start-docker.sh first"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap is missing; run .ci/start-docker.sh (it installs it)"
python3 -c 'import tomllib' 2>/dev/null || die "python3 >= 3.11 is needed on the host (tomllib)"

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9 # one build at a time per cache

# --- inputs and their hashes ------------------------------------------------------------
list_packages() { grep -vE '^[[:space:]]*(#|$)' "$here/packages.txt" | awk '{print $1}'; }
deb_packages=$( { list_packages; printf '%s\n' "${offline_packages[@]}"; } | sort -u | paste -sd, -)
labels=$(grep -E '^LABEL ' "$here/Dockerfile") || die "no LABEL lines in $here/Dockerfile"
project_deps=$(python3 -c '
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))' "$repo/pyproject.toml")

project_files() {
  (cd "$repo" && find jupyter_backendai -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum)
  (cd "$repo" && sha256sum pyproject.toml setup.cfg README.md)
  # The files the image gets as they are (with their modes).
  (cd "$here" && find files -type f -printf '%m %p\n' | LC_ALL=C sort && find files -type f -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum)
}

# --- step 1: the debootstrap rootfs -----------------------------------------------------
debian_mirror() {
  if [ -n "${SESSION_DEBIAN_MIRROR:-}" ]; then echo "$SESSION_DEBIAN_MIRROR"; return; fi
  # The archive that apt gets Debian's $suite/main from (origin Debian), as apt itself reports
  # it; else the first "URIs:"/"deb" entry of an active sources file that ends in /debian.
  {
    apt-cache policy 2>/dev/null | awk -v s="$suite/main" '
      $2 ~ /^[a-z]+:\/\// && $3 == s { url = $2; next }
      url != "" && /o=Debian,/ { print url; exit }
      { url = "" }'
    find /etc/apt -maxdepth 2 \( -name '*.list' -o -name '*.sources' \) -type f -exec cat {} + 2>/dev/null \
      | grep -oE '^(URIs:|deb) +[^ ]+' | awk '{print $2}' | grep -E '/debian/?$'
  } | head -n1
}
build_rootfs() {
  local dest=$1 mirror
  mirror=$(debian_mirror)
  [ -n "$mirror" ] || die "no Debian mirror found in apt's configuration (set SESSION_DEBIAN_MIRROR)"
  rm -rf "$dest.tmp"
  debootstrap --variant=minbase --include="$deb_packages" "$suite" "$dest.tmp" "$mirror" \
    >"$cache/debootstrap.log" 2>&1 || { tail -n 30 "$cache/debootstrap.log" >&2; return 1; }
  # Never ship the host keys made by openssh-server's postinst: every session would share
  # them. A session's sshd makes its own (README.md).
  rm -f "$dest.tmp"/etc/ssh/ssh_host_*
  rm -rf "$dest.tmp"/var/cache/apt/archives/*.deb "$dest.tmp"/var/lib/apt/lists/*
  mv "$dest.tmp" "$dest"
}

# --- step 2: the base image (rootfs + venv + user) ---------------------------------------
# chroot_env CMD...: run CMD in $root with a clean environment (no host pip configuration),
# the host's proxy settings passed through.
chroot_env() {
  local -a env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
    PIP_DEFAULT_TIMEOUT=120)
  local v
  for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -n "${!v:-}" ] && env+=("$v=${!v}")
  done
  env -i "${env[@]}" chroot "$root" "$@"
}
root=
build_base() {
  local rootfs=$1 image=$2 key=$3
  root="$cache/base.tmp"
  rm -rf "$root"
  cp -a "$rootfs" "$root"
  # pip needs DNS and the host's CA bundle (a proxy on the way may sign with a local CA);
  # both are put back afterwards so the image keeps Debian's own.
  cp -a "$root/etc/ssl/certs/ca-certificates.crt" "$cache/ca-certificates.crt.orig"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mkdir -p "$root/tmp/image"
  cp "$here/requirements.txt" "$root/tmp/image/requirements.txt"
  printf '%s\n' "$project_deps" >"$root/tmp/image/project-deps.txt"
  chroot_env sh -eu -c '
    python3 -m venv /opt/venv
    /opt/venv/bin/pip install -q --upgrade pip
    /opt/venv/bin/pip install -q -r /tmp/image/requirements.txt -r /tmp/image/project-deps.txt
    /opt/venv/bin/pip check >/dev/null || { /opt/venv/bin/pip check; exit 1; }
    useradd --create-home --uid 1000 --user-group --home-dir /home/work --shell /bin/bash work
    mkdir -p /run/sshd'
  cp -a "$cache/ca-certificates.crt.orig" "$root/etc/ssl/certs/ca-certificates.crt"
  : >"$root/etc/resolv.conf"
  rm -rf "$root/tmp/image" "$root/root/.cache" "$root/var/cache/apt/archives/"*.deb \
    "$root/var/lib/apt/lists/"* "$root/var/log/"*.log "$root/usr/share/doc" "$root/usr/share/man"
  tar --numeric-owner -C "$root" -c . | docker import \
    -c 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' -c 'ENV PYTHONUNBUFFERED=1' \
    -c "LABEL $base_label=$key" -m "jupyter-backendai session base ($key)" - "$image" >/dev/null
  rm -rf "$root"
}

# --- step 3: the project layer ----------------------------------------------------------
build_wheel() {
  rm -rf "$cache/wheel"
  mkdir -p "$cache/wheel"
  python3 -m pip wheel -q --no-deps --wheel-dir "$cache/wheel" "$repo" >"$cache/wheel.log" 2>&1 \
    || { cat "$cache/wheel.log" >&2; return 1; }
  ls "$cache/wheel"/*.whl >/dev/null
}
build_image() {
  local base=$1 key=$2 whl
  whl=$(basename "$cache"/wheel/*.whl)
  rm -rf "$cache/wheel/files"
  cp -a "$here/files" "$cache/wheel/files"
  {
    echo "FROM $base"
    echo "COPY files/ /"
    echo "COPY $whl /tmp/wheels/$whl"
    echo "RUN /opt/venv/bin/pip install -q --no-deps --no-index --no-cache-dir /tmp/wheels/$whl \\"
    echo " && /opt/venv/bin/pip check && rm -rf /tmp/wheels \\"
    # User site-packages on (the Dockerfile says why): `pip install --user` lands in ~/.local.
    echo " && sed -i 's/^include-system-site-packages = false\$/include-system-site-packages = true/' /opt/venv/pyvenv.cfg \\"
    echo " && grep -qx 'include-system-site-packages = true' /opt/venv/pyvenv.cfg"
    echo "ENV PATH=/home/work/.local/bin:/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    printf '%s\n' "$labels"
    echo "LABEL $hash_label=$key"
    echo "EXPOSE 8888 2200"
    echo "USER work"
    echo "WORKDIR /home/work"
    echo 'CMD ["jupyterhub-singleuser", "--ip=0.0.0.0", "--port=8888"]'
  } >"$cache/wheel/Dockerfile"
  # --network none: this step needs nothing from outside. The legacy builder is enough.
  DOCKER_BUILDKIT=0 docker build --network none --force-rm -t "$tag" "$cache/wheel" >"$cache/image.log" 2>&1 \
    || { cat "$cache/image.log" >&2; return 1; }
}

# --- main -------------------------------------------------------------------------------
# Each stage's key covers its inputs and the code that builds it (`declare -f`), so editing
# a stage's function redoes that stage; the final key covers this whole script.
rootfs_key=$( { echo "$suite minbase $deb_packages"; declare -f build_rootfs; } | sha)
base_key=$( { echo "$rootfs_key"; cat "$here/requirements.txt"; echo "$project_deps";
  declare -f build_base chroot_env; } | sha)
inputs_key=$( { echo "$base_key"; cat "$here/requirements.txt" "$here/packages.txt" "$script";
  echo "$labels"; project_files; } | sha)
log "inputs hash ${inputs_key:0:16} (base ${base_key:0:16}, rootfs ${rootfs_key:0:16}) -> $tag"

if [ "${SESSION_FORCE_REBUILD:-0}" != 1 ]; then
  existing=$(docker images -q --filter "label=$hash_label=$inputs_key" | head -n1)
  if [ -n "$existing" ]; then
    docker tag "$existing" "$tag"
    log "reuse: image $existing already has $hash_label=${inputs_key:0:16}; tagged $tag, nothing built"
    exit 0
  fi
fi

rootfs="$cache/rootfs-${rootfs_key:0:16}"
base_image="$base_repo:${base_key:0:16}"

if [ -d "$rootfs" ] && [ "${SESSION_FORCE_REBUILD:-0}" != 1 ]; then
  log "rootfs: reusing $rootfs"
elif docker image inspect "$base_image" >/dev/null 2>&1 && [ "${SESSION_FORCE_REBUILD:-0}" != 1 ]; then
  log "rootfs: not needed ($base_image exists)"
else
  # Older rootfs caches are of no further use.
  find "$cache" -maxdepth 1 -name 'rootfs-*' -type d ! -name "$(basename "$rootfs")" -exec rm -rf {} +
  rm -rf "$rootfs"
  log "rootfs: debootstrap $suite minbase + $deb_packages from $(debian_mirror)"
  step rootfs build_rootfs "$rootfs"
fi

if docker image inspect "$base_image" >/dev/null 2>&1 && [ "${SESSION_FORCE_REBUILD:-0}" != 1 ]; then
  log "base: reusing $base_image"
else
  step base build_base "$rootfs" "$base_image" "$base_key"
fi

step wheel build_wheel
log "wheel: $(basename "$cache"/wheel/*.whl)"
step image build_image "$base_image" "$inputs_key"

# Older builds: untagged final images of this script, then base images no image uses any more
# (`docker rmi` refuses a base that a tagged image still builds on).
for l in "$hash_label" "$base_label"; do
  docker images -q --filter dangling=true --filter "label=$l" | xargs -r docker rmi >/dev/null 2>&1 || true
done
docker images --format '{{.Repository}}:{{.Tag}}' "$base_repo" | grep -vxF "$base_image" \
  | xargs -r docker rmi >/dev/null 2>&1 || true

size=$(docker image inspect -f '{{.Size}}' "$tag")
log "built $tag ($(docker image inspect -f '{{.Id}}' "$tag" | cut -c8-19), $((size / 1000000)) MB)"

# Shared helpers for the substrate scripts: cache location, timing, mirrors read from this machine.
# shellcheck shell=bash
set -euo pipefail

K8SDNS_CACHE=${K8SDNS_CACHE:-/var/cache/pytest-k8sdns}
SUBSTRATE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export K8SDNS_CACHE SUBSTRATE_DIR
mkdir -p "$K8SDNS_CACHE"

# Go keeps its module and build caches inside the one cache folder.
export GOMODCACHE="$K8SDNS_CACHE/go/mod" GOCACHE="$K8SDNS_CACHE/go/build" GOFLAGS=-buildvcs=false
export CGO_ENABLED=${CGO_ENABLED:-0}

log() { printf '[substrate %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# step NAME FUNCTION: time a step and print it, so a run says where its minutes went.
step() {
  local name=$1; shift
  local t0=$SECONDS
  "$@"
  log "step $name: $((SECONDS - t0)) s"
}

# The Debian archive this machine is configured for (first URIs/deb line of its apt sources).
debian_mirror() {
  local uri
  uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -1 || true)
  fi
  [ -n "$uri" ] || die "no Debian archive in /etc/apt/sources.list*; configure apt first"
  printf '%s\n' "$uri"
}

# A content hash of the given strings/files: the key under which a built artefact is cached.
inputs_hash() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }

# The built Kubernetes binaries, and the images kubeadm will ask for by name: the one place their
# tags come from (no registry name is written into this project).
k8s_bin() { printf '%s\n' "$K8SDNS_CACHE/bin/kubernetes-$KUBERNETES_VERSION"; }
kubeadm_images() { "$(k8s_bin)/kubeadm" config images list --kubernetes-version "$KUBERNETES_VERSION" 2>/dev/null; }
kubeadm_image() { kubeadm_images | grep -E "/$1:" | head -1; }
# The node-cache binary, keyed by its version and its sources (substrate/node-cache).
nodecache_bin() {
  local d="$SUBSTRATE_DIR/node-cache"
  printf '%s/bin/node-cache-%s-%s\n' "$K8SDNS_CACHE" "$NODECACHE_VERSION" \
    "$(inputs_hash "$(cat "$d/go.mod" "$d/go.sum" "$d/main.go")")"
}

# rootfs_path NAME PACKAGES...: where the minbase Debian rootfs tarball with PACKAGES is cached
rootfs_path() {
  local name=$1; shift
  printf '%s/rootfs/%s-%s.tar\n' "$K8SDNS_CACHE" "$name" "$(inputs_hash "$DEBIAN_SUITE" "$@")"
}

# rootfs NAME PACKAGES...: build (or reuse) that tarball; prints its path
rootfs() {
  local name=$1; shift
  local tar; tar=$(rootfs_path "$name" "$@")
  if [ -f "$tar" ]; then log "reused $tar"; printf '%s\n' "$tar"; return; fi
  mkdir -p "$(dirname "$tar")"
  local IFS=,
  mmdebstrap --quiet --format=tar --variant=minbase --include="$*" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    "$DEBIAN_SUITE" "$tar.tmp" "$(debian_mirror)" >&2
  mv "$tar.tmp" "$tar"
  printf '%s\n' "$tar"
}

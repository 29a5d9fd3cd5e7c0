#!/usr/bin/env bash
# The NodeLocal DNSCache image, k8sdns/node-cache:$NODECACHE_VERSION: a minbase Debian rootfs with
# iptables/ip6tables (nft backend, as in the kind node, whose rules it must share) and iproute2,
# plus the node-cache binary substrate/build-go.sh made. It is not put into the node image: the
# plugin loads it with `kind load docker-image` when --k8sdns-kind-nodelocal is given. Prints the
# image name on stdout.
source "$(dirname "$0")/lib.sh"
source "$SUBSTRATE_DIR/versions.env"

BIN="$(nodecache_bin)/node-cache"
[ -x "$BIN" ] || die "no $BIN; run substrate/build-go.sh first"
IMAGE="k8sdns/node-cache:$NODECACHE_VERSION"
# The same packages, suite and cache key as build-node.sh's tools rootfs (kube-proxy's image), so
# the tarball is shared: iptables, nftables, conntrack, iproute2, kmod.
PACKAGES=(iptables nftables conntrack iproute2 kmod)
ROOTFS=$(rootfs_path tools "${PACKAGES[@]}")
KEYED="$IMAGE-$(inputs_hash "$BIN" "$ROOTFS" "$(sha256sum "$0" | cut -c1-16)")"

build_rootfs() { rootfs tools "${PACKAGES[@]}" >/dev/null; }

build_image() {
  # the keyed tag is the cache entry; the plain tag is what the plugin's default names
  if docker image inspect "$KEYED" >/dev/null 2>&1; then
    log "reused $KEYED"
  else
    local dir="$K8SDNS_CACHE/node-work/node-cache-root"
    rm -rf "$dir"; mkdir -p "$dir"; tar -C "$dir" -xf "$ROOTFS"
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*
    install -m 0755 "$BIN" "$dir/node-cache"
    # the backend must be nft, like the kind node's: rules of both kinds in one table do not mix
    chroot "$dir" update-alternatives --set iptables /usr/sbin/iptables-nft >/dev/null
    chroot "$dir" update-alternatives --set ip6tables /usr/sbin/ip6tables-nft >/dev/null
    tar -C "$dir" --numeric-owner -c . | docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENTRYPOINT ["/node-cache"]' - "$KEYED" >/dev/null
    rm -rf "$dir"
    log "built $KEYED ($(docker image inspect -f '{{.Size}}' "$KEYED" | awk '{printf "%.0f MB", $1/1e6}'))"
  fi
  docker tag "$KEYED" "$IMAGE"
}

step node-cache-rootfs build_rootfs
step node-cache-image build_image
printf '%s\n' "$IMAGE"

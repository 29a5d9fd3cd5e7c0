#!/usr/bin/env bash
# The peer-tool image k8sdns/dnsperf:<dnsperf version>: DNS-OARC's dnsperf and resperf from
# Debian's dnsperf package ($DEBIAN_SUITE), on a minbase rootfs that also has coreutils' `sleep`,
# so a pod can be kept running and the tools exec'd in it. Not part of substrate/build: the peer
# benchmark (benchmarks/, through benchmarks/peer_tools.py's argv builders) calls this script
# itself. The rootfs tarball is cached in $K8SDNS_CACHE/rootfs/ and the image carries its inputs
# in a label, so an unchanged second run only finds it. Prints the image tag as its last stdout line.
source "$(dirname "$0")/lib.sh"
source "$SUBSTRATE_DIR/versions.env"

REPO=k8sdns/dnsperf
LABEL=org.k8sdns.dnsperf-inputs
# coreutils is in minbase already; named so the `sleep` this image promises is an input
PACKAGES=(dnsperf coreutils)
# merged /usr by the mmdebstrap hook, as build-probes.sh does: the usrmerge package that lib.sh's
# `rootfs` gets pulls in perl (50 MB of a 128 MB image)
MMDEBSTRAP_OPTS=(
  --variant=minbase --mode=root --skip=output/dev --format=tar
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*'
  --customize-hook='rm -rf "$1"/var/log/*.log "$1"/var/log/apt/* "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old'
)
ROOTFS_KEY=$(inputs_hash "$DEBIAN_SUITE" "${PACKAGES[@]}" "${MMDEBSTRAP_OPTS[@]}")
ROOTFS="$K8SDNS_CACHE/rootfs/dnsperf-$ROOTFS_KEY.tar"
KEY=$(inputs_hash "$ROOTFS" "$(sha256sum "$SUBSTRATE_DIR/$(basename "$0")" | cut -c1-16)")
IMAGE=

# The tag of the image built from these inputs, if Docker has it.
find_image() {
  docker image ls --filter "label=$LABEL=$KEY" --format '{{.Repository}}:{{.Tag}}' \
    | grep -m1 "^$REPO:" || true
}

build_rootfs() {
  if [ -f "$ROOTFS" ]; then log "reused $ROOTFS"; return; fi
  local IFS=,
  mmdebstrap --quiet "${MMDEBSTRAP_OPTS[@]}" --include="${PACKAGES[*]}" \
    "$DEBIAN_SUITE" "$ROOTFS.tmp" "deb $(debian_mirror) $DEBIAN_SUITE main" >&2 \
    || die "mmdebstrap failed"
  mv "$ROOTFS.tmp" "$ROOTFS"
  log "rootfs $ROOTFS ($(du -h "$ROOTFS" | cut -f1))"
}

# dnsperf's upstream version from the rootfs's dpkg status (2.10.0-2 -> 2.10.0): the image tag
package_version() {
  local v
  v=$(tar -xOf "$ROOTFS" ./var/lib/dpkg/status \
    | awk '/^Package: /{p=$2} p=="dnsperf" && /^Version: /{print $2; exit}')
  [ -n "$v" ] || die "no dnsperf in $ROOTFS's dpkg status; remove it and run again"
  v=${v#*:}
  printf '%s\n' "${v%-*}"
}

import_image() {
  local old
  IMAGE="$REPO:$(package_version)"
  old=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL $LABEL=$KEY" \
    --change 'CMD ["sleep", "infinity"]' \
    "$ROOTFS" "$IMAGE" >/dev/null
  # the build from older inputs lost its tag; drop it unless a container still uses it
  if [ -n "$old" ]; then docker image rm "$old" >/dev/null 2>&1 || true; fi
  log "imported $IMAGE (inputs $KEY)"
}

# Both tools must start (their libraries load) and say their version. The check is the text of
# `-h`, not its exit status (0 in 2.10.0).
verify() {
  local out tool
  for tool in dnsperf resperf; do
    out=$(docker run --rm --network none "$IMAGE" "$tool" -h 2>&1 || true)
    grep -q "^Usage: $tool " <<<"$out" || die "$IMAGE: '$tool -h' printed no usage: $(head -3 <<<"$out")"
    log "$tool: $(grep -m1 -i 'version' <<<"$out" || echo 'no version line')"
  done
  docker run --rm --network none "$IMAGE" sleep 0 || die "$IMAGE has no working sleep"
  log "verified $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
}

mkdir -p "$K8SDNS_CACHE/rootfs"
exec 9>"$K8SDNS_CACHE/rootfs/.dnsperf.lock"
flock 9
IMAGE=$(find_image)
if [ -n "$IMAGE" ]; then
  log "reused $IMAGE (inputs $KEY)"
else
  step dnsperf-rootfs build_rootfs
  step dnsperf-image import_image
  step dnsperf-verify verify
fi
printf '%s\n' "$IMAGE"

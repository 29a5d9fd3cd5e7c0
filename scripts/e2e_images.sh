#!/usr/bin/env bash
# Build the two images the official e2e DNS tests start, with no container registry, under a local
# repository name (scripts/e2e_parity.py points e2e.test at it with KUBE_TEST_REPO_LIST):
#   REPO/jessie-dnsutils:TAG  Debian minbase rootfs with dnsutils (dig) and CoreDNS at /coredns
#   REPO/agnhost:TAG          the same rootfs plus /agnhost built from the Kubernetes module at the
#                             cluster's version; ENTRYPOINT /agnhost, CMD pause, as upstream's
# TAGs are read from that version's test/utils/image/manifest.go, so e2e.test asks for exactly
# these names. Upstream's agnhost is Alpine (musl); here both images are Debian (glibc): the DNS
# probes use dig, and only the /etc/hosts half goes through the libc (getent).
# Usage: scripts/e2e_images.sh K8S_VERSION WRAPPER_SRC_DIR REPO
#   WRAPPER_SRC_DIR: the Go wrapper module scripts/e2e_parity.py made (it requires k8s.io/kubernetes)
# Prints the two image names on stdout, one a line.
source "$(dirname "$0")/../substrate/lib.sh"
source "$SUBSTRATE_DIR/versions.env"

[ $# -eq 3 ] || die "usage: $0 K8S_VERSION WRAPPER_SRC_DIR REPO (e.g. v1.34.4 /var/cache/pytest-k8sdns/e2e/v1.34.4/src k8sdns.local/e2e)"
VERSION=$1 SRC=$2 REPO=$3
[ -f "$SRC/go.mod" ] || die "no wrapper module at $SRC/go.mod; run scripts/e2e_parity.py, which makes it"
GO=${GO:-/usr/local/go/bin/go}
MODDIR=$(cd "$SRC" && "$GO" list -m -f '{{.Dir}}' k8s.io/kubernetes) || die "k8s.io/kubernetes@$VERSION is not in $SRC's module graph"
MANIFEST="$MODDIR/test/utils/image/manifest.go"
[ -f "$MANIFEST" ] || die "no $MANIFEST; is $VERSION a Kubernetes release?"
# configs[Agnhost] = Config{list.PromoterE2eRegistry, "agnhost", "2.56"}
tag_of() { sed -nE "s/^[[:space:]]*configs\[$1\] = Config\{[^,]+, \"[^\"]+\", \"([^\"]+)\"\}.*/\1/p" "$MANIFEST" | head -1; }
AGNHOST_TAG=$(tag_of Agnhost); DNSUTILS_TAG=$(tag_of JessieDnsutils)
[ -n "$AGNHOST_TAG" ] && [ -n "$DNSUTILS_TAG" ] || die "cannot read the agnhost / jessie-dnsutils tags from $MANIFEST"
COREDNS_BIN=$(ls "$K8SDNS_CACHE"/bin/coredns-*/coredns 2>/dev/null | sort -V | tail -1 || true)
[ -x "$COREDNS_BIN" ] || die "no CoreDNS binary under $K8SDNS_CACHE/bin; run bash substrate/build first"

LABEL=org.k8sdns.e2e-inputs
SELF_SHA=$(sha256sum "$0" | cut -c1-16)
KEY=$(inputs_hash "$VERSION" "$DEBIAN_SUITE" "$SELF_SHA" "$(sha256sum "$COREDNS_BIN" | cut -c1-16)")
DNSUTILS="$REPO/jessie-dnsutils:$DNSUTILS_TAG" AGNHOST="$REPO/agnhost:$AGNHOST_TAG"
current() { [ "$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null)" = "$KEY" ]; }
if current "$DNSUTILS" && current "$AGNHOST"; then
  log "reused $DNSUTILS and $AGNHOST (inputs $KEY)"
  printf '%s\n' "$DNSUTILS" "$AGNHOST"; exit 0
fi

WORK="$K8SDNS_CACHE/e2e/$VERSION/images"
rm -rf "$WORK"; mkdir -p "$WORK/add"
t0=$SECONDS
(cd "$SRC" && GOFLAGS=-mod=mod "$GO" build -trimpath -ldflags '-s -w' -o "$WORK/add/agnhost" k8s.io/kubernetes/test/images/agnhost) \
  || die "go build of agnhost failed"
log "agnhost built in $((SECONDS - t0)) s"
cp "$COREDNS_BIN" "$WORK/add/coredns"
# dig and nslookup (dnsutils); getent, hostname, awk, sed come with minbase
BASE=$(rootfs e2e-dnsutils dnsutils)

# import TAR IMAGE CHANGE...: a FROM-scratch image of TAR
import() {
  local tar=$1 image=$2; shift 2
  local changes=(--change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                 --change "LABEL $LABEL=$KEY")
  local c; for c in "$@"; do changes+=(--change "$c"); done
  docker import "${changes[@]}" "$tar" "$image" >/dev/null || die "docker import of $image failed"
  log "imported $image"
}
cp "$BASE" "$WORK/dnsutils.tar"
tar --numeric-owner --owner=0 --group=0 -C "$WORK/add" -rf "$WORK/dnsutils.tar" ./coredns
import "$WORK/dnsutils.tar" "$DNSUTILS" 'CMD ["/bin/sh"]'
cp "$WORK/dnsutils.tar" "$WORK/agnhost.tar"
tar --numeric-owner --owner=0 --group=0 -C "$WORK/add" -rf "$WORK/agnhost.tar" ./agnhost
import "$WORK/agnhost.tar" "$AGNHOST" 'ENTRYPOINT ["/agnhost"]' 'CMD ["pause"]' 'EXPOSE 80 8080 8081 9376 5000'
docker run --rm --network none --entrypoint /bin/sh "$AGNHOST" -c 'dig -v 2>&1 | head -1 && /agnhost --help >/dev/null && /coredns -version | head -1' >&2 \
  || die "$AGNHOST does not run dig, agnhost and coredns"
rm -rf "$WORK"
printf '%s\n' "$DNSUTILS" "$AGNHOST"

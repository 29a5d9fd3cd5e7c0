#!/usr/bin/env bash
# The Sonobuoy CLI (github.com/vmware-tanzu/sonobuoy), built from its Go module, for running the
# suite as a Sonobuoy plugin (fixtures/sonobuoy-plugin.yaml). Output:
# $K8SDNS_CACHE/bin/sonobuoy-$SONOBUOY_VERSION-$SONOBUOY_GO/sonobuoy, reused while the version stays, and the
# aggregator image k8sdns.local/sonobuoy:$SONOBUOY_VERSION made from that same (static) binary, as
# upstream's Dockerfile makes it (the binary at /sonobuoy, `sonobuoy aggregator` as the command);
# nothing is pulled. substrate/build runs it. Prints the binary's path.
source "$(dirname "$0")/lib.sh"
source "$SUBSTRATE_DIR/versions.env"

BIN_DIR="$K8SDNS_CACHE/bin/sonobuoy-$SONOBUOY_VERSION-$SONOBUOY_GO"
IMAGE="k8sdns.local/sonobuoy:$SONOBUOY_VERSION"

build_sonobuoy() {
  if [ -x "$BIN_DIR/sonobuoy" ]; then log "reused $BIN_DIR/sonobuoy"; return; fi
  # `go install mod@version` asks the proxy for the module's version list (deprecations), which is
  # refused here: build from a wrapper module that requires the exact version instead (the
  # version string is in the module's own pkg/buildinfo)
  local work="$K8SDNS_CACHE/go/sonobuoy-wrapper-$SONOBUOY_VERSION"
  rm -rf "$work" "$BIN_DIR.tmp" && mkdir -p "$work" "$BIN_DIR.tmp"
  printf 'module k8sdns.local/sonobuoy-wrapper\n\ngo 1.23\n\nrequire github.com/vmware-tanzu/sonobuoy %s\n' \
    "$SONOBUOY_VERSION" > "$work/go.mod"
  (cd "$work" && GOTOOLCHAIN=$SONOBUOY_GO GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" \
    -o "$BIN_DIR.tmp/sonobuoy" github.com/vmware-tanzu/sonobuoy)
  rm -rf "$BIN_DIR" && mv "$BIN_DIR.tmp" "$BIN_DIR"
  log "built $BIN_DIR/sonobuoy"
}
aggregator_image() {
  local key root
  key=$(sha256sum "$BIN_DIR/sonobuoy" | cut -c1-16)
  if [ "$(docker image inspect -f '{{index .Config.Labels "k8sdns.sonobuoy"}}' "$IMAGE" 2>/dev/null)" = "$key" ]; then
    log "reused $IMAGE"; return
  fi
  root=$(mktemp -d)
  mkdir -p "$root/tmp" && chmod 1777 "$root/tmp" && cp "$BIN_DIR/sonobuoy" "$root/sonobuoy"
  tar --numeric-owner --owner=0 --group=0 -C "$root" -cf - . | docker import \
    --change "LABEL k8sdns.sonobuoy=$key" --change "WORKDIR /" \
    --change 'CMD ["/sonobuoy", "aggregator", "--no-exit", "-v", "3", "--logtostderr"]' - "$IMAGE" >/dev/null \
    || { rm -rf "$root"; die "docker import of the sonobuoy aggregator image failed"; }
  rm -rf "$root"
  log "built $IMAGE"
}
step sonobuoy build_sonobuoy
step sonobuoy-image aggregator_image
printf '%s\n' "$BIN_DIR/sonobuoy"

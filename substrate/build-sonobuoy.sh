#!/usr/bin/env bash
# The Sonobuoy CLI (github.com/vmware-tanzu/sonobuoy), built from its Go module, for running the
# suite as a Sonobuoy plugin (fixtures/sonobuoy-plugin.yaml). Output:
# $K8SDNS_CACHE/bin/sonobuoy-$SONOBUOY_VERSION-$SONOBUOY_GO/sonobuoy, reused while the version stays, and the
# aggregator image k8sdns.local/sonobuoy:$SONOBUOY_VERSION made from that same (static) binary, as
# upstream's Dockerfile makes it (the binary at /sonobuoy, `sonobuoy aggregator` as the command);
# nothing is pulled. substrate/build runs it. Prints the binary's path.
source "$(dirname "$0")/lib.sh"
source "$SUBSTRATE_DIR/versions.env"

# the version goes in as upstream's release build sets it (pkg/buildinfo), so `sonobuoy version`
# and the default aggregator image tag agree with the module's version
build_sonobuoy() {
  local out="$K8SDNS_CACHE/bin/sonobuoy-$SONOBUOY_VERSION-$SONOBUOY_GO"
  if [ -x "$out/sonobuoy" ]; then log "reused $out/sonobuoy"; return; fi
  # `go install mod@version` asks the proxy for the module's version list (deprecations), which is
  # refused here: build from a wrapper module that requires the exact version instead
  local work="$K8SDNS_CACHE/go/sonobuoy-wrapper-$SONOBUOY_VERSION"
  rm -rf "$work" "$out.tmp" && mkdir -p "$work" "$out.tmp"
  cat > "$work/go.mod" <<MOD
module k8sdns.local/sonobuoy-wrapper

go 1.23

require github.com/vmware-tanzu/sonobuoy $SONOBUOY_VERSION
MOD
  printf 'package tools\n\nimport _ "github.com/vmware-tanzu/sonobuoy"\n' > "$work/tools.go"
  (cd "$work" && GOTOOLCHAIN=$SONOBUOY_GO GOFLAGS=-mod=mod go build -trimpath -o "$out.tmp/sonobuoy" \
    -ldflags "-s -w -X github.com/vmware-tanzu/sonobuoy/pkg/buildinfo.Version=$SONOBUOY_VERSION" \
    github.com/vmware-tanzu/sonobuoy)
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "built $out/sonobuoy"
}
aggregator_image() {
  local bin="$K8SDNS_CACHE/bin/sonobuoy-$SONOBUOY_VERSION-$SONOBUOY_GO/sonobuoy" image="k8sdns.local/sonobuoy:$SONOBUOY_VERSION"
  local key root
  key=$(sha256sum "$bin" | cut -c1-16)
  if [ "$(docker image inspect -f '{{index .Config.Labels "k8sdns.sonobuoy"}}' "$image" 2>/dev/null)" = "$key" ]; then
    log "reused $image"; return
  fi
  root=$(mktemp -d)
  mkdir -p "$root/tmp" && chmod 1777 "$root/tmp" && cp "$bin" "$root/sonobuoy"
  tar --numeric-owner --owner=0 --group=0 -C "$root" -cf - . | docker import \
    --change "LABEL k8sdns.sonobuoy=$key" --change "WORKDIR /" \
    --change 'CMD ["/sonobuoy", "aggregator", "--no-exit", "-v", "3", "--logtostderr"]' - "$image" >/dev/null \
    || { rm -rf "$root"; die "docker import of the sonobuoy aggregator image failed"; }
  rm -rf "$root"
  log "built $image"
}
step sonobuoy build_sonobuoy
step sonobuoy-image aggregator_image
printf '%s\n' "$K8SDNS_CACHE/bin/sonobuoy-$SONOBUOY_VERSION-$SONOBUOY_GO/sonobuoy"

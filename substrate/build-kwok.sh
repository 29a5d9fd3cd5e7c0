#!/usr/bin/env bash
# The kwok binary (sigs.k8s.io/kwok) that benchmarks/fanout_kwok.py runs on the host to give a kind
# cluster fake nodes. Not part of substrate/build: only that benchmark needs it. Output:
# $K8SDNS_CACHE/bin/kwok-$KWOK_VERSION/kwok, reused while the version stays; prints its path.
source "$(dirname "$0")/lib.sh"
source "$SUBSTRATE_DIR/versions.env"

# kwok's go.mod has no replace lines, so `go install` builds it straight from the module; the
# release ldflags (hack/releases.sh) only restate the version its consts already hold.
build_kwok() {
  local out="$K8SDNS_CACHE/bin/kwok-$KWOK_VERSION"
  # the benchmark reads kwok's stage manifests from the module's source in $GOMODCACHE
  go mod download "sigs.k8s.io/kwok@$KWOK_VERSION"
  if [ -x "$out/kwok" ]; then log "reused $out/kwok"; return; fi
  mkdir -p "$out.tmp"
  GOBIN="$out.tmp" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  rm -rf "$out"; mv "$out.tmp" "$out"
  log "built $out/kwok"
}

step kwok build_kwok
printf '%s\n' "$K8SDNS_CACHE/bin/kwok-$KWOK_VERSION/kwok"

#!/usr/bin/env bash
# Build every Go binary the kind node needs from Go modules: Kubernetes, crictl, kind, CoreDNS,
# kindnetd. Output: $K8SDNS_CACHE/bin/<key>/..., keyed by version so a rebuild happens only when
# an input changes.
source "$(dirname "$0")/lib.sh"
source "$SUBSTRATE_DIR/versions.env"

K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm kubectl)

# kubernetes requires its staging modules at v0.0.0 with local replaces, so it cannot be
# `go install`ed; a wrapper module replaces each staging module with its published v0.Y.Z.
build_kubernetes() {
  local out="$K8SDNS_CACHE/bin/kubernetes-$KUBERNETES_VERSION"
  if [ -x "$out/kubelet" ] && [ -x "$out/kubeadm" ]; then log "reused $out"; return; fi
  local src="$K8SDNS_CACHE/src/kubernetes-wrapper-$KUBERNETES_VERSION"
  local staging_version="v0.${KUBERNETES_VERSION#v1.}"
  mkdir -p "$src" "$out.tmp"
  local modfile
  modfile=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  {
    echo "module k8sdns.invalid/kubernetes-wrapper"
    echo "go $(awk '$1=="go"{print $2; exit}' "$modfile")"
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    # the staging list, read from that exact tag's go.mod
    awk -v v="$staging_version" '$2=="=>" && $3 ~ /^\.\/staging\// {print "replace " $1 " => " $1 " " v}' "$modfile"
  } > "$src/go.mod"
  local pkgs=() c
  for c in "${K8S_COMMANDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  # @version on every package, or `go get` moves kubernetes to its newest release
  (cd "$src" && go get "${pkgs[@]/%/@$KUBERNETES_VERSION}")
  local minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  local ld="" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.gitCommit=0000000000000000000000000000000000000000"
    ld+=" -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$src" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w $ld" -o "$out.tmp/" "${pkgs[@]}")
  rm -rf "$out"; mv "$out.tmp" "$out"
  log "built $(ls "$out" | tr '\n' ' ')in $out"
}

# go_install NAME MODULE_PATH VERSION: a module with no replace lines installs directly.
go_install() {
  local name=$1 pkg=$2 version=$3
  local out="$K8SDNS_CACHE/bin/$name-$version"
  if [ -x "$out/$name" ]; then log "reused $out/$name"; return; fi
  mkdir -p "$out"
  GOBIN="$out" go install -trimpath -ldflags "-s -w" "$pkg@$version"
  log "built $out/$name"
}

step kubernetes build_kubernetes
step crictl go_install crictl sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_VERSION"
step kind go_install kind sigs.k8s.io/kind "$KIND_VERSION"

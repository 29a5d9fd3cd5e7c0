#!/usr/bin/env bash
# Build every Go binary the kind node needs from Go modules: Kubernetes, etcd, crictl, kind,
# CoreDNS. Output: $K8SDNS_CACHE/bin/<name>-<version>/, so a rebuild happens only when a version
# changes.
source "$(dirname "$0")/lib.sh"
source "$SUBSTRATE_DIR/versions.env"

# wrapper_build NAME MODULE VERSION REPLACE_AWK LDFLAGS PKG...: build PKGs of a module that has
# local replace lines (so `go install` refuses it) from a wrapper module of our own. REPLACE_AWK
# turns the module's own go.mod into replace lines pointing at published versions.
wrapper_build() {
  local name=$1 module=$2 version=$3 replace_awk=$4 ldflags=$5; shift 5
  local out="$K8SDNS_CACHE/bin/$name-$version"
  if [ -d "$out" ]; then log "reused $out"; return; fi
  local src="$K8SDNS_CACHE/src/$name-wrapper-$version"
  mkdir -p "$src" "$out.tmp"
  local modfile
  modfile=$(go mod download -json "$module@$version" | jq -r .GoMod)
  {
    echo "module k8sdns.invalid/$name-wrapper"
    echo "go $(awk '$1=="go"{print $2; exit}' "$modfile")"
    echo "require $module $version"
    awk -v v="$version" "$replace_awk" "$modfile"
  } > "$src/go.mod"
  # @version on every package, or `go get` moves the module to its newest release
  (cd "$src" && go get "${@/%/@$version}" >/dev/null)
  (cd "$src" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp/" "$@")
  rm -rf "$out"; mv "$out.tmp" "$out"
  log "built $(ls "$out" | tr '\n' ' ')in $out"
}

# kubernetes requires its staging modules at v0.0.0 with local replaces; replace each with its
# published v0.Y.Z (the staging list is read from that exact tag's go.mod). kubeadm refuses to
# work without the version ldflags.
build_kubernetes() {
  local minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  local ld="" p c pkgs=()
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.gitCommit=0000000000000000000000000000000000000000"
    ld+=" -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm kubectl; do
    pkgs+=("k8s.io/kubernetes/cmd/$c")
  done
  local staging="v0.${KUBERNETES_VERSION#v1.}"
  wrapper_build kubernetes k8s.io/kubernetes "$KUBERNETES_VERSION" \
    '$2=="=>" && $3 ~ /^\.\/staging\// {print "replace " $1 " => " $1 " '"$staging"'"}' "$ld" "${pkgs[@]}"
}

# etcd's server module replaces its sibling modules with local paths; its requirements already
# name the published versions, so the wrapper needs no replace lines at all.
build_etcd() {
  local version
  version="v$(kubeadm_image etcd | sed -E 's/.*:([0-9.]+).*/\1/')"
  wrapper_build etcd go.etcd.io/etcd/server/v3 "$version" 'BEGIN{}' "" go.etcd.io/etcd/server/v3
  local d="$K8SDNS_CACHE/bin/etcd-$version"
  # go names a /vN module's binary after the element before /vN
  [ -x "$d/etcd" ] || mv "$d/server" "$d/etcd"
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

# NodeLocal DNSCache: k8s.io/dns is not served by the Go proxy here (every version, tag or
# pseudo-version, answers 403), so node-cache is our own module: CoreDNS with the node setup.
build_nodecache() {
  local out; out=$(nodecache_bin)
  if [ -x "$out/node-cache" ]; then log "reused $out/node-cache"; return; fi
  mkdir -p "$out.tmp"
  (cd "$SUBSTRATE_DIR/node-cache" && go build -trimpath -ldflags "-s -w -X main.Version=$NODECACHE_VERSION" \
    -o "$out.tmp/node-cache" .)
  rm -rf "$out"; mv "$out.tmp" "$out"
  log "built $out/node-cache"
}

step kubernetes build_kubernetes
step etcd build_etcd
step crictl go_install crictl sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_VERSION"
step kind go_install kind sigs.k8s.io/kind "$KIND_VERSION"
step coredns go_install coredns github.com/coredns/coredns "$(kubeadm_image coredns | awk -F: '{print $NF}')"
step node-cache build_nodecache

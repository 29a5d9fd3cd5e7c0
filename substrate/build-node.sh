#!/usr/bin/env bash
# Assemble the kind node image the way kind's pkg/build/nodeimage/buildcontext.go does, from
# Debian packages and the binaries substrate/build-go.sh made: a base rootfs with kind's
# images/base/files, the Kubernetes binaries, /kind/version, /kind/manifests, and every component
# image imported into the node's containerd. Prints the node image name on stdout.
source "$(dirname "$0")/lib.sh"
source "$SUBSTRATE_DIR/versions.env"

KIND_SRC=$(go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | jq -r .Dir)
K8S_SRC=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | jq -r .Dir)
BIN=$(k8s_bin)
[ -x "$BIN/kubeadm" ] || die "no kubeadm in $BIN; run substrate/build-go.sh first"
WORK="$K8SDNS_CACHE/node-work"
mkdir -p "$WORK" "$K8SDNS_CACHE/images"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# import_dir DIR IMAGE [docker import --change ...]: a one-layer image from a directory
import_dir() {
  local dir=$1 image=$2; shift 2
  tar -C "$dir" --numeric-owner -c . | docker import "$@" - "$image" >/dev/null
}

# ---- base image: Debian + systemd + containerd + kind's base files ----
BASE_PACKAGES=(systemd systemd-sysv dbus conntrack iptables nftables iproute2 ethtool util-linux mount
  kmod libseccomp2 pigz fuse-overlayfs e2fsprogs bash ca-certificates curl jq procps socat
  containerd runc containernetworking-plugins)
BASE_KEY=$(inputs_hash "$DEBIAN_SUITE" "${BASE_PACKAGES[*]}" "$KIND_VERSION" "$CRICTL_VERSION" \
  "$(sha256sum "$SUBSTRATE_DIR/build-node.sh" | cut -c1-16)")
BASE_IMAGE="k8sdns/kind-base:$BASE_KEY"

build_base() {
  if image_exists "$BASE_IMAGE"; then log "reused $BASE_IMAGE"; return; fi
  local tar; tar=$(rootfs node-base "${BASE_PACKAGES[@]}")
  local root="$WORK/base-root"
  rm -rf "$root"; mkdir -p "$root"; tar -C "$root" -xf "$tar"
  local files="$KIND_SRC/images/base/files"
  install -d -m 0755 "$root/kind" "$root/kind/bin" "$root/LICENSES" "$root/etc/kubernetes/manifests"
  install -m 0755 "$files"/usr/local/bin/* "$root/usr/local/bin/"
  install -m 0644 "$files"/kind/README.txt "$root/kind/"
  install -m 0755 "$files"/kind/bin/* "$root/kind/bin/"
  install -m 0644 "$files"/LICENSES/* "$root/LICENSES/"
  install -m 0644 "$files"/etc/crictl.yaml "$root/etc/"
  install -d "$root/etc/containerd" "$root/etc/default" "$root/etc/sysctl.d" "$root/etc/systemd/system/kubelet.service.d"
  install -m 0644 "$files"/etc/containerd/* "$root/etc/containerd/"
  install -m 0644 "$files"/etc/default/* "$root/etc/default/"
  install -m 0644 "$files"/etc/sysctl.d/* "$root/etc/sysctl.d/"
  install -m 0644 "$files"/etc/systemd/system/*.service "$files"/etc/systemd/system/*.slice "$root/etc/systemd/system/"
  install -m 0644 "$files"/etc/systemd/system/kubelet.service.d/* "$root/etc/systemd/system/kubelet.service.d/"
  # Debian puts containerd, runc and the CNI plugins elsewhere than kind's own builds do
  local b
  for b in containerd ctr containerd-shim-runc-v2; do ln -sf "/usr/bin/$b" "$root/usr/local/bin/$b"; done
  install -d "$root/usr/local/sbin" "$root/opt/cni/bin"
  ln -sf /usr/sbin/runc "$root/usr/local/sbin/runc"
  for b in "$root"/usr/lib/cni/*; do ln -sf "/usr/lib/cni/$(basename "$b")" "$root/opt/cni/bin/"; done
  install -m 0755 "$K8SDNS_CACHE/bin/crictl-$CRICTL_VERSION/crictl" "$root/usr/local/bin/"
  # no CAP_SYS_RESOURCE in this VM: containerd may only raise oom_score_adj, never lower it
  sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' "$root/etc/containerd/config.toml"
  local pause; pause=$(kubeadm_image pause)
  sed -i "s|sandbox_image = .*|sandbox_image = \"$pause\"|" "$root/etc/containerd/config.toml"
  # what the base Dockerfile does after installing packages
  find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  rm -f "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
    "$root"/lib/systemd/system/local-fs.target.wants/* "$root"/lib/systemd/system/sockets.target.wants/*udev* \
    "$root"/lib/systemd/system/sockets.target.wants/*initctl* "$root"/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >> "$root/etc/systemd/journald.conf"
  ln -sf /usr/lib/systemd/systemd "$root/sbin/init"
  chroot "$root" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
  chroot "$root" systemctl mask systemd-binfmt.service >/dev/null 2>&1
  chroot "$root" ctr oci spec \
    | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
    | jq 'del(.process.rlimits)' > "$root/etc/containerd/cri-base.json"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*
  import_dir "$root" "$BASE_IMAGE" --change 'ENV container=docker' --change 'STOPSIGNAL SIGRTMIN+3' \
    --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]'
  rm -rf "$root"
  log "built $BASE_IMAGE"
}

# ---- component images, under the names kubeadm asks for ----
# save_image IMAGE: keep a docker-save tar of IMAGE in the cache for the node build
image_tar() { printf '%s/images/%s.tar\n' "$K8SDNS_CACHE" "$(printf '%s' "$1" | tr '/:' '__')"; }
save_image() { local t; t=$(image_tar "$1"); [ -s "$t" ] || docker save "$1" -o "$t"; }

# scratch_image IMAGE ENTRYPOINT_JSON FILE:DEST...: an image holding only static binaries
scratch_image() {
  local image=$1 entry=$2; shift 2
  if image_exists "$image"; then log "reused $image"; save_image "$image"; return; fi
  local dir="$WORK/scratch"; rm -rf "$dir"; mkdir -p "$dir/tmp" "$dir/etc"; chmod 1777 "$dir/tmp"
  echo 'nobody:x:65534:65534:nobody:/:/sbin/nologin' > "$dir/etc/passwd"
  local spec
  for spec in "$@"; do install -D -m 0755 "${spec%%:*}" "$dir/${spec#*:}"; done
  import_dir "$dir" "$image" --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' --change "ENTRYPOINT $entry"
  rm -rf "$dir"; save_image "$image"; log "built $image"
}

TOOLS_PACKAGES=(iptables nftables conntrack iproute2 kmod)
# debian_image IMAGE ENTRYPOINT_JSON FILE:DEST...: tools rootfs (iptables, conntrack, ip) + files
debian_image() {
  local image=$1 entry=$2; shift 2
  if image_exists "$image"; then log "reused $image"; save_image "$image"; return; fi
  local tar; tar=$(rootfs tools "${TOOLS_PACKAGES[@]}")
  local dir="$WORK/tools-root"; rm -rf "$dir"; mkdir -p "$dir"; tar -C "$dir" -xf "$tar"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*
  local spec
  for spec in "$@"; do install -D -m 0755 "${spec%%:*}" "$dir/${spec#*:}"; done
  import_dir "$dir" "$image" --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    ${entry:+--change "ENTRYPOINT $entry"}
  rm -rf "$dir"; save_image "$image"; log "built $image"
}

build_pause() {
  local out="$K8SDNS_CACHE/bin/pause-$KUBERNETES_VERSION"
  mkdir -p "$out"
  [ -x "$out/pause" ] || gcc -Os -static -Wall -DVERSION="k8sdns-$KUBERNETES_VERSION" \
    -o "$out/pause" "$K8S_SRC/build/pause/linux/pause.c"
  scratch_image "$(kubeadm_image pause)" '["/pause"]' "$out/pause:pause"
}

build_etcd() {
  local image; image=$(kubeadm_image etcd)
  local version="v${image##*:}"; version=${version%-*}
  scratch_image "$image" '[]' "$K8SDNS_CACHE/bin/etcd-$version/etcd:usr/local/bin/etcd"
}

build_control_plane() {
  local c
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    scratch_image "$(kubeadm_image "$c")" '[]' "$BIN/$c:usr/local/bin/$c"
  done
  debian_image "$(kubeadm_image kube-proxy)" '' "$BIN/kube-proxy:usr/local/bin/kube-proxy"
}

build_coredns() {
  local image; image=$(kubeadm_image coredns)
  scratch_image "$image" '["/coredns"]' "$K8SDNS_CACHE/bin/coredns-${image##*:}/coredns:coredns"
}

CNI_IMAGE="k8sdns/cni:$(inputs_hash "$KUBERNETES_VERSION" "$(cat "$SUBSTRATE_DIR/cni/k8sdns-cni.sh")")"
build_cni() {
  debian_image "$CNI_IMAGE" '' "$BIN/kubectl:usr/local/bin/kubectl" \
    "$SUBSTRATE_DIR/cni/k8sdns-cni.sh:usr/local/bin/k8sdns-cni"
}

# ---- the node image ----
NODE_IMAGE="k8sdns/kind-node:$KUBERNETES_VERSION-$(inputs_hash "$BASE_KEY" "$CNI_IMAGE" "$(kubeadm_images)" \
  "$(sha256sum "$SUBSTRATE_DIR/cni/default-cni.yaml" | cut -c1-16)")"

build_node() {
  if image_exists "$NODE_IMAGE"; then log "reused $NODE_IMAGE"; return; fi
  BUILD_CONTAINER="k8sdns-node-build-$$"
  local id=$BUILD_CONTAINER
  docker run -d --name "$id" --privileged --security-opt seccomp=unconfined --entrypoint=sleep \
    "$BASE_IMAGE" infinity >/dev/null
  trap 'docker rm -f -v "$BUILD_CONTAINER" >/dev/null 2>&1 || true' EXIT
  local b
  for b in kubeadm kubelet kubectl; do docker cp "$BIN/$b" "$id:/usr/bin/$b"; done
  docker exec "$id" chown root:root /usr/bin/kubeadm /usr/bin/kubelet /usr/bin/kubectl
  # one line holding the version, as kind's buildcontext writes it
  printf '%s' "$KUBERNETES_VERSION" | docker exec -i "$id" sh -c 'cat > /kind/version'
  docker exec "$id" mkdir -p /kind/manifests
  sed "s|__CNI_IMAGE__|$CNI_IMAGE|" "$SUBSTRATE_DIR/cni/default-cni.yaml" \
    | docker exec -i "$id" sh -c 'cat > /kind/manifests/default-cni.yaml'
  # no default-storage.yaml: storage is dropped, kind falls back to a host-path StorageClass
  docker exec "$id" bash -c 'nohup containerd >/tmp/containerd.log 2>&1 &'
  local i
  for i in $(seq 1 30); do docker exec "$id" ctr version >/dev/null 2>&1 && break; sleep 1; done
  local image
  for image in $(kubeadm_images) "$CNI_IMAGE"; do
    docker exec -i "$id" ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned \
      --all-platforms --no-unpack --digests - < "$(image_tar "$image")" >/dev/null
  done
  docker exec "$id" pkill containerd || true
  sleep 1
  docker commit --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
    --change 'ENV HTTP_PROXY="" HTTPS_PROXY="" NO_PROXY=""' "$id" "$NODE_IMAGE" >/dev/null
  log "built $NODE_IMAGE"
}

step base build_base
step pause build_pause
step etcd build_etcd
step control-plane build_control_plane
step coredns build_coredns
step cni build_cni
step node build_node
docker tag "$NODE_IMAGE" k8sdns/kind-node:latest
printf '%s\n' "$NODE_IMAGE"

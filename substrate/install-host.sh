#!/usr/bin/env bash
# Install what the substrate and the tests need from Debian, and start a Docker engine that can run
# kind's privileged node containers. bookworm's Docker 20.10 cannot (no CAP_SYS_RESOURCE in the
# VM); trixie's 26.1 can, and it installs on bookworm beside bookworm's containerd and runc.
source "$(dirname "$0")/lib.sh"

# mmdebstrap: rootfs of node and probe images; musl-tools: the musl probe's CPython; unbound,
# iproute2: the probe tests' DNS server and network namespaces; jq: build scripts; chromium: the
# e2e tier opens the HTML report in it, headless (fonts-liberation: the Helvetica/Arial it asks for)
HOST_PACKAGES=(mmdebstrap musl-tools musl-dev jq unbound iproute2 util-linux dpkg-dev gcc make chromium fonts-liberation)

install_tools() {
  local missing=() p
  for p in "${HOST_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -eq 0 ]; then log "host packages present"; return; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  log "installed ${missing[*]}"
}

install_engine() {
  if command -v dockerd >/dev/null; then log "dockerd present: $(dockerd --version)"; return; fi
  local mirror; mirror=$(debian_mirror)
  cat > /etc/apt/sources.list.d/k8sdns-trixie.sources <<SRC
Types: deb
URIs: $mirror
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  # trixie only where asked for by name
  printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' > /etc/apt/preferences.d/k8sdns-trixie
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    docker.io/trixie containerd runc iptables >/dev/null
  log "installed $(dockerd --version)"
}

start_engine() {
  if docker info >/dev/null 2>&1; then log "docker engine already running"; return; fi
  mkdir -p /var/log
  nohup dockerd >/var/log/k8sdns-dockerd.log 2>&1 &
  local deadline=$((SECONDS + 60))
  until docker info >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "dockerd did not answer within 60 s; see /var/log/k8sdns-dockerd.log"
    sleep 1
  done
  log "docker engine running: $(docker version --format '{{.Server.Version}}')"
}

step host-packages install_tools
step install-docker install_engine
step start-docker start_engine

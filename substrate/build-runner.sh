#!/usr/bin/env bash
# Build the in-cluster runner image k8sdns/runner:<project version> (and :latest), with no registry:
# a minbase Debian rootfs with Debian's python3, plus the project's wheel and its dependencies'
# wheels installed offline (pip --no-index --find-links) under /usr/local/lib/python3.X/dist-packages.
# No kind, no Docker, no kubectl: the runner talks to the cluster it runs in (fixtures/runner.yaml).
#
# Inputs: the Debian suite, this script, and the wheel's sources (pytest_k8sdns/, conformance/,
# fixtures/, pyproject.toml). When their hash matches the image's label the script only checks the
# image. The wheels of the dependencies are cached by pyproject.toml's hash; the Debian rootfs by
# suite and packages (lib.sh rootfs).
source "$(dirname "$0")/lib.sh"
source "$SUBSTRATE_DIR/versions.env"

REPO=$(cd "$SUBSTRATE_DIR/.." && pwd)
LABEL=org.k8sdns.runner-inputs
RUNNER="$K8SDNS_CACHE/runner"
# the host interpreter makes the wheels: it must be the image's CPython series (bookworm: 3.11)
PY_SERIES=3.11
# the interpreter and its standard library (json, ssl, sqlite3, xml.etree, ...), as in the glibc probe
PACKAGES=(python3-minimal "libpython$PY_SERIES-stdlib")
HOST_PY=${K8SDNS_RUNNER_PYTHON:-python3}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -1)
[ -n "$VERSION" ] || die "no version = \"...\" in $REPO/pyproject.toml"
IMAGE="k8sdns/runner:$VERSION"
SITE="/usr/local/lib/python$PY_SERIES/dist-packages"

# The wheel's sources, listed and hashed in a stable order (no bytecode, no build leftovers).
# README.md goes into the wheel too (its long description) but not into the hash: an edit of the
# README changes no file the runner runs.
sources() {
  (cd "$REPO" && find pytest_k8sdns conformance fixtures pyproject.toml -type f \
     ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' | LC_ALL=C sort)
}
SOURCES_SHA=$(cd "$REPO" && sources | tr '\n' '\0' | xargs -0 sha256sum | sha256sum | cut -c1-16)
SELF_SHA=$(sha256sum "$SUBSTRATE_DIR/$(basename "$0")" | cut -c1-16)
KEY=$(inputs_hash runner "$DEBIAN_SUITE" "$PY_SERIES" "$SELF_SHA" "$SOURCES_SHA" "${PACKAGES[*]}")
DEPS_DIR="$RUNNER/wheels-$(inputs_hash "$PY_SERIES" "$(sha256sum "$REPO/pyproject.toml")")"

# base_rootfs: the minbase Debian rootfs with PACKAGES, cached by suite and packages; prints its path.
# merged /usr by the hook, not by the usrmerge package (which pulls in perl); no docs, man pages or
# translations.
base_rootfs() {
  local tar; tar="$RUNNER/rootfs-$(inputs_hash "$DEBIAN_SUITE" "${PACKAGES[*]}" merged-usr-minbase).tar"
  if [ -f "$tar" ]; then log "reused $tar"; printf '%s\n' "$tar"; return; fi
  local IFS=,
  mmdebstrap --quiet --format=tar --variant=minbase --mode=root --skip=output/dev \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include="${PACKAGES[*]}" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --customize-hook='rm -rf "$1"/var/log/*.log "$1"/var/log/apt/* "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old' \
    "$DEBIAN_SUITE" "$tar.tmp" "deb $(debian_mirror) $DEBIAN_SUITE main" >&2 || die "mmdebstrap failed"
  mv "$tar.tmp" "$tar"
  log "rootfs $tar ($(du -h "$tar" | cut -f1))"
  printf '%s\n' "$tar"
}

image_current() {
  [ "$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null)" = "$KEY" ]
}

# wheels DIR: the project's wheel (built from a copy of its sources, so the checkout gets no build/
# or egg-info) and every dependency's wheel, for pip install --no-index
wheels() {
  local out=$1 src="$RUNNER/src"
  local have; have=$("$HOST_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  [ "$have" = "$PY_SERIES" ] || die "$HOST_PY is Python $have; the image's is $PY_SERIES: set K8SDNS_RUNNER_PYTHON to a python$PY_SERIES"
  rm -rf "$src" "$out"; mkdir -p "$src" "$out"
  (cd "$REPO" && { sources; echo README.md; } | tar -cf - -T -) | tar -xf - -C "$src"
  # dependencies once per pyproject.toml (downloads from the package index; the docker build never does)
  if [ ! -f "$DEPS_DIR/done" ]; then
    rm -rf "$DEPS_DIR"; mkdir -p "$DEPS_DIR"
    "$HOST_PY" -m pip wheel -q --disable-pip-version-check "$src" -w "$DEPS_DIR" >&2 || die "pip wheel failed"
    rm -f "$DEPS_DIR"/pytest_k8sdns-*.whl
    touch "$DEPS_DIR/done"
    log "dependency wheels: $(ls "$DEPS_DIR" | grep -c '\.whl$') in $DEPS_DIR"
  fi
  "$HOST_PY" -m pip wheel -q --disable-pip-version-check --no-deps "$src" -w "$out" >&2 || die "pip wheel of the project failed"
  cp "$DEPS_DIR"/*.whl "$out/"
  rm -rf "$src"
}

# stage DIR WHEELS: the site-packages of the image, installed offline from WHEELS and compiled to
# bytecode under their final path (the image's files are read-only to the runner's user). The
# dependencies, installed and compiled once per pyproject.toml, are kept in $DEPS_DIR-site; only
# the project's own package is installed and compiled per build.
stage() {
  local dir=$1 wheels=$2 deps="$DEPS_DIR-site"
  if [ ! -f "$deps/done" ]; then
    rm -rf "$deps"; mkdir -p "$deps$SITE"
    pip_target "$deps$SITE" "$wheels" "pytest-k8sdns==$VERSION"
    rm -rf "$deps$SITE"/pytest_k8sdns "$deps$SITE"/pytest_k8sdns-*.dist-info
    "$HOST_PY" -m compileall -q -j 2 -s "$deps" -p / "$deps$SITE" >/dev/null || die "compileall failed"
    touch "$deps/done"
  fi
  rm -rf "$dir"; mkdir -p "$dir"
  cp -a "$deps/." "$dir/"; rm -f "$dir/done"
  pip_target "$dir$SITE" "$wheels" --no-deps "pytest-k8sdns==$VERSION"
  "$HOST_PY" -m compileall -q -j 2 -s "$dir" -p / "$dir$SITE/pytest_k8sdns" >/dev/null || die "compileall failed"
}

# pip_target DIR WHEELS ARGS...: pip install --no-index into DIR. pip compares --target with the
# host's own packages and warns about them: that goes to the log, shown only on failure. Console
# scripts carry the host interpreter's path and are dropped: the image runs `python3 -m pytest`.
pip_target() {
  local dir=$1 wheels=$2; shift 2
  "$HOST_PY" -m pip install -q --disable-pip-version-check --no-index --find-links "$wheels" \
    --no-compile --no-warn-script-location --target "$dir" "$@" >"$RUNNER/pip.log" 2>&1 \
    || { cat "$RUNNER/pip.log" >&2; die "pip install --no-index from $wheels failed"; }
  rm -rf "$dir/bin"
}

build() {
  local base work="$RUNNER/work-$KEY" t old
  old=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  base=$(base_rootfs)
  rm -rf "$work"; mkdir -p "$work"
  step runner-wheels wheels "$work/wheels"
  step runner-stage stage "$work/stage" "$work/wheels"
  t="$work/rootfs.tar"
  # one tree (a tar with a path twice is refused by docker import): the base, then the packages
  mkdir -p "$work/root"
  tar -xf "$base" -C "$work/root" --numeric-owner
  mkdir -p "$work/root$SITE"
  cp -a "$work/stage$SITE/." "$work/root$SITE/"
  chown -R 0:0 "$work/root$SITE"
  tar --numeric-owner -C "$work/root" -cf "$t" .
  docker import \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV LANG=C.UTF-8 HOME=/tmp MPLCONFIGDIR=/tmp/matplotlib PYTHONDONTWRITEBYTECODE=1" \
    --change "LABEL $LABEL=$KEY" \
    --change "USER 65534:65534" \
    --change "WORKDIR /tmp" \
    --change 'ENTRYPOINT ["python3", "-m", "pytest_k8sdns.runner", "run"]' \
    "$t" "$IMAGE" >/dev/null || die "docker import of $t failed"
  docker tag "$IMAGE" k8sdns/runner:latest
  # the image this one replaces, once untagged (456 MB each), and caches of other inputs
  if [ -n "$old" ] && [ -z "$(docker image inspect -f '{{join .RepoTags ","}}' "$old" 2>/dev/null)" ]; then
    docker rmi "$old" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  for t in "$RUNNER"/work-* "$RUNNER"/wheels-* "$RUNNER"/rootfs-*.tar; do
    case "$t" in "$DEPS_DIR"|"$DEPS_DIR-site"|"$base") ;; *) [ -e "$t" ] && { rm -rf "$t"; log "removed stale $t"; } ;; esac
  done
  return 0
}

verify() {
  local out
  out=$(docker run --rm --network none --entrypoint python3 "$IMAGE" -c \
    'import pytest_k8sdns.plugin, pytest_k8sdns.runner, kubernetes, dns, matplotlib, pytest_html, jsonschema; print("ok")') \
    || die "$IMAGE: the plugin or a dependency does not import"
  [ "$out" = ok ] || die "$IMAGE: import check said '$out'"
  docker run --rm --network none --entrypoint python3 "$IMAGE" -m pytest --version >/dev/null 2>&1 \
    || die "$IMAGE: python3 -m pytest --version failed"
  if docker run --rm --network none --entrypoint sh "$IMAGE" -c 'command -v kind || command -v docker || command -v kubectl' >/dev/null 2>&1; then
    die "$IMAGE holds kind, docker or kubectl; the runner must not"
  fi
}

mkdir -p "$RUNNER"
exec 9>"$RUNNER/.lock"
flock 9
if image_current "$IMAGE"; then
  docker tag "$IMAGE" k8sdns/runner:latest
  log "reused image $IMAGE (inputs $KEY)"
  exit 0
fi
step runner-image build
step runner-verify verify
log "built $IMAGE and k8sdns/runner:latest ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'), inputs $KEY"

#!/usr/bin/env bash
# Build the two probe images the suite runs its DNS checks in, with no container registry:
#   k8sdns/probe-glibc:py3.11-<suite>  Debian rootfs (mmdebstrap minbase) with Debian's python3
#   k8sdns/probe-musl:py3.11-musl      no base: a static CPython built with Debian's musl-gcc from
#                                      Debian's python3.11 source, so getaddrinfo is musl's resolver
#                                      (the host's musl-dev: 1.2.3 on bookworm)
#   k8sdns/probe-musl:py3.11-musl1.2.5 the same with musl $MUSL_NEW_VERSION from $MUSL_NEW_SUITE's musl-dev,
#                                      unpacked into a private prefix (musl 1.2.4+ retries over TCP)
# Each musl image says its musl version in /etc/k8sdns-libc ("musl 1.2.3"): a static binary has
# no dynamic loader to ask.
# Everything (sources, build trees, `docker save` tars) lives in $K8SDNS_CACHE/probes/, keyed by
# the versions and this script's content; an unchanged second run only checks the images exist.
source "$(dirname "$0")/lib.sh"
source "$SUBSTRATE_DIR/versions.env"

PY_SERIES=3.11
GLIBC_IMAGE="k8sdns/probe-glibc:py$PY_SERIES-$DEBIAN_SUITE"
MUSL_IMAGE="k8sdns/probe-musl:py$PY_SERIES-musl"
MUSL_NEW_IMAGE="k8sdns/probe-musl:py$PY_SERIES-musl$MUSL_NEW_VERSION"
LIBC_FILE=/etc/k8sdns-libc
JOBS=2
LABEL=org.k8sdns.probe-inputs
PROBES="$K8SDNS_CACHE/probes"
MIRROR=$(debian_mirror)
SELF="$SUBSTRATE_DIR/$(basename "$0")"
SELF_SHA=$(sha256sum "$SELF" | cut -c1-16)
# The build tools of the musl image are inputs too.
TOOLS=$(dpkg-query -W -f '${Package}=${Version} ' musl-dev gcc mmdebstrap 2>/dev/null || true)
GLIBC_KEY=$(inputs_hash glibc "$DEBIAN_SUITE" "$PY_SERIES" "$SELF_SHA" "$TOOLS")
MUSL_KEY=$(inputs_hash musl "$DEBIAN_SUITE" "$PY_SERIES" "$SELF_SHA" "$TOOLS")
MUSL_NEW_KEY=$(inputs_hash musl "$DEBIAN_SUITE" "$PY_SERIES" "$SELF_SHA" "$TOOLS" "$MUSL_NEW_SUITE" "$MUSL_NEW_VERSION")
# Source downloads depend only on the suite and the packages.
SRC_DIR="$PROBES/src-$(inputs_hash "$DEBIAN_SUITE" "python$PY_SERIES" zlib)"
PROBE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# What every probe image must import, a lookup through the image's own libc, and zlib at work.
IMPORT_CHECK="import socket,json,threading,selectors,select,zipimport,zlib,argparse,time,struct,base64,binascii,signal,ipaddress,concurrent.futures; socket.getaddrinfo('localhost', 53); assert zlib.decompress(zlib.compress(b'k8sdns')) == b'k8sdns'; print('ok')"

# ---- cache check -------------------------------------------------------------------------------

# image_current TAG KEY: the tag exists and was built from these inputs.
image_current() {
  [ "$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null)" = "$2" ]
}

# reuse TAG KEY DIR: succeed (and say so) if the image is there or its saved tar is cached.
reuse() {
  local tag=$1 key=$2 dir=$3
  if image_current "$tag" "$key"; then
    if [ ! -f "$dir/image.tar" ]; then mkdir -p "$dir"; save_image "$tag" "$dir"; fi
    log "reused image $tag (inputs $key)"
    return 0
  fi
  [ -f "$dir/image.tar" ] || return 1
  docker load -q -i "$dir/image.tar" >/dev/null
  image_current "$tag" "$key" || die "$dir/image.tar does not hold $tag with inputs $key"
  log "reused $dir/image.tar: loaded $tag"
}

# ---- shared image steps --------------------------------------------------------------------------

# import_image TAG KEY ROOTFS_TAR [LIBC]: a FROM-scratch image from a rootfs tar; no ENTRYPOINT,
# so `python3 -c ...` works as the command. LIBC ("musl 1.2.3") also goes into a label.
import_image() {
  local tag=$1 key=$2 tar=$3 libc=${4:-} extra=()
  if [ -n "$libc" ]; then extra=(--change "LABEL org.k8sdns.libc=\"$libc\""); fi
  docker import \
    --change "ENV PATH=$PROBE_PATH" \
    --change "ENV LANG=C.UTF-8" \
    --change "LABEL $LABEL=$key" \
    "${extra[@]}" \
    --change 'CMD ["python3"]' \
    "$tar" "$tag" >/dev/null
  log "imported $tag"
}

# verify TAG EXPECTED_LIBC [LIBC_FILE_LINE]: stdlib imports, a lookup, libc as expected, runs as
# nobody with /tmp; a musl image's /etc/k8sdns-libc says its musl version.
verify() {
  local tag=$1 libc=$2 said=${3:-} out
  docker run --rm --network none "$tag" python3 -c "$IMPORT_CHECK" | grep -qx ok \
    || die "$tag: stdlib import check failed"
  out=$(docker run --rm --network none "$tag" python3 -c 'import platform; print(platform.libc_ver()[0] or "none")')
  [ "$out" = "$libc" ] || die "$tag: libc is '$out', expected '$libc'"
  if [ -n "$said" ]; then
    out=$(docker run --rm --network none --user 65534:65534 "$tag" python3 -c "print(open('$LIBC_FILE').readline().strip())")
    [ "$out" = "$said" ] || die "$tag: $LIBC_FILE says '$out', expected '$said'"
  fi
  docker run --rm --network none --user 65534:65534 "$tag" \
    python3 -c 'import tempfile; tempfile.NamedTemporaryFile(dir="/tmp").close()' \
    || die "$tag: nobody cannot write to /tmp"
  log "verified $tag: $(docker run --rm --network none "$tag" python3 -c 'import sys,platform; print("Python", sys.version.split()[0], platform.libc_ver())')"
}

# save_image TAG DIR: keep `docker save` output, so a lost image comes back without a rebuild.
save_image() {
  docker save -o "$2/image.tar.tmp" "$1" || die "docker save $1 failed"
  mv "$2/image.tar.tmp" "$2/image.tar" || die "cannot write $2/image.tar"
  log "saved $1 to $2/image.tar ($(du -h "$2/image.tar" | cut -f1))"
}

# ---- glibc image -----------------------------------------------------------------------------------

glibc_rootfs() {
  local dir=$1
  mkdir -p "$dir"
  rm -f "$dir/rootfs.tar"
  # python3-minimal has socket, threading, argparse, ...; json and concurrent.futures are in
  # libpython3.X-stdlib. Docs, man pages and translations are never unpacked.
  # merged /usr by symlinks from the hook, not by the usrmerge package (which pulls in perl).
  mmdebstrap --variant=minbase --mode=root --skip=output/dev \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include="python3-minimal,libpython$PY_SERIES-stdlib" \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --customize-hook='rm -rf "$1"/var/log/*.log "$1"/var/log/apt/* "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old' \
    "$DEBIAN_SUITE" "$dir/rootfs.tar" "deb $MIRROR $DEBIAN_SUITE main" \
    || die "mmdebstrap failed"
  log "rootfs $dir/rootfs.tar ($(du -h "$dir/rootfs.tar" | cut -f1))"
}

glibc_image() {
  local dir=$1
  import_image "$GLIBC_IMAGE" "$GLIBC_KEY" "$dir/rootfs.tar"
  verify "$GLIBC_IMAGE" glibc
  save_image "$GLIBC_IMAGE" "$dir"
  rm -f "$dir/rootfs.tar"
}

# ---- musl image --------------------------------------------------------------------------------------

# apt with a private config (PAPT_DIR, default the deb-src one): only this machine's mirror, lists
# under the cache; the system's sources are left alone.
papt() {
  local a="${PAPT_DIR:-$PROBES/apt}"
  apt-get -q \
    -o Dir::Etc::SourceList="$a/sources.list" -o Dir::Etc::SourceParts="$a/sources.list.d" \
    -o Dir::Etc::Preferences="$a/preferences" -o Dir::Etc::PreferencesParts="$a/preferences.d" \
    -o Dir::State::Lists="$a/lists" -o Dir::Cache="$a/cache" \
    -o APT::Sandbox::User=root "$@"
}

musl_sources() {
  if [ -f "$SRC_DIR/done" ]; then log "reused sources in $SRC_DIR"; return; fi
  local a="$PROBES/apt"
  mkdir -p "$a/sources.list.d" "$a/preferences.d" "$a/lists/partial" "$a/cache/archives/partial"
  rm -rf "$SRC_DIR.tmp"; mkdir -p "$SRC_DIR.tmp"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $DEBIAN_SUITE main" > "$a/sources.list"
  papt update >&2
  (cd "$SRC_DIR.tmp" && papt source --download-only "python$PY_SERIES" zlib >&2)
  rm -rf "$SRC_DIR"; mv "$SRC_DIR.tmp" "$SRC_DIR"
  touch "$SRC_DIR/done"
  log "sources: $(cd "$SRC_DIR" && ls | tr '\n' ' ')"
}

# upstream_version DEBIAN_VERSION: 1:1.2.3-1 -> 1.2.3
upstream_version() { local v=${1#*:}; printf '%s\n' "${v%-*}"; }

# loader_version LIBC_SO: musl's libc.so run as a program prints "Version 1.2.3"; a cross-check
# of the package version against the library itself.
loader_version() { "$1" 2>&1 | awk '$1 == "Version" {print $2; exit}' || true; }

# musl_toolchain_host DIR: the host's musl-gcc (musl-dev from $DEBIAN_SUITE). Writes DIR/musl-gcc
# (the compiler driver) and DIR/libc (what /etc/k8sdns-libc will say).
musl_toolchain_host() {
  local w=$1 deb up lib
  deb=$(dpkg-query -W -f '${Version}' musl-dev 2>/dev/null) || die "musl-dev is not installed (substrate/install-host.sh installs it)"
  up=$(upstream_version "$deb")
  lib="/usr/lib/$(gcc -print-multiarch | sed 's/-gnu$/-musl/')/libc.so"
  [ "$(loader_version "$lib")" = "$up" ] || die "$lib says musl '$(loader_version "$lib")', musl-dev is $deb"
  ln -sfn "$(command -v musl-gcc)" "$w/musl-gcc"
  printf 'musl %s\nDebian musl-dev %s (%s), linked statically\n' "$up" "$deb" "$DEBIAN_SUITE" > "$w/libc"
  log "toolchain: host musl-dev $deb"
}

# musl_toolchain_new DIR: musl $MUSL_NEW_VERSION from $MUSL_NEW_SUITE's musl and musl-dev .debs,
# unpacked (dpkg-deb -x, nothing installed) into DIR/musl, with a specs file pointing there.
musl_toolchain_new() {
  local w=$1 a="$PROBES/apt-$MUSL_NEW_SUITE" ma deb up prefix
  ma=$(gcc -print-multiarch | sed 's/-gnu$/-musl/')
  mkdir -p "$a/sources.list.d" "$a/preferences.d" "$a/lists/partial" "$a/cache/archives/partial" "$w/debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $MUSL_NEW_SUITE main" > "$a/sources.list"
  PAPT_DIR=$a papt -o Dir::State::Status=/dev/null update >&2
  (cd "$w/debs" && PAPT_DIR=$a papt -o Dir::State::Status=/dev/null download musl musl-dev >&2) \
    || die "cannot download musl and musl-dev from $MUSL_NEW_SUITE"
  deb=$(dpkg-deb -f "$(ls "$w"/debs/musl-dev_*.deb)" Version)
  up=$(upstream_version "$deb")
  [ "$up" = "$MUSL_NEW_VERSION" ] || die "$MUSL_NEW_SUITE has musl-dev $deb, not $MUSL_NEW_VERSION: set MUSL_NEW_VERSION in substrate/versions.env"
  for p in "$w"/debs/*.deb; do dpkg-deb -x "$p" "$w/musl"; done
  prefix="$w/musl/usr/lib/$ma"
  [ "$(loader_version "$prefix/libc.so")" = "$up" ] || die "$prefix/libc.so is not musl $up"
  # Debian's specs name /usr/include/<ma> and /usr/lib/<ma>; the dynamic linker path stays.
  sed -e "s#/usr/include/$ma#$w/musl/usr/include/$ma#g" -e "s#/usr/lib/$ma#$prefix#g" \
    "$prefix/musl-gcc.specs" > "$w/musl.specs"
  printf '#!/bin/sh\nexec gcc "$@" -specs "%s"\n' "$w/musl.specs" > "$w/musl-gcc"
  chmod +x "$w/musl-gcc"
  printf 'musl %s\nDebian musl-dev %s (%s), linked statically\n' "$up" "$deb" "$MUSL_NEW_SUITE" > "$w/libc"
  log "toolchain: $MUSL_NEW_SUITE musl-dev $deb in $w/musl"
}

# musl_cc_wrapper DIR: musl-gcc that says <arch>-linux-musl to -print-multiarch (else configure
# fails on the platform triplet and setup.py adds glibc's include dir) and sees linux-libc-dev's
# kernel headers through -isystem (musl-dev has none, and setup.py drops -isystem from CPPFLAGS).
musl_cc_wrapper() {
  local w=$1 gnu_ma musl_ma
  gnu_ma=$(gcc -print-multiarch)
  musl_ma="${gnu_ma%-gnu}-musl"
  mkdir -p "$w/bin" "$w/kheaders"
  ln -sfn /usr/include/linux "$w/kheaders/linux"
  ln -sfn /usr/include/asm-generic "$w/kheaders/asm-generic"
  ln -sfn "/usr/include/$gnu_ma/asm" "$w/kheaders/asm"
  cat > "$w/bin/musl-cc" <<WRAP
#!/bin/sh
for a in "\$@"; do
  case "\$a" in -print-multiarch|--print-multiarch) echo $musl_ma; exit 0 ;; esac
done
exec $w/musl-gcc -isystem $w/kheaders "\$@"
WRAP
  chmod +x "$w/bin/musl-cc"
}

# Static zlib from Debian's zlib source into the private prefix (zlib: deflated zipapps, wheels).
musl_zlib() {
  local w=$1 src
  tar -xf "$SRC_DIR"/zlib_*.orig.tar.* -C "$w"
  src=$(find "$w" -maxdepth 1 -type d -name 'zlib-*' | head -1)
  (cd "$src" && CC="$w/bin/musl-cc" CFLAGS="-O2 -fPIC" ./configure --static --prefix="$w/deps" \
    && make -j"$JOBS" libz.a && make install) >"$w/zlib.log" 2>&1 || die "zlib build failed, see $w/zlib.log"
  [ -f "$w/deps/lib/libz.a" ] || die "no libz.a in $w/deps"
  log "zlib $(basename "$src") -> $w/deps/lib/libz.a"
}

# Debian's python3.X orig tarball plus the tail of Debian's patch series from its first CVE fix
# on (security fixes and upstream backports); Debian's layout/multiarch patches before it are
# for Debian's own build and are left out.
musl_python_source() {
  local w=$1 src p n=0
  tar -xf "$SRC_DIR/python${PY_SERIES}"_*.orig.tar.* -C "$w"
  tar -xf "$SRC_DIR/python${PY_SERIES}"_*.debian.tar.* -C "$w"
  src=$(find "$w" -maxdepth 1 -type d -name 'Python-*' | head -1)
  [ -n "$src" ] || die "no Python-* tree in $w"
  for p in $(awk '/^CVE-/ {on=1} on && NF && $1 !~ /^#/ {print $1}' "$w/debian/patches/series"); do
    patch -d "$src" -p1 -s -N -i "$w/debian/patches/$p" >>"$w/patch.log" 2>&1 \
      || die "Debian patch $p does not apply, see $w/patch.log"
    n=$((n + 1))
  done
  log "$(basename "$src") with $n Debian security/backport patches ($(ls "$SRC_DIR" | grep -m1 '\.dsc$'))"
}

musl_python() {
  local w=$1 src
  src=$(find "$w" -maxdepth 1 -type d -name 'Python-*' | head -1)
  # PKG_CONFIG_LIBDIR: only the private prefix, never the host's glibc zlib/ffi/lzma.
  # Fully static: every stdlib module that configure enables goes into the binary through
  # Setup.local; the limited-API templates, which must be shared, are turned off, and so is
  # _crypt (Debian's musl libc.a has no crypt; configure's probe is optimised away).
  (cd "$src" && env PKG_CONFIG_LIBDIR="$w/deps/lib/pkgconfig" PKG_CONFIG_PATH= \
      CC="$w/bin/musl-cc" CFLAGS="-O2" CPPFLAGS="-I$w/deps/include" LDFLAGS="-static -L$w/deps/lib" \
      MODULE_BUILDTYPE=static py_cv_module_xxlimited=n/a py_cv_module_xxlimited_35=n/a \
      py_cv_module__crypt=n/a \
      ./configure --prefix=/usr/local --without-ensurepip --disable-test-modules) \
    >"$w/configure.log" 2>&1 || die "configure failed, see $w/configure.log and $src/config.log"
  sed -e '/^\*shared\*/,$d' -e '/^_test/d' "$src/Modules/Setup.stdlib" > "$src/Modules/Setup.local"
  log "configured (log $w/configure.log); building with -j$JOBS (log $w/make.log)"
  (cd "$src" && make -j"$JOBS" && make install DESTDIR="$w/rootfs") >"$w/make.log" 2>&1 \
    || die "make failed, see $w/make.log"
  log "built $("$w/rootfs/usr/local/bin/python3" -c 'import sys; print(sys.version.split()[0])')"
}

# The image's files: the static interpreter and the stdlib under /usr/local, /tmp, nobody.
musl_rootfs() {
  local dir=$1 w=$1/work r=$1/work/rootfs
  local lib="$r/usr/local/lib/python$PY_SERIES" py="$r/usr/local/bin/python$PY_SERIES"
  # the test suite, GUI, static library, headers and optimised .pyc are of no use to a probe
  rm -rf "$lib"/test "$lib"/idlelib "$lib"/tkinter "$lib"/turtledemo "$lib"/ensurepip \
    "$lib"/lib2to3/tests "$lib"/unittest/test "$lib"/ctypes/test "$lib"/sqlite3/test \
    "$lib"/config-"$PY_SERIES"-* "$r/usr/local/include" "$r/usr/local/share" "$r/usr/local/lib/pkgconfig" \
    "$r"/usr/local/lib/libpython*.a "$r"/usr/local/bin/*-config "$r"/usr/local/bin/idle*
  find "$lib" -name '*.opt-[12].pyc' -delete
  find "$lib/lib-dynload" -name '*.so' -delete 2>/dev/null || true
  strip "$py"
  mkdir -p "$r/etc" "$r/tmp" "$r/root"
  cp "$w/libc" "$r$LIBC_FILE"; chmod 644 "$r$LIBC_FILE"
  chmod 1777 "$r/tmp"; chmod 700 "$r/root"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' > "$r/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' > "$r/etc/group"
  # musl's getaddrinfo reads service names from /etc/services (plain data from netbase)
  if [ -f /etc/services ]; then cp /etc/services "$r/etc/services"; fi
  # no glibc: a static binary with no interpreter, no glibc symbol versions, no glibc files
  if readelf -lW "$py" | grep -q 'Requesting program interpreter'; then die "$py is not static"; fi
  if grep -q 'GLIBC_' "$py"; then die "$py references glibc symbols"; fi
  if [ -n "$(find "$r" \( -name 'ld-linux*' -o -name 'libc.so*' -o -name 'libc-*.so' \) -print -quit)" ]; then
    die "glibc files in $r"
  fi
  tar --numeric-owner --owner=0 --group=0 -C "$r" -cf "$dir/rootfs.tar" .
  log "rootfs $dir/rootfs.tar ($(du -h "$dir/rootfs.tar" | cut -f1)); built-in modules: $("$py" -c 'import sys; print(len(sys.builtin_module_names))')"
}

# musl_image DIR TAG KEY
musl_image() {
  local dir=$1 tag=$2 key=$3 libc
  libc=$(head -1 "$dir/work/libc")
  import_image "$tag" "$key" "$dir/rootfs.tar" "$libc"
  verify "$tag" none "$libc"
  save_image "$tag" "$dir"
  rm -rf "$dir/rootfs.tar" "$dir/work"
}

# ---- main --------------------------------------------------------------------------------------------

# prune_stale PREFIX KEEP: drop cached builds of this image made from other inputs.
prune_stale() {
  local d
  for d in "$PROBES/$1"-*; do
    [ -d "$d" ] && [ "$d" != "$2" ] && { rm -rf "$d"; log "removed stale $d"; }
  done
  return 0
}

probe_glibc() {
  local dir="$PROBES/glibc-$GLIBC_KEY"
  if reuse "$GLIBC_IMAGE" "$GLIBC_KEY" "$dir"; then return; fi
  step glibc-rootfs glibc_rootfs "$dir"
  step glibc-image glibc_image "$dir"
  prune_stale glibc "$dir"
}

# probe_musl NAME TAG KEY TOOLCHAIN: a musl image built in $PROBES/NAME-KEY with the musl-gcc that
# the TOOLCHAIN function sets up
probe_musl() {
  local name=$1 tag=$2 key=$3 toolchain=$4
  local dir="$PROBES/$name-$key"
  if reuse "$tag" "$key" "$dir"; then return; fi
  rm -rf "$dir/work"; mkdir -p "$dir/work/deps" "$dir/work/rootfs"
  step "$name-sources" musl_sources
  step "$name-toolchain" "$toolchain" "$dir/work"
  step "$name-cc" musl_cc_wrapper "$dir/work"
  step "$name-zlib" musl_zlib "$dir/work"
  step "$name-python-source" musl_python_source "$dir/work"
  step "$name-python" musl_python "$dir/work"
  step "$name-rootfs" musl_rootfs "$dir"
  step "$name-image" musl_image "$dir" "$tag" "$key"
  prune_stale "$name" "$dir"
}

mkdir -p "$PROBES"
exec 9>"$PROBES/.lock"
flock 9
step probe-glibc probe_glibc
step probe-musl probe_musl musl "$MUSL_IMAGE" "$MUSL_KEY" musl_toolchain_host
step probe-musl-new probe_musl "musl$MUSL_NEW_VERSION" "$MUSL_NEW_IMAGE" "$MUSL_NEW_KEY" musl_toolchain_new
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^k8sdns/probe-' >&2 || true

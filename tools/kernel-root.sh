#!/usr/bin/env bash
# tools/kernel-root.sh: the cached Debian 13 (trixie) root of the VM matrix.
#
# The trixie kernels are built for and booted from here, never installed on
# this machine: their kbuild tools need trixie's libc, and a guest booted
# with `vng --root` gets trixie's userland (Python 3.13, libbpf, fuse3).
# The root holds the toolchain, the test suite's Python dependencies from
# Debian, and the kernels (image, modules, headers) that Debian's
# metapackages point at: linux-image-amd64 and linux-image-rt-amd64 in
# trixie (6.12) and in trixie-backports (7.x).
#
#   tools/kernel-root.sh prepare       make or refresh the root, and its /opt/saga venv when
#                                      pyproject.toml changed (root; idempotent)
#   tools/kernel-root.sh path          print where it is
#   tools/kernel-root.sh venv          the guest's venv for this tree's pyproject.toml
#   tools/kernel-root.sh releases [SUITE:METAPACKAGE...]
#                                      the kernel releases it holds (or the metapackages'), one a line
#   tools/kernel-root.sh run [--bind DIR] CMD...
#                                      run CMD in it (chroot; /proc /sys /dev and DIR at
#                                      /saga/results, for CMD only)
#
# It lives in SAGA_TEST_CACHE (default /var/cache/saga-test) as kernels-trixie.
# Creation and refreshes hold an exclusive flock on kernels-trixie.lock; users
# (tools/vmtest) hold it shared, so a refresh never pulls a kernel from under
# a running VM.  A refresh (apt-get update, then the metapackages' current
# targets) happens when the last one is older than SAGA_KROOT_REFRESH seconds
# (default a day): the matrix follows Debian's updates, a run does not pay for
# apt each time.  Kernels the metapackages no longer point at are purged.
set -euo pipefail

CACHE=${SAGA_TEST_CACHE:-/var/cache/saga-test}
ROOT=$CACHE/kernels-trixie
LOCK=$CACHE/kernels-trixie.lock
LOG=$CACHE/kernels-trixie.log
REFRESH=${SAGA_KROOT_REFRESH:-86400}
TREE=$(cd "$(dirname "$0")/.." && pwd)
RECIPE=2   # bump when what goes into the root changes: the next prepare rebuilds it

# Build tools, and what the guests need: saga's Python (a venv, /opt/saga,
# made as tools/deps.sh makes this machine's: pip, editable from the tree,
# which a guest finds at /saga/tree), fuse3, libbpf and bpftool, strace for
# bench/kmod, iproute2 for virtme-ng.
PACKAGES="make gcc libc6-dev pkg-config kmod procps util-linux iproute2 busybox-static
          fuse3 libfuse3-dev libbpf1 bpftool strace python3 python3-venv python3-dev"
# suite:metapackage pairs; each metapackage names one image (its headers follow the same name).
KERNELS="trixie:linux-image-amd64 trixie:linux-image-rt-amd64
         trixie-backports:linux-image-amd64 trixie-backports:linux-image-rt-amd64"

die() { echo "kernel-root: $*" >&2; exit 1; }

# The host's Debian mirror for the archive or the security archive, so the
# root comes from wherever this machine's apt does.
mirror() {
  local path=$1 uri   # debian or debian-security
  uri=$(grep -rhsE "^(deb |URIs:)" /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
          /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | grep -oE "https?://[^ ]*/$path/?( |$)" | head -1 | tr -d ' ')
  echo "${uri:-http://deb.debian.org/$path}"
}

# Run a command in the root with /proc, /sys and /dev (and BIND_TREE,
# BIND_RESULTS when set) mounted in a private mount namespace: they vanish
# with the command, even if it is killed.
in_root() {
  # shellcheck disable=SC2016 # the inner script expands its own arguments
  unshare -m --propagation private sh -c '
    r=$1 tree=$2 res=$3; shift 3
    mount -t proc proc "$r/proc" && mount -t sysfs sysfs "$r/sys" && mount --bind /dev "$r/dev" \
      && mount --bind /dev/pts "$r/dev/pts" || exit 70
    if [ -n "$tree" ]; then mount --bind "$tree" "$r/saga/tree" && mount -o remount,bind,ro "$r/saga/tree" || exit 70; fi
    if [ -n "$res" ]; then mount --bind "$res" "$r/saga/results" || exit 70; fi
    exec chroot "$r" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 "$@"' \
    sh "$ROOT_DIR" "${BIND_TREE:-}" "${BIND_RESULTS:-}" "$@"
}

# apt's chatter goes to kernels-trixie.log, shown when something fails.
apt_in_root() {
  in_root apt-get -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "$@" >>"$LOG" 2>&1 \
    || { tail -30 "$LOG" >&2; die "apt-get $* failed (all of it: $LOG)"; }
}

create() {
  local tmp=$CACHE/kernels-trixie.building
  rm -rf "$tmp"
  echo "kernel-root: debootstrap trixie into $ROOT (once; a few minutes)"
  debootstrap --variant=minbase trixie "$tmp" "$(mirror debian)" >>"$LOG" 2>&1 \
    || { tail -20 "$LOG" >&2; die "debootstrap failed (all of it: $LOG)"; }
  local deb sec
  deb=$(mirror debian); sec=$(mirror debian-security)
  rm -f "$tmp"/etc/apt/sources.list "$tmp"/etc/apt/sources.list.d/*
  cat >"$tmp/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $deb
Suites: trixie trixie-updates trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $sec
Suites: trixie-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # Nothing starts services in a chroot.
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
  chmod +x "$tmp/usr/sbin/policy-rc.d"
  # Mount points: the tree (read-only, to install saga from) and a work directory.
  mkdir -p "$tmp/saga/tree" "$tmp/saga/results"
  ROOT_DIR=$tmp
  apt_in_root update
  # The kernels need an initramfs tool; tiny-initramfs brings no udev, which
  # a guest would start and wait for (40 s of coldplug under TCG).  virtme-ng
  # boots with its own initramfs, so the tool's hook is never run.
  apt_in_root install tiny-initramfs
  in_root dpkg-divert --quiet --local --rename --add /etc/kernel/postinst.d/tiny-initramfs
  echo "$RECIPE" >"$tmp/.saga-recipe"
  rm -rf "$ROOT"
  mv "$tmp" "$ROOT"
}

# The image package a suite's metapackage depends on now, e.g. linux-image-7.3.4+deb13-amd64.
target_image() {
  local suite=$1 meta=$2
  in_root apt-cache -t "$suite" show --no-all-versions "$meta" \
    | sed -n 's/^Depends: //p' | tr ',' '\n' | grep -oE "linux-image-[0-9][^ ]*" | head -1
}

refresh() {
  ROOT_DIR=$ROOT
  apt_in_root update
  # shellcheck disable=SC2086
  apt_in_root install $PACKAGES
  local want=() chosen=() pair suite img rel old
  for pair in $KERNELS; do
    suite=${pair%%:*}
    img=$(target_image "$suite" "${pair#*:}")
    [ -n "$img" ] || die "no image behind ${pair#*:} in $suite"
    rel=${img#linux-image-}
    # -t: a backports kernel needs its suite's linux-base and kbuild too
    apt_in_root -t "$suite" install "linux-image-$rel" "linux-headers-$rel"
    want+=("$rel")
    chosen+=("$pair $rel")
  done
  # Kernels the metapackages left behind go (autoremove takes what came with them).
  # shellcheck disable=SC2016 # a dpkg-query format, not a shell expansion
  for old in $(in_root dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' 'linux-image-[0-9]*' \
                 | awk '$1 == "ii" { print $2 }'); do
    rel=${old#linux-image-}
    case " ${want[*]} " in
      *" $rel "*) ;;
      *) apt_in_root purge "$old" "linux-headers-$rel" ;;
    esac
  done
  apt_in_root autoremove --purge
  apt_in_root clean
  printf '%s\n' "${chosen[@]}" >"$ROOT/.saga-kernels"   # suite:metapackage release
  touch "$ROOT/.saga-refreshed"
}

# /opt/saga/HASH: saga's dependencies, pytest and the `saga` command for
# Python 3.13, one venv per pyproject.toml (HASH: its digest), so trees on
# different commits share the root without rebuilding each other's; the
# three newest are kept.  saga is installed editable; tools/vmtest's
# PYTHONPATH points the guest at the snapshot of the tree under test.
venv_of_tree() {
  echo "/opt/saga/$(sha256sum <"$TREE/pyproject.toml" | cut -c1-16)"
}

guest_venv() {
  local venv old
  venv=$(venv_of_tree)
  [ -f "$ROOT$venv/.complete" ] && return 0
  echo "kernel-root: building $venv in $ROOT (pyproject.toml changed)"
  # pip trusts what this machine's TLS clients trust (a proxy's CA, say).
  cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/host-ca-certificates.crt"
  # shellcheck disable=SC2016 # the inner script expands its own arguments
  ROOT_DIR=$ROOT BIND_TREE=$TREE in_root sh -c 'rm -rf "$1" && python3 -m venv "$1" &&
    "$1/bin/pip" install -q --disable-pip-version-check \
      --cert /etc/ssl/certs/host-ca-certificates.crt -e /saga/tree pytest' sh "$venv" >>"$LOG" 2>&1 \
    || { tail -30 "$LOG" >&2; die "the venv $venv could not be made (all of it: $LOG)"; }
  touch "$ROOT$venv/.complete"
  find "$ROOT/opt/saga" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' | sort -rn | tail -n +4 \
    | cut -d' ' -f2- | while read -r old; do rm -rf "$old"; done
}

stale() {
  [ "$(cat "$ROOT/.saga-recipe" 2>/dev/null)" = "$RECIPE" ] || return 0
  [ -f "$ROOT/.saga-kernels" ] || return 0
  local age=$(( $(date +%s) - $(stat -c %Y "$ROOT/.saga-refreshed" 2>/dev/null || echo 0) ))
  [ "$age" -ge "$REFRESH" ]
}

prepare() {
  [ "$(id -u)" = 0 ] || { echo "kernel-root: needs root (debootstrap, chroot)" >&2; exit 77; }
  mkdir -p "$CACHE"
  # Up to date (the usual case): no exclusive lock, which would wait for every
  # VM another run boots from the root.  A root being made or refreshed reads
  # as stale (.saga-kernels and .saga-refreshed are written last).
  if ! stale && [ -f "$ROOT$(venv_of_tree)/.complete" ]; then
    return 0
  fi
  exec 9>"$LOCK"
  flock 9
  : >"$LOG"
  if [ "$(cat "$ROOT/.saga-recipe" 2>/dev/null)" != "$RECIPE" ]; then
    create
    refresh
  elif stale; then
    refresh
  fi
  guest_venv
}

case ${1:-} in
  prepare) prepare ;;
  path) echo "$ROOT" ;;
  venv)
    [ -f "$ROOT$(venv_of_tree)/.complete" ] || die "no venv for this tree's pyproject.toml: tools/deps.sh vm"
    venv_of_tree ;;
  releases)
    [ -f "$ROOT/.saga-kernels" ] || die "no kernels yet: tools/deps.sh vm"
    shift
    if [ $# -eq 0 ]; then
      cut -d' ' -f2 "$ROOT/.saga-kernels"
    else
      for pair in "$@"; do
        grep "^$pair " "$ROOT/.saga-kernels" | cut -d' ' -f2 | grep . || die "no kernel for $pair"
      done
    fi ;;
  run)
    shift
    [ -f "$ROOT/.saga-kernels" ] || die "no root yet: tools/deps.sh vm"
    ROOT_DIR=$ROOT
    if [ "${1:-}" = --bind ]; then BIND_RESULTS=$(cd "$2" && pwd) || exit 1; shift 2; fi
    in_root "$@" ;;
  *) echo "usage: tools/kernel-root.sh prepare|path|releases|run CMD..." >&2; exit 64 ;;
esac

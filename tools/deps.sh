#!/usr/bin/env bash
# Install what saga needs, idempotently.  Usage: tools/deps.sh GROUP...
#   base   compilers, FUSE, the Python venv (.venv) with saga installed editable
#   bpf    clang, bpftool and libbpf, to build and load the eBPF driver
#   vm     qemu, virtme-ng and the Debian kernels + headers the module is tested on
#   pkg    Debian packaging tools and debootstrap
#   pg     a PostgreSQL server for the store tests
#   bench  the tools the benchmarks compare against (strace, bpftrace, perf, auditd)
# Runs apt-get only when a package is missing, pip only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# The kernels the module is tested on (metapackages: they follow Debian's updates).
KERNEL_PKGS="linux-image-amd64 linux-headers-amd64 linux-image-rt-amd64 linux-headers-rt-amd64
             linux-image-6.12-amd64 linux-headers-6.12-amd64"

declare -A APT=(
  [base]="gcc make pkg-config libfuse3-dev fuse3 kmod git shellcheck"
  [bpf]="clang llvm bpftool libbpf1 libbpf-dev linux-libc-dev"
  [vm]="qemu-system-x86 $KERNEL_PKGS"
  [pkg]="debhelper dh-dkms dkms dh-virtualenv debootstrap fakeroot dpkg-dev build-essential python3-venv python3-dev systemd systemd-container"
  [pg]="postgresql"
  [bench]="strace bpftrace linux-perf auditd"
)

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "deps: installing packages needs root (sudo make ...)" >&2
    exit 77
  fi
}

apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  need_root
  echo "deps: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # auditd and postgresql must not start services at install: tests start what they need.
  local policy=/usr/sbin/policy-rc.d
  if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' > $policy; chmod +x $policy
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

venv() {
  local stamp=.venv/.saga-stamp want
  want=$(sha256sum < pyproject.toml | cut -c1-16)
  if [ -x .venv/bin/python ] && [ "$(cat $stamp 2>/dev/null)" = "$want" ]; then return 0; fi
  echo "deps: building .venv"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[test,postgres]'
  echo "$want" > $stamp
}

for group in "$@"; do
  [ -n "${APT[$group]+x}" ] || { echo "deps: unknown group $group" >&2; exit 64; }
  # shellcheck disable=SC2086
  apt_install ${APT[$group]}
  case $group in
    base) venv ;;
    vm) [ -x .venv/bin/vng ] || .venv/bin/pip install -q virtme-ng ;;
    bench) [ ! -x .venv/bin/python ] || .venv/bin/python -c 'import matplotlib' 2>/dev/null \
             || .venv/bin/pip install -q matplotlib ;;  # the benchmark plots
  esac
done

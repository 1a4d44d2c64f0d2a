#!/usr/bin/env bash
# Build the Debian packages (make deb), for Debian 12 (bookworm) and 13 (trixie):
#   OUT/RELEASE/saga_<version>_amd64.deb      the CLI and daemon (a private venv), BPF object, saga.service
#   OUT/RELEASE/saga-dkms_<version>_all.deb   the module sources for DKMS
# Usage: packaging/build.sh [--release bookworm|trixie|all] [--version V] [--out DIR]
#   --release  which (default all); Debian 12's are built on this host, Debian
#              13's in a cached trixie build root (tools/debroot.py build trixie),
#              each with its release's Python (3.11, 3.13)
#   --version  stamp another version into the copy built (tests/pkg builds the
#              "previous version" an upgrade starts from); default saga.__version__
#   --out      default dist
# The tree is copied to build/deb/RELEASE/ and built there with dpkg-buildpackage
# (debhelper, dh-dkms, dh-virtualenv); pip fetches the Python dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "build: $*" >&2; exit "${2:-1}"; }

releases=(bookworm trixie)
version=""
out=dist
while [ $# -gt 0 ]; do
  case $1 in
    --release) [ "$2" = all ] || releases=("$2"); shift 2 ;;
    --version) version=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) die "usage: packaging/build.sh [--release bookworm|trixie|all] [--version V] [--out DIR]" 64 ;;
  esac
done

own=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' src/saga/__init__.py)
[ -n "$own" ] || die "no __version__ in src/saga/__init__.py"
# The module must say the same version it is packaged as.
for f in kmod/dkms.conf kmod/saga.h; do
  [ -e "$f" ] || die "$f is missing: the kernel module sources are not in this tree"
done
kmod_version=$(sed -n 's/^#define SAGA_VERSION[[:space:]]*"\(.*\)"$/\1/p' kmod/saga.h)
[ "$kmod_version" = "$own" ] \
  || die "kmod/saga.h says SAGA_VERSION \"$kmod_version\" but src/saga/__init__.py says \"$own\""
version=${version:-$own}
date=$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")

python_of() {
  case $1 in
    bookworm) echo python3.11 ;;
    trixie) echo python3.13 ;;
    *) die "unknown release $1: bookworm or trixie" 64 ;;
  esac
}

for release in "${releases[@]}"; do
  python=$(python_of "$release")
  if [ "$release" = bookworm ]; then
    for tool in dpkg-buildpackage dh dh_dkms dh_virtualenv "$python" clang; do
      command -v "$tool" >/dev/null || die "$tool not found: run tools/deps.sh pkg bpf" 69
    done
  fi
  top=build/deb/$release
  src=$top/saga-$version
  rm -rf "$top"
  mkdir -p "$src" "$out/$release"
  # What the packages are built from (no venv, no build output, no tests).
  cp -a pyproject.toml README.md src bpf kmod docs tools packaging "$src"/
  find "$src" \( -name __pycache__ -o -name '*.o' -o -name '*.so' -o -name '*.ko' -o -name '*.mod' -o -name '*.mod.c' \
    -o -name '.*.cmd' -o -name Module.symvers -o -name modules.order \) -prune -exec rm -rf {} +
  cp -a packaging/debian "$src"/debian
  if [ "$version" != "$own" ]; then
    sed -i "s/^__version__ = \".*\"$/__version__ = \"$version\"/" "$src/src/saga/__init__.py"
    sed -i "s/^#define SAGA_VERSION\([[:space:]]*\)\".*\"$/#define SAGA_VERSION\1\"$version\"/" "$src/kmod/saga.h"
  fi
  # debian/ names Debian 12's Python; another release builds with its own.
  sed -i "s/python3\.11/$python/g" "$src/debian/control" "$src/debian/rules" "$src/debian/copyright"
  # A native package: the changelog only carries the version.
  cat > "$src/debian/changelog" <<EOF
saga ($version) unstable; urgency=medium

  * saga $version.

 -- saga developers <saga@localhost>  $date
EOF
  echo "build: saga $version for $release in $src"
  if [ "$release" = bookworm ]; then
    (cd "$src" && dpkg-buildpackage -b -us -uc -j"$(nproc)") > "$top/build.log" 2>&1 || {
      tail -40 "$top/build.log" >&2
      die "dpkg-buildpackage failed (the whole log: $top/build.log)"
    }
  else
    # Debian 13's build tools do not run on this host: build in its root.
    py=.venv/bin/python
    [ -x "$py" ] || py=python3
    "$py" tools/debroot.py dpkg-buildpackage "$release" "$src" > "$top/build.log" 2>&1 || {
      tail -40 "$top/build.log" >&2
      die "dpkg-buildpackage in the $release root failed (the whole log: $top/build.log)"
    }
  fi
  for deb in "saga_${version}_amd64.deb" "saga-dkms_${version}_all.deb"; do
    mv "$top/$deb" "$out/$release/"
    echo "build: $out/$release/$deb"
  done
done

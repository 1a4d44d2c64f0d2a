#!/usr/bin/env bash
# Build the Debian packages (make deb):
#   dist/saga_<version>_amd64.deb      the CLI and daemon (a private venv), BPF object, saga.service
#   dist/saga-dkms_<version>_all.deb   the module sources for DKMS
# The version is saga.__version__ (src/saga/__init__.py).  The tree is copied
# to build/deb/ and built there with dpkg-buildpackage (debhelper, dh-dkms,
# dh-virtualenv); pip fetches the Python dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "build: $*" >&2; exit "${2:-1}"; }

for tool in dpkg-buildpackage dh dh_dkms dh_virtualenv python3.11 clang; do
  command -v "$tool" >/dev/null || die "$tool not found: run tools/deps.sh pkg bpf" 69
done

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' src/saga/__init__.py)
[ -n "$version" ] || die "no __version__ in src/saga/__init__.py"

# The module must say the same version it is packaged as.
for f in kmod/dkms.conf kmod/saga.h; do
  [ -e "$f" ] || die "$f is missing: the kernel module sources are not in this tree"
done
kmod_version=$(sed -n 's/^#define SAGA_VERSION[[:space:]]*"\(.*\)"$/\1/p' kmod/saga.h)
[ "$kmod_version" = "$version" ] \
  || die "kmod/saga.h says SAGA_VERSION \"$kmod_version\" but src/saga/__init__.py says \"$version\""

top=build/deb
src=$top/saga-$version
rm -rf "$top"
mkdir -p "$src" dist
# What the packages are built from (no venv, no build output, no tests).
cp -a pyproject.toml README.md src bpf kmod docs tools packaging "$src"/
find "$src" \( -name __pycache__ -o -name '*.o' -o -name '*.ko' -o -name '*.mod' -o -name '*.mod.c' -o -name '.*.cmd' \
  -o -name Module.symvers -o -name modules.order \) -prune -exec rm -rf {} +
cp -a packaging/debian "$src"/debian

# A native package: the changelog only carries the version.
date=$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")
cat > "$src/debian/changelog" <<EOF
saga ($version) unstable; urgency=medium

  * saga $version.

 -- saga developers <saga@localhost>  $date
EOF

echo "build: saga $version in $src"
(cd "$src" && dpkg-buildpackage -b -us -uc -j"$(nproc)") > "$top/build.log" 2>&1 || {
  tail -40 "$top/build.log" >&2
  die "dpkg-buildpackage failed (the whole log: $top/build.log)"
}
for deb in "saga_${version}_amd64.deb" "saga-dkms_${version}_all.deb"; do
  mv "$top/$deb" dist/
  echo "build: dist/$deb"
done

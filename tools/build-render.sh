#!/usr/bin/env bash
# Build the compiled renderer (src/saga/_render.c -> src/saga/_render.so), which
# saga.fastrender loads with ctypes: it links only libc, so one binary serves
# every Python version.  Without it the daemon renders in Python (slower).
# Usage: tools/build-render.sh [OUT]   (default src/saga/_render.so)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-src/saga/_render.so}
CC=${CC:-cc}
command -v "$CC" >/dev/null || { echo "build-render: $CC not found: run tools/deps.sh base" >&2; exit 69; }
[ -e /usr/include/linux/types.h ] || { echo "build-render: linux-libc-dev not found: run tools/deps.sh bpf" >&2; exit 69; }
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
"$CC" -O2 -fPIC -shared -Wall -Wextra -Werror -I kmod/include/uapi -o "$tmp" src/saga/_render.c
mv "$tmp" "$out"
echo "build-render: $out"

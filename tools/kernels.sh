#!/usr/bin/env bash
# Print the kernel releases the module is tested on (tools/deps.sh vm installs
# them), chosen by Debian's metapackages so the matrix follows Debian's updates:
#   Debian 12 (this machine): linux-image-amd64 (6.1) and linux-image-rt-amd64 (6.1 PREEMPT_RT)
#   Debian 13 (the root of tools/kernel-root.sh): the same two metapackages in
#   trixie (6.12) and in trixie-backports (7.x)
set -euo pipefail
cd "$(dirname "$0")/.."
for meta in linux-image-amd64 linux-image-rt-amd64; do
  dep=$(dpkg-query -W -f '${Depends}' "$meta" 2>/dev/null) || { echo "kernels: $meta is not installed (tools/deps.sh vm)" >&2; exit 1; }
  grep -oE "linux-image-[0-9][^ ,]*" <<<"$dep" | head -1 | sed 's/^linux-image-//'
done
tools/kernel-root.sh releases

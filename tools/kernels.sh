#!/usr/bin/env bash
# Print the kernel releases the module is tested on (tools/deps.sh vm installs
# them), chosen by Debian's metapackages so the matrix follows Debian's updates:
#   Debian 12 (this machine): linux-image-amd64 (6.1) and linux-image-rt-amd64 (6.1 PREEMPT_RT)
#   Debian 13 (the root of tools/kernel-root.sh): the same two metapackages in
#   trixie (6.12) and in trixie-backports (7.x)
# With --ebpf: the ones tools/vmtest also runs the eBPF driver's tests on,
# the oldest and the newest (Debian 12's 6.1, trixie-backports' 7.x).
set -euo pipefail
cd "$(dirname "$0")/.."

bookworm() {
  local dep
  dep=$(dpkg-query -W -f '${Depends}' "$1" 2>/dev/null) || { echo "kernels: $1 is not installed (tools/deps.sh vm)" >&2; exit 1; }
  grep -oE "linux-image-[0-9][^ ,]*" <<<"$dep" | head -1 | sed 's/^linux-image-//'
}

if [ "${1:-}" = --ebpf ]; then
  bookworm linux-image-amd64
  tools/kernel-root.sh releases trixie-backports:linux-image-amd64
  exit
fi
bookworm linux-image-amd64
bookworm linux-image-rt-amd64
tools/kernel-root.sh releases

#!/usr/bin/env bash
# Print the kernel releases the module is tested on: what Debian's
# linux-image-amd64, linux-image-rt-amd64 and linux-image-6.12-amd64
# metapackages currently point at (installed by tools/deps.sh vm).
set -euo pipefail
for meta in linux-image-amd64 linux-image-rt-amd64 linux-image-6.12-amd64; do
  dep=$(dpkg-query -W -f '${Depends}' "$meta" 2>/dev/null) || { echo "kernels: $meta is not installed (tools/deps.sh vm)" >&2; exit 1; }
  dep=${dep%% *}
  echo "${dep#linux-image-}"
done

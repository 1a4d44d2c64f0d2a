#!/usr/bin/env bash
# Build saga's BPF object (CO-RE: relocated against the running kernel's BTF
# by libbpf at load time, so one object serves every kernel).
# Usage: tools/build-bpf.sh [OUT]   (default src/saga/drivers/ebpf/saga.bpf.o)
# Extra programs (e.g. the benchmark's floor): tools/build-bpf.sh OUT SRC.bpf.c
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-src/saga/drivers/ebpf/saga.bpf.o}
src=${2:-bpf/saga.bpf.c}
CLANG=${CLANG:-clang}
command -v "$CLANG" >/dev/null || { echo "build-bpf: $CLANG not found: run tools/deps.sh bpf" >&2; exit 69; }
[ -e /usr/include/bpf/bpf_helpers.h ] || { echo "build-bpf: libbpf headers not found: run tools/deps.sh bpf" >&2; exit 69; }
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
# -mcpu=v3 (Linux 5.1+): 32-bit ALU and jumps; measurably cheaper probes than clang's v1 default.
# -ffile-prefix-map: the object names sources relative to the tree, not where it was built.
"$CLANG" -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_x86 -Wall -Werror -ffile-prefix-map="$PWD"=. \
  -I bpf -I kmod/include/uapi -I kmod -I "/usr/include/$multiarch" \
  -c "$src" -o "$tmp"
# Keep BTF (CO-RE needs it), drop DWARF.
llvm-strip -g "$tmp" 2>/dev/null || true
mv "$tmp" "$out"
echo "build-bpf: $out"

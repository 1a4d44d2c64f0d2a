# shellcheck shell=bash
# Shared by tools/vmtest and bench/kmod/run (source it; bash).
# Builds saga.ko and the C workloads on the host, and boots one kernel with
# virtme-ng (TCG: no KVM here) to run a script inside.
#
#   vm_build_module REL DIR     saga.ko for REL in DIR (a copy of kmod/), warnings fail
#   vm_build_workloads DIR      tests/kernel/workloads/*.c -> DIR/<name>
#   vm_boot REL RESULTS SCRIPT  boot REL, run SCRIPT inside (RESULTS is writable there);
#                               console in RESULTS/console.log; returns vng's status
#   vm_splats FILE...           print kernel-log lines that show a kernel bug

VM_ROOT=${VM_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
VM_TIMEOUT=${SAGA_VM_TIMEOUT:-1200}   # seconds for one boot, tests included
VM_MEMORY=${SAGA_VM_MEMORY:-2G}
VM_CPUS=${SAGA_VM_CPUS:-2}

vm_build_module() {
  local rel=$1 dir=$2 kdir=/usr/src/linux-headers-$1
  if [ ! -d "$kdir" ]; then
    echo "no headers for $rel in $kdir (tools/deps.sh vm installs them)" >"$dir.log"
    return 1
  fi
  rm -rf "$dir" && mkdir -p "$dir"
  cp -r "$VM_ROOT"/kmod/. "$dir"/
  rm -f "$dir"/*.o "$dir"/*.ko "$dir"/*.mod* "$dir"/.*.cmd "$dir"/Module.symvers "$dir"/modules.order
  if ! make -C "$dir" KDIR="$kdir" SAGA_WERROR=1 >"$dir.log" 2>&1; then
    return 1
  fi
  # warning-free: any compiler or modpost warning fails the build
  if grep -E "warning:|WARNING:" "$dir.log" >&2; then
    return 1
  fi
  [ -f "$dir/saga.ko" ]
}

vm_build_workloads() {
  local dir=$1 src
  mkdir -p "$dir"
  for src in "$VM_ROOT"/tests/kernel/workloads/*.c; do
    gcc -O2 -Wall -Wextra -Werror -o "$dir/$(basename "$src" .c)" "$src" || return 1
  done
}

vm_boot() {
  local rel=$1 results=$2 script=$3
  local vng=$VM_ROOT/.venv/bin/vng
  [ -x "$vng" ] || { echo "virtme-ng is missing: tools/deps.sh vm" >&2; return 1; }
  [ -f "/boot/vmlinuz-$rel" ] || { echo "no /boot/vmlinuz-$rel: tools/deps.sh vm" >&2; return 1; }
  # virtme-ng finds its helpers on PATH; a hung guest is killed, never waited for.
  # One TCG thread for all vCPUs: with multi-threaded TCG a vCPU can run a
  # stale translation of kernel text another vCPU is live-patching
  # (text_poke_bp when the syscall tracepoints' static keys flip at module
  # load), which oopses on a leftover int3 that real CPUs never see.  The
  # price: vCPUs take turns (up to 100 ms each) instead of running at once.
  PATH="$VM_ROOT/.venv/bin:$PATH" timeout --kill-after=30 "$VM_TIMEOUT" \
    "$vng" --run "/boot/vmlinuz-$rel" --disable-kvm --force-9p \
      --verbose --memory "$VM_MEMORY" --cpus "$VM_CPUS" --rwdir "$results" \
      --qemu-opts="-accel tcg,thread=single" \
      --exec "sh $script" </dev/null >"$results/console.log" 2>&1
}

# Kernel-log lines that mean a kernel bug, whatever the tests said.
VM_SPLAT_RE='BUG:|WARNING:|Oops|Call Trace|KASAN|UBSAN|general protection fault|Kernel panic|soft lockup|hard LOCKUP|rcu_sched self-detected|rcu: INFO|blocked for more than|circular locking dependency|possible recursive locking|inconsistent lock state|sleeping function called from invalid context|scheduling while atomic'

vm_splats() {
  grep -hE "$VM_SPLAT_RE" "$@" 2>/dev/null
}

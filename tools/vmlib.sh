# shellcheck shell=bash
# Shared by tools/vmtest and bench/kmod/run (source it; bash).
# Builds saga.ko and the C workloads with the toolchain of the kernel's own
# Debian release, and boots one kernel with virtme-ng (TCG: no KVM here) to
# run a script inside.
#
# A kernel whose headers are on this machine (Debian 12's) is built here and
# boots this machine's root; a Debian 13 kernel (trixie, trixie-backports) is
# built in the Debian 13 root of tools/kernel-root.sh and boots that root
# (`vng --root`): its kbuild tools need trixie's libc, and its guest gets
# trixie's userland.
#
#   vm_sysroot REL              "/" or the Debian 13 root, where REL is built and booted
#   vm_build_module REL DIR     saga.ko for REL in DIR (a copy of kmod/), warnings fail
#   vm_build_workloads DIR REL  tests/kernel/workloads/*.c -> DIR/<name>, for REL's userland
#   vm_snapshot REL RESULTS     the tree's Python parts in RESULTS/tree, compiled for REL's guest
#   vm_guest REL RESULTS        set G_TREE, G_RES, G_PY: that snapshot, RESULTS and the Python
#                               that runs saga, as the guest of REL sees them
#   vm_boot REL RESULTS SCRIPT  boot REL, run SCRIPT (a file in RESULTS) inside; RESULTS is
#                               writable there; console in RESULTS/console.log; returns
#                               vng's status
#   vm_splats FILE...           print kernel-log lines that show a kernel bug

VM_ROOT=${VM_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
VM_TIMEOUT=${SAGA_VM_TIMEOUT:-2400}   # seconds for one boot, tests included (a hang guard: a loaded host needs long)
VM_MEMORY=${SAGA_VM_MEMORY:-2G}
VM_CPUS=${SAGA_VM_CPUS:-2}
VM_KROOT=$("$VM_ROOT/tools/kernel-root.sh" path)

vm_sysroot() {
  if [ -d "/usr/src/linux-headers-$1" ]; then
    echo /
  elif [ -d "$VM_KROOT/usr/src/linux-headers-$1" ]; then
    echo "$VM_KROOT"
  else
    return 1
  fi
}

# Run a build command with REL's toolchain; DIR is where it works (/saga/results in the root).
vm_in_sysroot() {
  local rel=$1 dir=$2
  shift 2
  if [ "$(vm_sysroot "$rel")" = / ]; then
    (cd "$dir" && "$@")
  else
    "$VM_ROOT/tools/kernel-root.sh" run --bind "$dir" sh -c 'cd /saga/results && exec "$@"' sh "$@"
  fi
}

vm_build_module() {
  local rel=$1 dir=$2
  if ! vm_sysroot "$rel" >/dev/null; then
    echo "no headers for $rel here or in $VM_KROOT (tools/deps.sh vm installs them)" >"$dir.log"
    return 1
  fi
  rm -rf "$dir" && mkdir -p "$dir"
  cp -r "$VM_ROOT"/kmod/. "$dir"/
  rm -f "$dir"/*.o "$dir"/*.ko "$dir"/*.mod* "$dir"/.*.cmd "$dir"/Module.symvers "$dir"/modules.order
  if ! vm_in_sysroot "$rel" "$dir" make KDIR="/usr/src/linux-headers-$rel" SAGA_WERROR=1 >"$dir.log" 2>&1; then
    return 1
  fi
  # warning-free: any compiler or modpost warning fails the build
  if grep -E "warning:|WARNING:" "$dir.log" >&2; then
    return 1
  fi
  [ -f "$dir/saga.ko" ]
}

vm_build_workloads() {
  local dir=$1 rel=$2 src name
  rm -rf "$dir" && mkdir -p "$dir/src"
  cp "$VM_ROOT"/tests/kernel/workloads/*.c "$dir/src/"
  cp -r "$VM_ROOT"/kmod/include/uapi "$dir/src/"   # <linux/saga.h>
  for src in "$dir"/src/*.c; do
    name=$(basename "$src" .c)
    vm_in_sysroot "$rel" "$dir" gcc -O2 -Wall -Wextra -Werror -Isrc/uapi -o "$name" "src/$name.c" || return 1
  done
}

# The guest runs a snapshot of the tree's Python parts in RESULTS/tree,
# compiled natively beforehand by the guest's own Python: an uncompiled
# module costs every process that imports it seconds under TCG, and the
# tree itself stays free of __pycache__.
vm_snapshot() {
  local rel=$1 res=$2
  rm -rf "$res/tree" && mkdir -p "$res/tree"
  cp -r "$VM_ROOT"/pyproject.toml "$VM_ROOT"/src "$VM_ROOT"/tests "$VM_ROOT"/bench "$VM_ROOT"/tools "$res/tree/"
  find "$res/tree" -name __pycache__ -prune -exec rm -rf {} +
  vm_guest "$rel" "$res"
  if [ "$(vm_sysroot "$rel")" = / ]; then
    "$G_PY" -m compileall -q "$G_TREE/src" "$G_TREE/tests" "$G_TREE/bench" "$G_TREE/tools"
  else
    "$VM_ROOT/tools/kernel-root.sh" run --bind "$res" \
      "$G_PY" -m compileall -q "$G_TREE/src" "$G_TREE/tests" "$G_TREE/bench" "$G_TREE/tools"
  fi
}

vm_guest() {
  local rel=$1 res=$2
  if [ "$(vm_sysroot "$rel")" = / ]; then
    G_RES=$res G_PY=$VM_ROOT/.venv/bin/python
  else
    G_RES=/saga/results G_PY=$("$VM_ROOT/tools/kernel-root.sh" venv)/bin/python || return 1
  fi
  G_TREE=$G_RES/tree
}

vm_boot() {
  local rel=$1 results=$2 script=$3 sysroot
  local vng=$VM_ROOT/.venv/bin/vng
  local where=(--rwdir "$results")
  [ -x "$vng" ] || { echo "virtme-ng is missing: tools/deps.sh vm" >&2; return 1; }
  sysroot=$(vm_sysroot "$rel") || { echo "no kernel $rel: tools/deps.sh vm" >&2; return 1; }
  [ "$sysroot" = / ] && sysroot=""    # virtme-ng knows /boot/vmlinuz-REL as an installed kernel, not //boot
  [ -f "$sysroot/boot/vmlinuz-$rel" ] || { echo "no $sysroot/boot/vmlinuz-$rel: tools/deps.sh vm" >&2; return 1; }
  vm_guest "$rel" "$results"
  if [ -n "$sysroot" ]; then
    where=(--root "$sysroot" --rwdir "/saga/results=$results")
  fi
  # virtme-ng finds its helpers on PATH; a hung guest is killed, never waited for.
  # One TCG thread for all vCPUs: with multi-threaded TCG a vCPU can run a
  # stale translation of kernel text another vCPU is live-patching
  # (text_poke_bp when the syscall tracepoints' static keys flip at module
  # load), which oopses on a leftover int3 that real CPUs never see.  The
  # price: vCPUs take turns (up to 100 ms each) instead of running at once.
  # no_timer_check: on a busy host TCG can be too slow for the boot's IO-APIC
  # timer check, which then panics ("IO-APIC + timer doesn't work!").
  PATH="$VM_ROOT/.venv/bin:$PATH" timeout --kill-after=30 "$VM_TIMEOUT" \
    "$vng" --run "$sysroot/boot/vmlinuz-$rel" "${where[@]}" --disable-kvm --force-9p \
      --verbose --memory "$VM_MEMORY" --cpus "$VM_CPUS" --append no_timer_check \
      --qemu-opts="-accel tcg,thread=single" \
      --exec "sh $G_RES/${script#"$results"/}" </dev/null >"$results/console.log" 2>&1
}

# Kernel-log lines that mean a kernel bug, whatever the tests said.
VM_SPLAT_RE='BUG:|WARNING:|Oops|Call Trace|KASAN|UBSAN|general protection fault|Kernel panic|soft lockup|hard LOCKUP|rcu_sched self-detected|rcu: INFO|blocked for more than|circular locking dependency|possible recursive locking|inconsistent lock state|sleeping function called from invalid context|scheduling while atomic'

# virtme-ng-init's own lines (user space: "WARNING: failed to run" a tool the
# guest's root lacks) are not the kernel's.
vm_splats() {
  grep -hE "$VM_SPLAT_RE" "$@" 2>/dev/null | grep -vE "^(\[ *[0-9.]+\] )?virtme-ng-init: "
}

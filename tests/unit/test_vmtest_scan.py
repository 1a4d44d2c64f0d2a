"""tools/vmlib.sh's kernel-log scan: real splats fail a VM run, ordinary boot lines do not."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SPLATS = [
    "[  183.317287] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI",
    "[   12.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008",
    "[   12.000000] WARNING: CPU: 1 PID: 616 at kernel/rcu/tree.c:123 foo+0x1/0x2",
    "[   12.000000] Call Trace:",
    "[   12.000000] BUG: sleeping function called from invalid context at kernel/locking/spinlock_rt.c:48",
    "[   12.000000] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [calls:616]",
    "[   12.000000] INFO: task calls:616 blocked for more than 120 seconds.",
]
CLEAN = [
    "[    1.635621] PCI: Using host bridge windows from ACPI; if necessary, use \"pci=nocrs\" and report a bug",
    "[   51.191940] saga: loading out-of-tree module taints kernel.",
    "[    0.000000] Kernel command line: console=ttyS0 panic=-1",
    "[    2.993860] RAS: Correctable Errors collector initialized.",
    '[   13.862265] virtme-ng-init: WARNING: failed to run: "systemd-tmpfiles" --create --boot (error: No such file)',
]


def scan(tmp_path, lines):
    log = tmp_path / "dmesg.txt"
    log.write_text("\n".join(lines) + "\n")
    out = subprocess.run(["bash", "-c", f". {ROOT}/tools/vmlib.sh && vm_splats {log}"],
                         capture_output=True, text=True)
    return out.stdout.splitlines()


def test_each_splat_is_found(tmp_path):
    for line in SPLATS:
        assert scan(tmp_path, CLEAN + [line]) == [line]


def test_a_clean_boot_log_passes(tmp_path):
    assert scan(tmp_path, CLEAN) == []

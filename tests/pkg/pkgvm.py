"""Boot the test machine (its own kernel, its root over 9p) with virtme-ng and
check the installed packages at work: nothing loads saga.ko at boot,
`saga daemon` from the package (as saga.service runs it) loads the
DKMS-built module with modprobe, udev's rule applies to /dev/saga, the
daemon serves `cat /sagafs/log`, and when it stops the module is removed.

The guest script prints KEY=VALUE facts; the test asserts on them and shows
the guest's log, the daemon's log and the console when one is missing.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = int(os.environ.get("SAGA_VM_TIMEOUT", "900"))
OUT = "/root/saga-test/vm"     # in the machine: the guest writes its results here

GUEST = r"""#!/bin/sh
# Runs inside the VM, as root, on the test machine's root filesystem.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
out=@OUT@
exec >$out/guest.log 2>&1
fact() { echo "$1=$2" >>$out/facts; }
set -x
uname -r

# What boot loads (modules-load.d): saga.ko must not be among it.
/lib/systemd/systemd-modules-load
[ -d /sys/module/saga ] || fact NOT_LOADED_AT_BOOT 1

# The daemon, as saga.service runs it.  SQLite cannot lock on the 9p root:
# the archive's directory gets a tmpfs (same path, same configuration).
mount -t tmpfs -o mode=0700 tmpfs /var/lib/saga
saga daemon >$out/daemon.log 2>&1 &
pid=$!
i=0
while [ $i -lt 180 ]; do
    [ -S /run/saga/saga.sock ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 1; i=$((i + 1))
done
i=0
while [ $i -lt 60 ] && kill -0 $pid 2>/dev/null && ! mountpoint -q /sagafs; do
    grep -q 'sagafs is not available' $out/daemon.log && break
    sleep 1; i=$((i + 1))
done
saga status --json >$out/status.json 2>&1
[ -d /sys/module/saga ] && fact MODULE_LOADED 1
fact MODULE_VERSION "$(cat /sys/module/saga/version)"
# What udev makes of /dev/saga with the package's rule.
devpath=$(udevadm info -q path -n /dev/saga)
udevadm test --action=add "$devpath" >$out/udev.log 2>&1
grep -q '60-saga-dkms.rules' $out/udev.log && grep -Eq "MODE.*0600|0600" $out/udev.log && fact UDEV_RULE 1
fact DEVMODE "$(stat -c '%a %U %G' /dev/saga)"
mountpoint -q /sagafs && fact SAGAFS_MOUNTED 1
for n in 1 2 3; do ls / >/dev/null; cat /etc/hostname >/dev/null; done
sleep 2
timeout 60 cat /sagafs/log >$out/sagafs-log.txt 2>&1
fact CAT_EXIT $?
fact LOG_LINES "$(grep -c 'comm=' $out/sagafs-log.txt)"
kill -TERM $pid
wait $pid
fact DAEMON_EXIT $?
[ -d /sys/module/saga ] || fact MODULE_REMOVED 1
umount /var/lib/saga
"""


@dataclasses.dataclass
class Result:
    facts: dict
    files: dict[str, str]

    def details(self) -> str:
        parts = [f"facts: {self.facts}"]
        for name, text in self.files.items():
            parts.append(f"--- {name} (last 40 lines)\n" + "\n".join(text.splitlines()[-40:]))
        return "\n".join(parts)


def boot_and_check(installed) -> Result:
    m = installed.machine
    vng = REPO / ".venv/bin/vng"
    assert vng.exists(), "virtme-ng is missing: tools/deps.sh vm"
    kernel = m.default_kernel()
    out = m.path(OUT)
    subprocess.run(["rm", "-rf", str(out)], check=True)
    out.mkdir(parents=True)
    script = out / "guest.sh"
    script.write_text(GUEST.replace("@OUT@", OUT))
    console = out / "console.log"
    env = dict(os.environ, PATH=f"{REPO / '.venv/bin'}:{os.environ['PATH']}")
    # One TCG thread for all vCPUs: the module's static-key patching at load
    # needs it under emulation (see tools/vmlib.sh in the kmod work).
    cmd = [str(vng), "--run", str(m.path(f"/boot/vmlinuz-{kernel}")), "--root", str(m.root), "--rw",
           "--disable-kvm", "--force-9p", "--memory", "1G", "--cpus", "2",
           "--qemu-opts=-accel tcg,thread=single", "--exec", f"sh {OUT}/guest.sh"]
    with open(console, "w") as con:
        # A session of its own: at the timeout, qemu (vng's grandchild) goes too.
        vm = subprocess.Popen(cmd, cwd=m.root, env=env, stdin=subprocess.DEVNULL, stdout=con,
                              stderr=subprocess.STDOUT, start_new_session=True)
        try:
            vm.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(vm.pid, signal.SIGKILL)
            vm.wait()
            con.write(f"\n[test: the VM did not finish in {TIMEOUT} s]\n")
    facts: dict = {}
    if (out / "facts").exists():
        for line in (out / "facts").read_text().splitlines():
            key, _, value = line.partition("=")
            facts[key] = int(value) if value.isdigit() and key not in ("DAEMON_EXIT", "MODULE_VERSION") else value
    status = out / "status.json"
    if status.exists():
        try:
            facts["DRIVER"] = _driver(json.loads(status.read_text()))
        except ValueError:
            pass
    files = {name: (out / name).read_text(errors="replace") for name in
             ("guest.log", "daemon.log", "status.json", "udev.log", "sagafs-log.txt", "console.log")
             if (out / name).exists()}
    return Result(facts, files)


def _driver(status: dict) -> str | None:
    """The driver kind in `saga status --json` ({"driver": {"kind": ...}} or {"driver": "kmod"})."""
    d = status.get("driver")
    if isinstance(d, dict):
        return d.get("kind") or d.get("name")
    return d

"""Boot the test machine in a VM (virtme-ng, the machine's own kernel, its root
over 9p) with systemd as PID 1, and check the module's side of the service's
lifecycle: saga.service (enabled by the package) starts at boot on the
DKMS-built module, which it loads with modprobe; udev's rule applies to
/dev/saga; /sagafs/log shows a call a rule logs; a restart keeps the rules;
`systemctl stop saga` removes the module, unless daemon.keep_capturing; and
`apt purge saga saga-dkms` leaves no module loaded or built.

The boot happens on a throwaway overlay of the installed machine, so the
chroot tests that follow see the machine as it was.  A unit added for the
boot (saga-vmcheck.service) runs the guest script once saga.service's start
job is done, and powers the VM off when it ends.  The overlay also gets what
the VM, not saga, needs: a tmpfs on /var/lib/saga (SQLite cannot lock on the
9p root), start and stop timeouts for TCG's speed, no man-db index rebuild;
units the check does not need are masked on the kernel's command line.  The script writes KEY=VALUE
facts, its log and the journal into build/pkgvm/<release>/ (an --rwdir); the
test asserts on the facts and shows the rest when one is missing.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import time

from pkgroot import REPO, Overlay

TIMEOUT = int(os.environ.get("SAGA_VM_TIMEOUT", "1800"))   # a hang guard: a loaded host needs long
RESULTS = "/run/saga-vmcheck"     # in the guest: the host's results directory (--rwdir)
MARKER = "vm-marker"              # a copy of cat whose calls a rule logs (no "saga" in its name)

GUEST = r"""#!/bin/sh
# Runs inside the VM, as root, from saga-vmcheck.service once saga.service's start job is done.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root
out=@RESULTS@
exec >$out/guest.log 2>&1
fact() { echo "$1=$2" >>$out/facts; }
now() { cut -d. -f1 /proc/uptime; }
state() { systemctl show -p ActiveState --value saga; }
loaded() { [ -d /sys/module/saga ] || lsmod | grep -qw '^saga'; }
# Poll with a deadline (seconds) until the command succeeds; the caller then asserts the state.
until_ok() {
    end=$(( $(now) + $1 )); shift
    until "$@"; do
        [ "$(now)" -ge "$end" ] && return 1
        sleep 1
    done
}
settled() { case $(state) in active|failed|inactive) return 0;; esac; return 1; }
gone() { ! loaded; }
# (Between comm= and the call, where it runs: unit=saga-vmcheck.service.)
logged() { grep -F "comm=@MARKER@ " /sagafs/log 2>/dev/null | grep -qF "openat(AT_FDCWD, \"$1\""; }
finish() {
    journalctl -b --no-pager >$out/journal.txt 2>&1
    dmesg >$out/dmesg.txt 2>&1
    fact DONE 1
}
trap finish EXIT
set -x
uname -r
echo "boot $(now)" >$out/times

# Boot: the package enabled saga.service; its start job is done (Type=notify: READY=1, or failed).
until_ok 600 settled
fact BOOT_STATE "$(state)"
loaded && fact LOADED_AT_BOOT 1
fact MODULE_VERSION "$(cat /sys/module/saga/version)"
fact STATUS_TEXT "$(systemctl show -p StatusText --value saga)"
systemctl status saga --no-pager >$out/systemctl-status.txt 2>&1
# What udev makes of /dev/saga with the package's rule.
devpath=$(udevadm info -q path -n /dev/saga)
udevadm test --action=add "$devpath" >$out/udev.log 2>&1
grep -q '60-saga-dkms.rules' $out/udev.log && grep -Eq "MODE.*0600|0600" $out/udev.log && fact UDEV_RULE 1
fact DEVMODE "$(stat -c '%a %U %G' /dev/saga)"
mountpoint -q /sagafs && fact SAGAFS_MOUNTED 1

# A rule that logs the marker's calls; its call shows in /sagafs/log.
cp /bin/cat /usr/local/bin/@MARKER@
saga rules add log all --comm @MARKER@ --first && fact RULE_ADDED 1
cat /sagafs/rules >$out/rules-before.txt    # (as `saga rules list` prints them, without a Python start)
@MARKER@ /etc/hostname >/dev/null
until_ok 300 logged /etc/hostname && fact LOGGED 1
cp /sagafs/log $out/sagafs-log.txt

# A restart keeps the rules, and they are in force in the module again.
echo "restart $(now)" >>$out/times
systemctl restart saga
fact RESTART_STATE "$(state)"
loaded && fact LOADED_AFTER_RESTART 1
cat /sagafs/rules >$out/rules-after.txt
grep -q 'comm=@MARKER@' $out/rules-after.txt && cmp -s $out/rules-before.txt $out/rules-after.txt && fact RULES_KEPT 1
@MARKER@ /etc/os-release >/dev/null
until_ok 300 logged /etc/os-release && fact LOGGED_AFTER_RESTART 1

# Stop: the daemon removes the module and unmounts /sagafs.
echo "stop $(now)" >>$out/times
systemctl stop saga
fact STOP_STATE "$(state)"
until_ok 60 gone && fact UNLOADED_AT_STOP 1
mountpoint -q /sagafs || fact SAGAFS_UNMOUNTED 1

# daemon.keep_capturing: the start loads the module, the stop leaves it loaded.
sed -i 's/^#keep_capturing = false$/keep_capturing = true/' /etc/saga/saga.toml
grep -qx 'keep_capturing = true' /etc/saga/saga.toml && fact KEEP_SET 1
echo "keep $(now)" >>$out/times
systemctl start saga
fact KEEP_START_STATE "$(state)"
loaded && fact LOADED_AT_START 1
systemctl stop saga
fact KEEP_STOP_STATE "$(state)"
loaded && fact KEPT_AT_STOP 1
saga status >$out/status-kept.txt 2>&1
grep -q 'the driver captures on its own (daemon.keep_capturing)' $out/status-kept.txt && fact STATUS_SAYS_KEPT 1

# Purge, the module kept loaded: nothing stays loaded or built.  (First the harness's tmpfs goes
# from /var/lib/saga, which purge removes.)
echo "purge $(now)" >>$out/times
systemctl stop var-lib-saga.mount
DEBIAN_FRONTEND=noninteractive apt-get purge -y saga saga-dkms >$out/purge.log 2>&1
fact PURGE_EXIT $?
until_ok 60 gone && fact UNLOADED_AT_PURGE 1
fact BUILT_LEFT "$(find /lib/modules /var/lib/dkms /usr/src -name 'saga*' 2>/dev/null | tr '\n' ' ')"
fact UNIT_AFTER_PURGE "$(systemctl show -p LoadState --value saga)"
cp /var/log/dpkg.log $out/dpkg.log
echo "end $(now)" >>$out/times
"""

# Added to the VM's overlay for the boot.
UNITS = {
    "etc/systemd/system/saga-vmcheck.service": f"""[Unit]
Description=saga package test (tests/pkg/pkgvm.py)
After=saga.service
# The VM ends when the check does, whatever its outcome.
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
# virtme-ng exports the results directory (--rwdir) as virtme.initmount0; with systemd as
# init nothing else mounts it.
ExecStartPre=/bin/mkdir -p {RESULTS}
ExecStartPre=/bin/mount -t 9p -o rw,version=9p2000.L,trans=virtio,access=any,msize=524288 virtme.initmount0 {RESULTS}
ExecStart=/bin/sh {RESULTS}/guest.sh
""",
    "etc/systemd/system/multi-user.target.wants/saga-vmcheck.service": "../saga-vmcheck.service",
    # SQLite cannot lock on the 9p root: the archive's directory gets a tmpfs
    # (same path, same configuration).
    "etc/systemd/system/var-lib-saga.mount": """[Unit]
Before=local-fs.target

[Mount]
What=tmpfs
Where=/var/lib/saga
Type=tmpfs
Options=mode=0700
""",
    "etc/systemd/system/local-fs.target.wants/var-lib-saga.mount": "../var-lib-saga.mount",
    # Under TCG a Python start takes tens of seconds (the daemon's start 45 to 60 s at load 3 to 6, the
    # stop's ExecStopPost 30 s): the unit's own limits (systemd's default 90 s to start, 45 s to stop) are
    # for real CPUs, and a loaded host would make the unit fail for no fault of saga's.
    "etc/systemd/system/saga.service.d/tcg.conf": "[Service]\nTimeoutStartSec=600\nTimeoutStopSec=600\n",
}

# What the check does not need at boot (each unit costs seconds under TCG).
MASKED = ["serial-getty@ttyS0.service", "getty.target", "timers.target", "e2scrub_reap.service",
          "systemd-pstore.service", "remote-fs.target", "systemd-logind.service", "dbus.service",
          "dbus.socket", "systemd-update-utmp.service", "systemd-journal-flush.service"]


@dataclasses.dataclass
class Result:
    facts: dict[str, str]
    files: dict[str, str]
    seconds: float

    def details(self) -> str:
        parts = [f"facts: {self.facts}", f"the VM ran {self.seconds:.0f} s"]
        for name, text in self.files.items():
            parts.append(f"--- {name} (last 40 lines)\n" + "\n".join(text.splitlines()[-40:]))
        return "\n".join(parts)


def boot_and_check(installed) -> Result:
    """Boot a throwaway overlay of the installed machine with systemd, run GUEST; its facts and files."""
    vng = REPO / ".venv/bin/vng"
    assert vng.exists(), "virtme-ng is missing: tools/deps.sh vm"
    kernel = installed.machine.default_kernel()
    out = REPO / "build/pkgvm" / installed.release.suite
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "guest.sh").write_text(GUEST.replace("@RESULTS@", RESULTS).replace("@MARKER@", MARKER))
    vm = Overlay(installed.machine.root)
    try:
        # Services start as on any system (the chroot base forbids it with policy-rc.d).
        vm.path("/usr/sbin/policy-rc.d").unlink(missing_ok=True)
        # man-db's trigger would index every manual page again at the purge: minutes under TCG, none of saga's.
        vm.path("/var/lib/man-db/auto-update").unlink(missing_ok=True)
        for rel, text in UNITS.items():
            path = vm.path(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            if ".wants/" in rel:
                path.symlink_to(text)
            else:
                path.write_text(text)
        env = dict(os.environ, PATH=f"{REPO / '.venv/bin'}:{os.environ['PATH']}")
        # As tools/vmlib.sh boots its guests: one TCG thread for all vCPUs (the module's static-key
        # patching at load needs it under emulation), no_timer_check (a slow TCG boot fails it).
        cmd = [str(vng), "--run", str(vm.path(f"/boot/vmlinuz-{kernel}")), "--root", str(vm.root), "--rw",
               "--systemd", f"--rwdir={RESULTS}={out}", "--disable-kvm", "--force-9p", "--memory", "1G",
               "--cpus", "2", "--qemu-opts=-accel tcg,thread=single", "--append", "no_timer_check",
               *(f"--append=systemd.mask={unit}" for unit in MASKED)]
        start = time.monotonic()
        with open(out / "console.log", "w") as con:
            # A session of its own: at the timeout, qemu (vng's grandchild) goes too.
            proc = subprocess.Popen(cmd, cwd=vm.root, env=env, stdin=subprocess.DEVNULL, stdout=con,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                con.write(f"\n[test: the VM did not finish in {TIMEOUT} s]\n")
        seconds = time.monotonic() - start
    finally:
        vm.close()
    facts: dict[str, str] = {}
    if (out / "facts").exists():
        for line in (out / "facts").read_text().splitlines():
            key, _, value = line.partition("=")
            facts[key] = value
    files = {name: (out / name).read_text(errors="replace") for name in
             ("times", "guest.log", "systemctl-status.txt", "status-kept.txt", "purge.log", "dpkg.log",
              "udev.log", "journal.txt", "console.log") if (out / name).exists()}
    return Result(facts, files, seconds)

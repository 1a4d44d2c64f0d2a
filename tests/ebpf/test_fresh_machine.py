"""The eBPF driver on a machine where nobody mounted tracefs or bpffs, and where it may not run.

Each test runs its part in a child process inside tools/fresh-ns: a private
mount namespace where every tracefs, debugfs and bpffs mount is detached,
as on a machine fresh from a minimal boot.  The driver is loaded at its
default place (/sys/fs/bpf/saga) there, so the loader's own bpffs mount is
exercised, and it stays private to that namespace.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FRESH = str(REPO / "tools/fresh-ns")


def fresh(script: str, *, prefix: list[str] = ()) -> subprocess.CompletedProcess:
    """Run a Python script in a fresh mount namespace, with the driver's default pin directory."""
    env = {k: v for k, v in os.environ.items() if k != "SAGA_BPF_DIR"}
    return subprocess.run([FRESH, *prefix, sys.executable, "-c", textwrap.dedent(script)], env=env,
                          capture_output=True, text=True, timeout=300)


MOUNTS = """
    def kinds():
        with open("/proc/self/mounts") as f:
            fields = [line.split() for line in f]
        return {(k[2], k[1]) for k in fields if k[2] in ("tracefs", "debugfs", "bpf")}
"""


def test_the_sigreturn_event_id_comes_from_no_visible_mount():
    res = fresh(MOUNTS + """
    import subprocess
    from saga.drivers.ebpf import kernelfs
    assert kinds() == set(), kinds()
    got = kernelfs.event_id("syscalls", "sys_enter_rt_sigreturn")
    assert kinds() == set(), "event_id left a mount: %s" % kinds()
    # The same number as a mounted tracefs shows (mounted here, in this private namespace only).
    subprocess.run(["mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing"], check=True)
    with open("/sys/kernel/tracing/events/syscalls/sys_enter_rt_sigreturn/id") as f:
        want = int(f.read())
    assert got == want, (got, want)
    assert kernelfs.event_id("syscalls", "sys_enter_rt_sigreturn") == want
    print("ok", got)
    """)
    assert res.returncode == 0 and res.stdout.startswith("ok"), res.stdout + res.stderr


def test_load_count_and_unload_on_a_fresh_machine():
    """Loaded with no tracefs and no bpffs: bpffs mounted by the loader, sigreturns counted
    (the program that needs the trace event id), and after unload no pin, no mount, no link."""
    res = fresh(MOUNTS + """
    import json, os, signal, subprocess
    from saga.drivers.ebpf import EbpfDriver, kernelfs
    from saga.syscalls import BY_NAME
    assert kinds() == set(), kinds()
    drv = EbpfDriver.open(load=True)
    assert drv.directory == "/sys/fs/bpf/saga"
    assert {k for k, _ in kinds()} == {"bpf"}, kinds()
    assert "link_sigreturn" in os.listdir(drv.directory)
    links = set()
    for name in os.listdir(drv.directory):
        if name.startswith("link_"):
            info = json.loads(subprocess.run(["bpftool", "-j", "link", "show", "pinned",
                                              os.path.join(drv.directory, name)],
                                             check=True, capture_output=True, text=True).stdout)
            links.add(info["id"])
    signal.signal(signal.SIGUSR1, lambda *a: None)
    slot = BY_NAME["rt_sigreturn"].slot
    before = drv.stats().per_slot.get(slot, (0, 0))[0]
    for _ in range(50):
        os.kill(os.getpid(), signal.SIGUSR1)
    after = drv.stats().per_slot.get(slot, (0, 0))[0]
    assert after - before >= 50, (before, after)
    drv.close()
    assert EbpfDriver.unload()
    assert kinds() == set(), "left mounted: %s" % kinds()
    alive = {l["id"] for l in json.loads(subprocess.run(["bpftool", "-j", "link", "show"], check=True,
                                                         capture_output=True, text=True).stdout)}
    assert not links & alive, "links still attached: %s" % (links & alive)
    assert not os.path.exists(kernelfs.MOUNTED_NOTE)
    print("ok", len(links))
    """)
    assert res.returncode == 0 and res.stdout.startswith("ok"), res.stdout + res.stderr


def test_missing_capabilities_are_named():
    drop = ["setpriv", "--bounding-set", "-bpf,-perfmon,-sys_admin", "--inh-caps", "-bpf,-perfmon,-sys_admin", "--"]
    res = fresh("""
    import sys
    from saga.drivers.ebpf import EbpfDriver
    from saga.errors import DriverUnavailable
    try:
        EbpfDriver.open(load=True)
    except DriverUnavailable as exc:
        print(exc)
        sys.exit(exc.exit_code)
    """, prefix=drop)
    assert res.returncode == 69, res.stdout + res.stderr
    assert "lacks CAP_BPF and CAP_PERFMON" in res.stdout and "--capability=CAP_BPF,CAP_PERFMON" in res.stdout
    assert len(res.stdout.strip().splitlines()) == 1


def test_the_daemon_on_a_fresh_machine(tmp_path):
    """`saga daemon` where nothing is mounted: it mounts bpffs, pins at /sys/fs/bpf/saga, serves,
    and at SIGTERM unloads everything and unmounts what it mounted."""
    config = tmp_path / "saga.toml"
    config.write_text(f'[daemon]\nrun_dir = "{tmp_path}/run"\narchive = false\n'
                      f'[store]\nurl = "sqlite:///{tmp_path}/saga.db"\n[sagafs]\nmount = ""\n')
    saga_bin = str(Path(sys.executable).with_name("saga"))
    res = fresh(MOUNTS + f"""
    import json, os, signal, subprocess, time
    saga = [{saga_bin!r}, "--config", {str(config)!r}]
    assert kinds() == set(), kinds()
    proc = subprocess.Popen(saga + ["daemon", "--driver", "ebpf"], stderr=subprocess.PIPE, text=True)
    for _ in range(300):
        st = subprocess.run(saga + ["status", "--json"], capture_output=True, text=True)
        if st.returncode == 0 and json.loads(st.stdout)["daemon"]["running"] or proc.poll() is not None:
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.stderr.read()
    report = json.loads(st.stdout)
    assert report["driver"]["name"] == "ebpf" and report["capture"]["calls"] > 0, report
    assert {{k for k, _ in kinds()}} == {{"bpf"}} and os.path.isdir("/sys/fs/bpf/saga/owner"), kinds()
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 0, err
    assert kinds() == set(), "left mounted: %s" % kinds()
    assert not os.path.exists("/run/saga/bpffs-mounted-by-saga")
    print("ok")
    """)
    assert res.returncode == 0 and res.stdout.startswith("ok"), res.stdout + res.stderr

"""cgroup paths read as systemd units and containers; the resolver's cache (saga.cgroups)."""
import os

import pytest

from saga import cgroups

ID = "3f2a" + "0123456789abcdef" * 3 + "0123456789ab"
POD = "5c2b9d8e-1f3a-4b6c-9d0e-7a8b9c0d1e2f"


@pytest.mark.parametrize("path, unit, container, runtime, pod", [
    ("/", None, None, None, None),
    ("/init.scope", "init.scope", None, None, None),
    ("/system.slice/nginx.service", "nginx.service", None, None, None),
    ("/user.slice/user-1000.slice/session-3.scope", "session-3.scope", None, None, None),
    ("/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service", "foo.service", None, None, None),
    (f"/system.slice/docker-{ID}.scope", f"docker-{ID}.scope", ID, "docker", None),
    (f"/docker/{ID}", None, ID, "docker", None),
    (f"/system.slice/docker-{ID}.scope/system.slice/nginx.service", "nginx.service", ID, "docker", None),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD.replace('-', '_')}.slice/"
     f"cri-containerd-{ID}.scope", f"cri-containerd-{ID}.scope", ID, "containerd", POD),
    (f"/kubepods/besteffort/pod{POD}/{ID}", None, ID, "kubernetes", POD),
    (f"/kubepods.slice/kubepods-pod{POD.replace('-', '_')}.slice/crio-{ID}.scope", f"crio-{ID}.scope", ID,
     "cri-o", POD),
    (f"/system.slice/containerd.service/kubepods-besteffort-pod{POD.replace('-', '_')}.slice:cri-containerd:{ID}",
     "containerd.service", ID, "containerd", POD),
    (f"/machine.slice/libpod-{ID}.scope/container", f"libpod-{ID}.scope", ID, "podman", None),
    (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope",
     f"libpod-{ID}.scope", ID, "podman", None),
    (f"/default/{ID}", None, ID, "containerd", None),
    ("/lxc.payload.web", None, "web", "lxc", None),
    ("/lxc/web", None, "web", "lxc", None),
    ("/machine.slice/machine-my\\x2dbox.scope/payload", "machine-my\\x2dbox.scope", "my-box", "nspawn", None),
    ("/machine.slice/systemd-nspawn@deb.service/payload/system.slice/cron.service", "cron.service", "deb",
     "nspawn", None),
])
def test_paths_name_units_containers_and_pods(path, unit, container, runtime, pod):
    ctx = cgroups.parse(path)
    assert (ctx.path, ctx.unit, ctx.container, ctx.runtime, ctx.pod) == (path, unit, container, runtime, pod)


def test_the_stored_name_and_the_log_words():
    ctx = cgroups.parse(f"/docker/{ID}")
    assert ctx.name == f"docker:{ID}" and ctx.token == f"container={ID[:12]}"
    ctx = cgroups.parse(f"/system.slice/docker-{ID}.scope")
    assert ctx.name == f"docker-{ID}.scope" and ctx.token == f"unit=docker-{ID}.scope container={ID[:12]}"
    assert cgroups.parse("/").name is None and cgroups.parse("/").token == ""


@pytest.fixture
def tree(tmp_path):
    """A directory laid out like a cgroup hierarchy, and a /proc with one process in it."""
    root = tmp_path / "cg"
    (root / "system.slice" / "nginx.service").mkdir(parents=True)
    (root / "system.slice" / "cron.service").mkdir()
    proc = tmp_path / "proc"
    (proc / "42").mkdir(parents=True)
    (proc / "42" / "cgroup").write_text("0::/system.slice/nginx.service\n")
    return root, proc


def test_an_id_is_found_by_its_pid_without_a_walk(tree):
    root, proc = tree
    res = cgroups.CgroupResolver(str(root), proc=str(proc))
    ino = os.stat(root / "system.slice" / "nginx.service").st_ino
    assert res.resolve(ino, pid=42).unit == "nginx.service" and res.scans == 0
    assert res.cached(ino).unit == "nginx.service"
    assert res.of_pid(42) == (ino, res.cached(ino))


def test_an_id_is_found_by_walking_the_hierarchy_and_misses_wait(tree):
    root, proc = tree
    now = [0.0]
    res = cgroups.CgroupResolver(str(root), proc=str(proc), clock=lambda: now[0])
    cron = os.stat(root / "system.slice" / "cron.service").st_ino
    assert res.resolve(cron, pid=42).unit == "cron.service" and res.scans == 1   # the pid's is another cgroup
    assert res.resolve(os.stat(root).st_ino).path == "/" and res.scans == 1       # found by the same walk
    assert res.resolve(999_999_999) is None and res.scans == 1                   # a walk is at most 1/s
    (root / "system.slice" / "new.service").mkdir()
    new = os.stat(root / "system.slice" / "new.service").st_ino
    now[0] = 2.0
    assert res.resolve(new).unit == "new.service" and res.scans == 2
    now[0] = 3.5
    assert res.resolve(999_999_999) is None and res.scans == 2                   # a known miss waits rescan_s
    now[0] = 8.0
    assert res.resolve(999_999_999) is None and res.scans == 3


def test_without_a_cgroup2_hierarchy_nothing_is_resolved(tmp_path):
    res = cgroups.CgroupResolver(None, proc=str(tmp_path))
    res.root = None
    assert res.resolve(5, pid=1) is None and res.of_pid(1) is None


def test_the_mount_point_is_read_from_mountinfo(tmp_path):
    mi = tmp_path / "mountinfo"
    mi.write_text("25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
                  "26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n")
    assert cgroups.cgroup2_root(str(mi)) == "/sys/fs/cgroup/unified"
    mi.write_text("25 30 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    assert cgroups.cgroup2_root(str(mi)) == "/sys/fs/cgroup"


def test_the_process_cache_says_where_events_come_from_in_lines_and_json(tree, monkeypatch):
    from saga import events, render, syscalls
    from saga.daemon.enrich import Enricher, ProcInfo
    root, proc = tree
    (proc / "42" / "status").write_text("Name:\tnginx\nNSpid:\t42\t7\n")
    probe = {42: ProcInfo(42, 100, "nginx", "/usr/sbin/nginx", ("nginx",), "www-data",
                          cgroups_nspid(proc, 42))}
    e = Enricher(probe=probe.get, resolver=cgroups.CgroupResolver(str(root), proc=str(proc)))
    raw = events.parse(events.pack(dict(nr=syscalls.BY_NAME["getppid"].slot, pid=42, tid=42, comm="nginx")))[0]
    monkeypatch.setattr(render, "context_of", e.where)
    assert " unit=" not in render.line(raw) and render.to_json(raw)["unit"] is None   # not looked up yet
    e.note([raw[events.PID]], [raw[events.CGROUP_ID]])
    e.lookup_all(e.take_pending())
    assert " comm=nginx unit=nginx.service getppid() = 0 " in render.line(raw)
    obj = render.to_json(raw)
    assert (obj["unit"], obj["cgroup"], obj["container"], obj["nspid"]) == ("nginx.service",
                                                                           "/system.slice/nginx.service", None, 7)
    assert e.units([raw[events.PID]], [raw[events.CGROUP_ID]]) == {42: "nginx.service"}


def cgroups_nspid(proc, pid):
    from saga.daemon.enrich import nspid
    return nspid(pid, str(proc))


def test_the_records_cgroup_id_names_its_unit_even_for_a_process_gone(tree, monkeypatch):
    from saga import events, render, syscalls
    from saga.daemon.enrich import Enricher
    root, proc = tree
    e = Enricher(probe=lambda pid: None, resolver=cgroups.CgroupResolver(str(root), proc=str(proc)))
    cron = os.stat(root / "system.slice" / "cron.service").st_ino
    raw = events.parse(events.pack(dict(nr=syscalls.BY_NAME["getppid"].slot, pid=99, tid=99, comm="cron",
                                        cgroup_id=cron)))[0]
    monkeypatch.setattr(render, "context_of", e.where)
    assert e.where(raw) is None
    e.note([raw[events.PID]], [raw[events.CGROUP_ID]])
    e.lookup_all(e.take_pending())   # pid 99 is gone: found by walking the hierarchy
    assert " comm=cron unit=cron.service getppid()" in render.line(raw)
    obj = render.to_json(raw)
    assert (obj["cgroup_id"], obj["unit"], obj["nspid"]) == (cron, "cron.service", None)
    assert e.units([raw[events.PID]], [raw[events.CGROUP_ID]]) == {99: "cron.service"}  # saga query --unit


def test_a_batch_names_each_pid_by_the_cgroup_of_its_last_call(tree):
    """A process moved into a service between two calls is that service's (the archive keeps one unit per pid)."""
    from saga import events, syscalls
    from saga.daemon.enrich import Enricher
    root, proc = tree
    e = Enricher(probe=lambda pid: None, resolver=cgroups.CgroupResolver(str(root), proc=str(proc)))
    ids = [os.stat(root / "system.slice" / name).st_ino for name in ("cron.service", "nginx.service")]
    buf = b"".join(events.pack(dict(nr=syscalls.BY_NAME["getppid"].slot, pid=7, tid=7, cgroup_id=i)) for i in ids)
    sizes = events.sizes(buf)
    pids, cgroup_ids = events.pids(buf, sizes), events.cgroup_ids(buf, sizes)    # as the daemon gathers them
    assert e.units(pids, cgroup_ids) == {7: "nginx.service"}
    assert e.units(pids[:1], cgroup_ids[:1]) == {7: "cron.service"}

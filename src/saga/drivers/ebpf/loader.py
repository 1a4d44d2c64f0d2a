"""Loading, pinning and unloading the BPF program, and why it cannot run.

Everything the driver owns lives under one bpffs directory (default
/sys/fs/bpf/saga, or $SAGA_BPF_DIR): the program links and the maps
user space reads (see docs/ebpf.md).  Loading is deliberate (the daemon,
`make up`); every other process opens the pins.  Unloading unpins them:
the links go with their last reference, so the programs detach, and the
maps are freed with the programs.
"""
from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

import saga
from saga import _uapi
from saga.drivers.ebpf import kernelfs, libbpf, publish
from saga.drivers.ebpf import layout as L
from saga.drivers.ebpf.ruleset import RuleSet
from saga.drivers.ebpf.shared import Words
from saga.errors import DriverError, DriverUnavailable, PermissionDenied, SagaError, from_oserror

DEFAULT_DIR = "/sys/fs/bpf/saga"
DEFAULT_RING_BYTES = 32 << 20  # ~250k records: absorbs a reader that is off the CPU for a while
OBJECT = Path(__file__).with_name("saga.bpf.o")
MIN_KERNEL = (5, 17)  # bpf_loop; ring buffer, tp_btf and task storage are older
NOT_LOADED = "the eBPF driver is not loaded: start `saga daemon` or `make up`"
MAP_PINS = {L.MAP_COUNTERS: L.MAP_COUNTERS, L.MAP_ACTIONS: L.MAP_ACTIONS, L.MAP_RULES: L.MAP_RULES,
            L.MAP_EVENTS: L.MAP_EVENTS, L.MAP_CONFIG: L.PIN_CONFIG}
# A directory in the pin directory, flock'ed by the daemon that owns the driver (claim()).
OWNER = "owner"
ALL_PINS = tuple(MAP_PINS.values()) + tuple(link for _, link in L.PROGS) + (L.ENTER_PROG_PIN,)


def pin_dir() -> str:
    return os.environ.get("SAGA_BPF_DIR") or DEFAULT_DIR


def is_loaded(directory: str) -> bool:
    return all(os.path.exists(os.path.join(directory, p)) for p in ALL_PINS)


# -- why it cannot run -------------------------------------------------------

def _kernel_version(release: str) -> tuple[int, int]:
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def check_host(obj: Path | None = None) -> None:
    """Raise DriverUnavailable with the reason and the fix when the driver cannot load here."""
    if os.geteuid() != 0:
        raise DriverUnavailable("the eBPF driver needs root (CAP_BPF, CAP_PERFMON): run as root, e.g. with sudo")
    release = os.uname().release
    if _kernel_version(release) < MIN_KERNEL:
        raise DriverUnavailable(f"Linux {release} is too old for the eBPF driver (needs "
                                f"{MIN_KERNEL[0]}.{MIN_KERNEL[1]} or newer): use the kernel module")
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        raise DriverUnavailable("this kernel has no BTF (/sys/kernel/btf/vmlinux): the eBPF driver needs "
                                "CONFIG_DEBUG_INFO_BTF=y; use the kernel module or a Debian kernel")
    if kernelfs.lockdown() == "confidentiality":
        raise DriverUnavailable("kernel lockdown (confidentiality) forbids BPF tracing: boot with "
                                "lockdown=integrity or use the signed kernel module")
    _check_privileges()
    if obj is not None and not obj.exists():
        raise DriverUnavailable(f"the BPF object {obj} is missing: run `make build` (or reinstall saga)")
    libbpf.lib()


CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39
CONTAINER_FIX = ("in a container, give it CAP_BPF and CAP_PERFMON and let it call bpf() and perf_event_open() "
                 "(systemd-nspawn --capability=CAP_BPF,CAP_PERFMON --system-call-filter='bpf perf_event_open'; "
                 "docker --cap-add BPF --cap-add PERFMON with a seccomp profile that allows them)")


def _check_privileges() -> None:
    """Root is not enough where capabilities were dropped or a seccomp filter refuses the calls (containers)."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    caps = int(status.get("CapEff", "0").strip(), 16)
    missing = [name for name, cap in (("CAP_BPF", CAP_BPF), ("CAP_PERFMON", CAP_PERFMON))
               if not caps & (1 << cap | 1 << CAP_SYS_ADMIN)]
    if missing:
        raise DriverUnavailable(f"this process lacks {' and '.join(missing)}, which the eBPF driver needs "
                                f"(a unit's CapabilityBoundingSet=, or a container): {CONTAINER_FIX}")
    seccomp = status.get("Seccomp", "0").strip() == "2"
    # Harmless probes: an unknown bpf() command is EINVAL, a NULL perf attribute EFAULT, when allowed.
    for name, args in (("bpf", (0xFFFF, None, 0)), ("perf_event_open", (None, -1, 0, -1, 0))):
        err = kernelfs.probe(name, *args)
        if err in (errno.EPERM, errno.ENOSYS, errno.EACCES):
            by = "a seccomp filter" if seccomp else "a security module or seccomp filter"
            raise DriverUnavailable(f"{by} refuses the {name}() system call ({os.strerror(err)}) although this "
                                    f"process has the capabilities: {CONTAINER_FIX}")


def realtime_offset() -> int:
    """CLOCK_REALTIME - CLOCK_MONOTONIC in ns, from the tightest of a few bracketed samples."""
    samples = []
    for _ in range(5):
        m0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        r = time.clock_gettime_ns(time.CLOCK_REALTIME)
        m1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        samples.append((m1 - m0, r - (m0 + m1) // 2))
    return min(samples)[1]


# -- load and unload -----------------------------------------------------------

def load(directory: str, *, ring_bytes: int = DEFAULT_RING_BYTES, default_action: int = _uapi.SAGA_ACT_LOG,
         obj_path: Path = OBJECT) -> None:
    """Load the object, install an empty rule set, pin the maps, attach and pin the programs."""
    if ring_bytes < 4096 or ring_bytes & (ring_bytes - 1):
        raise SagaError(f"ring size {ring_bytes} must be a power of two of at least 4096 bytes", exit_code=64)
    check_host(obj_path)
    kernelfs.ensure_bpffs(directory)
    if any(os.path.exists(os.path.join(directory, p)) for p in ALL_PINS):
        _remove_pins(directory)  # leftovers of a load that did not finish
    obj = None
    try:
        obj = libbpf.BpfObject(str(obj_path))
        obj.set_max_entries(L.MAP_EVENTS, ring_bytes)
        for name, size in L.VALUE_SIZES.items():
            if obj.value_size(name) != size:
                raise DriverError(f"{obj_path} does not match this saga ({name}: {obj.value_size(name)} bytes, "
                                  f"expected {size}): run `make build`")
        obj.load()
        os.makedirs(directory, mode=0o700, exist_ok=True)
        for name, pin in MAP_PINS.items():
            obj.pin_map(name, os.path.join(directory, pin))
        obj.pin_prog(L.ENTER_PROG, os.path.join(directory, L.ENTER_PROG_PIN))
        _init(directory, obj, ring_bytes, default_action)
        for prog, link in L.PROGS:
            _attach(obj, prog, os.path.join(directory, link))
    except OSError as exc:
        _undo(directory)
        raise _load_error(exc) from None
    except BaseException:
        _undo(directory)
        raise
    finally:
        if obj is not None:
            obj.close()


def _attach(obj: libbpf.BpfObject, prog: str, link_path: str) -> None:
    """Attach one program and pin its link, by the kind its section names.

    tp_btf programs attach to the tracepoint itself (no tracefs).  The one
    `tracepoint/SYSTEM/EVENT` program (saga_sigreturn, on the syscall event
    syscalls:sys_enter_rt_sigreturn) is attached through perf here rather
    than by libbpf, which would look for the event's id in a mounted tracefs
    only: kernelfs.event_id finds it whether or not tracefs is mounted.
    Why that event and not fentry on the sigreturn function: its name and
    its presence in BTF vary with the kernel build (here
    __x64_sys_rt_sigreturn is folded into __do_sys_rt_sigreturn and only
    the latter has BTF), while the syscall event exists on every kernel
    built with CONFIG_FTRACE_SYSCALLS (all of Debian's) from 5.x to 7.x.
    """
    kind, _, target = obj.section(prog).partition("/")
    if kind == "tracepoint":
        system, _, event = target.partition("/")
        libbpf.perf_link_pin(obj.prog_fd(prog), kernelfs.event_id(system, event), link_path)
    else:
        obj.attach_and_pin(prog, link_path)


def _undo(directory: str) -> None:
    try:
        unload(directory)
    except SagaError:
        pass


def _load_error(exc: OSError) -> SagaError:
    detail = next((line for line in reversed(libbpf.log) if "error" in line.lower() or "failed" in line.lower()),
                  "")
    what = "loading the eBPF driver failed" + (f" ({detail[:200]})" if detail else "")
    return from_oserror(exc, what, denied=DriverUnavailable,
                        hint="needs root with CAP_BPF and CAP_PERFMON, and no lockdown")


def _init(directory: str, obj: libbpf.BpfObject, ring_bytes: int, default_action: int) -> None:
    """Fill the config and install an empty rule set, before any program is attached."""
    import mmap
    with mmap.mmap(obj.map_fd(L.MAP_CONFIG), mmap.PAGESIZE, mmap.MAP_SHARED,
                   mmap.PROT_READ | mmap.PROT_WRITE) as m:
        # No program runs yet, so one copy (which writes byte by byte) is fine here.
        m[:L.CONFIG.size] = L.CONFIG.pack(
            enabled=1, realtime_offset=realtime_offset(), wake_bytes=max(ring_bytes // 8, 256),
            reset_ns=time.clock_gettime_ns(time.CLOCK_REALTIME), ring_bytes=ring_bytes,
            default_action=default_action, version=saga.__version__.encode()[:L.VERSION_LEN - 1])
        words = Words(m)
        try:
            maps = publish.RuleMaps(directory, obj.map_fd(L.MAP_RULES), obj.map_fd(L.MAP_ACTIONS), words)
            publish.publish(maps, RuleSet((), default_action, 1))
        finally:
            words.release()


def unload(directory: str | None = None) -> bool:
    """Detach and unpin everything under `directory` and remove it; True if something was loaded."""
    directory = directory or pin_dir()
    if not os.path.isdir(directory):
        return False
    if os.geteuid() != 0:
        raise PermissionDenied("unloading the eBPF driver needs root: run as root")
    found = _remove_pins(directory)
    try:
        os.rmdir(os.path.join(directory, OWNER))
    except FileNotFoundError:
        pass
    os.rmdir(directory)
    kernelfs.release_bpffs(directory)
    return found


def _remove_pins(directory: str) -> bool:
    """Unpin the links (detaching the programs) and the maps; the directory and its owner lock stay."""
    found = False
    for link in [link for _, link in L.PROGS] + [L.ENTER_LINK_PIN]:
        path = os.path.join(directory, link)
        if not os.path.exists(path):
            continue
        found = True
        try:
            fd = libbpf.obj_get(path)
            try:
                libbpf.link_detach(fd)  # force, in case some process still holds the link
            except OSError:
                pass  # raw tracepoint links cannot be detached early: unpinning releases them
            finally:
                os.close(fd)
        except OSError:
            pass
        os.unlink(path)
    for name in os.listdir(directory):
        if name != OWNER:
            found = True
            os.unlink(os.path.join(directory, name))
    return found


def claim(directory: str) -> int:
    """Lock the driver at `directory` for one daemon: the descriptor holding the lock (close it to release).

    The lock is an flock on a directory inside the pin directory (bpffs holds
    directories and pins, no files), so every process that uses this driver
    sees it, whatever its configuration.  BlockingIOError when it is held.
    """
    path = os.path.join(directory, OWNER)
    while True:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except FileNotFoundError:
            continue  # an unload removed the directory meanwhile
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass  # the owner before us unloaded and removed it: lock the new one
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def loaded_version(directory: str) -> str | None:
    """The saga version of the driver pinned at `directory`; None if its layout is not this saga's."""
    try:
        fd = libbpf.obj_get(os.path.join(directory, L.PIN_CONFIG))
    except OSError:
        return None
    try:
        if libbpf.map_info(fd).value_size != L.CONFIG.size:
            return None
        raw = libbpf.map_lookup(fd, 0, L.CONFIG.size)
    except OSError:
        return None
    finally:
        os.close(fd)
    return bytes(raw[L.CFG_VERSION:L.CFG_VERSION + L.VERSION_LEN]).split(b"\0", 1)[0].decode(errors="replace")

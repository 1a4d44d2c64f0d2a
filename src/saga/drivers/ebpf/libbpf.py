"""The part of libbpf (Debian's libbpf1) saga uses, through ctypes.

Two layers: the object loader (open, size the ring, load, attach, pin),
used once by `EbpfDriver.load`, and the thin syscall wrappers (pinned
object get, map lookup/update/create/freeze, link detach) used by every
driver instance.  libbpf 1.x returns -errno (and sets errno); `check`
turns that into OSError, which the driver translates once into SagaError.
libbpf's own log lines are kept (not printed) so a failed load can say why.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from collections import deque

from saga.errors import DriverUnavailable
from saga.syscalls import BY_NAME

_c = ctypes
_vp = _c.c_void_p

# linux/bpf.h
BPF_ANY = 0
BPF_MAP_TYPE_ARRAY = 2
BPF_PERF_EVENT = 41  # enum bpf_attach_type
# linux/perf_event.h
PERF_TYPE_TRACEPOINT = 2
PERF_ATTR_SIZE_VER5 = 112
PERF_FLAG_FD_CLOEXEC = 1 << 3

_PRINT_FN = _c.CFUNCTYPE(_c.c_int, _c.c_int, _c.c_char_p, _c.c_void_p)

_lib = None
_libc = _c.CDLL(None, use_errno=True)
_libc.vsnprintf.argtypes = [_c.c_char_p, _c.c_size_t, _c.c_char_p, _c.c_void_p]
_libc.syscall.restype = _c.c_long
log: deque[str] = deque(maxlen=64)  # libbpf's recent messages, newest last


@_PRINT_FN
def _on_print(level: int, fmt: bytes, args: int) -> int:
    buf = _c.create_string_buffer(1024)
    _libc.vsnprintf(buf, len(buf), fmt, args)
    line = buf.value.decode("utf-8", "replace").rstrip()
    if line:
        log.append(line)
    return 0


_SIGNATURES = {
    "libbpf_set_print": (_vp, [_PRINT_FN]),
    "libbpf_num_possible_cpus": (_c.c_int, []),
    "bpf_object__open_file": (_vp, [_c.c_char_p, _vp]),
    "bpf_object__load": (_c.c_int, [_vp]),
    "bpf_object__close": (None, [_vp]),
    "bpf_object__find_map_by_name": (_vp, [_vp, _c.c_char_p]),
    "bpf_object__find_program_by_name": (_vp, [_vp, _c.c_char_p]),
    "bpf_map__set_max_entries": (_c.c_int, [_vp, _c.c_uint32]),
    "bpf_map__value_size": (_c.c_uint32, [_vp]),
    "bpf_map__fd": (_c.c_int, [_vp]),
    "bpf_map__pin": (_c.c_int, [_vp, _c.c_char_p]),
    "bpf_program__attach": (_vp, [_vp]),
    "bpf_program__fd": (_c.c_int, [_vp]),
    "bpf_program__section_name": (_c.c_char_p, [_vp]),
    "bpf_link_create": (_c.c_int, [_c.c_int, _c.c_int, _c.c_int, _vp]),
    "bpf_link__pin": (_c.c_int, [_vp, _c.c_char_p]),
    "bpf_program__pin": (_c.c_int, [_vp, _c.c_char_p]),
    "bpf_raw_tracepoint_open": (_c.c_int, [_c.c_char_p, _c.c_int]),
    "bpf_obj_pin": (_c.c_int, [_c.c_int, _c.c_char_p]),
    "bpf_link__destroy": (_c.c_int, [_vp]),
    "bpf_obj_get": (_c.c_int, [_c.c_char_p]),
    "bpf_map_lookup_elem": (_c.c_int, [_c.c_int, _vp, _vp]),
    "bpf_map_update_elem": (_c.c_int, [_c.c_int, _vp, _vp, _c.c_uint64]),
    "bpf_map_create": (_c.c_int, [_c.c_int, _c.c_char_p, _c.c_uint32, _c.c_uint32, _c.c_uint32, _vp]),
    "bpf_map_freeze": (_c.c_int, [_c.c_int]),
    "bpf_map_get_fd_by_id": (_c.c_int, [_c.c_uint32]),
    "bpf_prog_get_fd_by_id": (_c.c_int, [_c.c_uint32]),
    "bpf_obj_get_info_by_fd": (_c.c_int, [_c.c_int, _vp, _c.POINTER(_c.c_uint32)]),
    "bpf_link_detach": (_c.c_int, [_c.c_int]),
}


def lib():
    """libbpf.so.1, loaded once; DriverUnavailable when it is not installed."""
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("bpf") or "libbpf.so.1"
        try:
            handle = _c.CDLL("libbpf.so.1", use_errno=True)
        except OSError:
            try:
                handle = _c.CDLL(name, use_errno=True)
            except OSError:
                raise DriverUnavailable("libbpf is not installed: apt install libbpf1 (or tools/deps.sh bpf)") from None
        for fn, (restype, argtypes) in _SIGNATURES.items():
            f = getattr(handle, fn)
            f.restype, f.argtypes = restype, argtypes
        handle.libbpf_set_print(_on_print)
        _lib = handle
    return _lib


def check(ret: int | None, what: str) -> int:
    """Raise OSError for a libbpf -errno return (or NULL pointer); else return ret."""
    if ret is None or (isinstance(ret, int) and ret < 0):
        err = _c.get_errno() or (-ret if isinstance(ret, int) and ret < 0 else 0) or 22
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


# -- syscall wrappers --------------------------------------------------------

def obj_get(path: str) -> int:
    return check(lib().bpf_obj_get(path.encode()), f"open {path}")


def map_lookup(fd: int, key: int, value_size: int) -> bytearray:
    k = _c.c_uint32(key)
    buf = (_c.c_char * value_size)()
    check(lib().bpf_map_lookup_elem(fd, _c.byref(k), buf), "map lookup")
    return bytearray(buf)


def map_update(fd: int, key: int, value: bytes | bytearray, flags: int = BPF_ANY) -> None:
    k = _c.c_uint32(key)
    buf = (_c.c_char * len(value)).from_buffer_copy(value)
    check(lib().bpf_map_update_elem(fd, _c.byref(k), buf, flags), "map update")


def map_create_array(name: str, value_size: int) -> int:
    """A one-entry array map (a rule set's home)."""
    return check(lib().bpf_map_create(BPF_MAP_TYPE_ARRAY, name.encode(), 4, value_size, 1, None), "map create")


def map_freeze(fd: int) -> None:
    check(lib().bpf_map_freeze(fd), "map freeze")


def map_fd_by_id(map_id: int) -> int:
    return check(lib().bpf_map_get_fd_by_id(map_id), "map get by id")


class MapInfo(_c.Structure):
    """The head of struct bpf_map_info (linux/bpf.h)."""

    _fields_ = [("type", _c.c_uint32), ("id", _c.c_uint32), ("key_size", _c.c_uint32),
                ("value_size", _c.c_uint32), ("max_entries", _c.c_uint32), ("map_flags", _c.c_uint32),
                ("name", _c.c_char * 16)]


def map_info(fd: int) -> MapInfo:
    info = MapInfo()
    n = _c.c_uint32(_c.sizeof(info))
    check(lib().bpf_obj_get_info_by_fd(fd, _c.byref(info), _c.byref(n)), "map info")
    return info


def link_prog_fd(link_fd: int) -> int:
    """A descriptor of the program a link runs (struct bpf_link_info: type, id, prog_id)."""
    info = (_c.c_char * 64)()
    n = _c.c_uint32(len(info))
    check(lib().bpf_obj_get_info_by_fd(link_fd, info, _c.byref(n)), "link info")
    return check(lib().bpf_prog_get_fd_by_id(struct.unpack_from("<I", info, 8)[0]), "program get by id")


_PROG_INFO_SIZE = 232           # struct bpf_prog_info as of Linux 6.1 (a shorter kernel fills less)
_RECURSION_MISSES_AT = 208      # its recursion_misses (Linux 5.12+)


def prog_misses(prog_fd: int) -> int:
    """Runs of the program the kernel skipped because it was already running on that CPU."""
    info = (_c.c_char * _PROG_INFO_SIZE)()
    n = _c.c_uint32(len(info))
    check(lib().bpf_obj_get_info_by_fd(prog_fd, info, _c.byref(n)), "program info")
    return struct.unpack_from("<Q", info, _RECURSION_MISSES_AT)[0] if n.value >= _RECURSION_MISSES_AT + 8 else 0


def attach_pinned_prog(prog_path: str, link_path: str) -> None:
    """Attach a pinned tp_btf program and pin the new link (any process can do it)."""
    prog = obj_get(prog_path)
    try:
        _pin_and_close(check(lib().bpf_raw_tracepoint_open(None, prog), f"attach {prog_path}"), link_path)
    finally:
        os.close(prog)


def _pin_and_close(link: int, link_path: str) -> None:
    """Pin a new link (the pin then holds it) and close our descriptor of it."""
    try:
        check(lib().bpf_obj_pin(link, link_path.encode()), f"pin {link_path}")
    finally:
        os.close(link)


def perf_link_pin(prog_fd: int, event_id: int, link_path: str) -> None:
    """Attach a tracepoint program to trace event `event_id` through perf and pin the link.

    The perf event counts on CPU 0 for every task (pid -1), as libbpf opens
    it: a BPF program on a trace event runs on every CPU anyway.  The link
    (BPF_PERF_EVENT, Linux 5.15+) holds the perf event, so once it is pinned
    both descriptors here can be closed.
    """
    attr = (_c.c_char * PERF_ATTR_SIZE_VER5)()
    struct.pack_into("<IIQQ", attr, 0, PERF_TYPE_TRACEPOINT, PERF_ATTR_SIZE_VER5, event_id, 1)
    pfd = _libc.syscall(_c.c_long(BY_NAME["perf_event_open"].slot), attr, _c.c_long(-1), _c.c_long(0),
                        _c.c_long(-1), _c.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if pfd < 0:
        err = _c.get_errno()
        raise OSError(err, f"perf_event_open (trace event {event_id}): {os.strerror(err)}")
    try:
        _pin_and_close(check(lib().bpf_link_create(prog_fd, pfd, BPF_PERF_EVENT, None), "attach to the perf event"),
                       link_path)
    finally:
        os.close(pfd)


def link_detach(fd: int) -> None:
    check(lib().bpf_link_detach(fd), "link detach")


def possible_cpus() -> int:
    return check(lib().libbpf_num_possible_cpus(), "possible CPUs")


# -- the object loader ---------------------------------------------------------

class BpfObject:
    """An opened BPF object file, before and after load; close() when done."""

    def __init__(self, path: str):
        self._lib = lib()
        log.clear()
        self.ptr: int | None = check(self._lib.bpf_object__open_file(path.encode(), None), f"open {path}")

    def map(self, name: str) -> int:
        m = self._lib.bpf_object__find_map_by_name(self.ptr, name.encode())
        if not m:
            raise OSError(2, f"map {name} not in the BPF object")
        return m

    def set_max_entries(self, name: str, n: int) -> None:
        check(self._lib.bpf_map__set_max_entries(self.map(name), n), f"size map {name}")

    def value_size(self, name: str) -> int:
        return self._lib.bpf_map__value_size(self.map(name))

    def load(self) -> None:
        check(self._lib.bpf_object__load(self.ptr), "load the BPF object")

    def map_fd(self, name: str) -> int:
        return check(self._lib.bpf_map__fd(self.map(name)), f"map {name}")

    def pin_map(self, name: str, path: str) -> None:
        check(self._lib.bpf_map__pin(self.map(name), path.encode()), f"pin map {name}")

    def _prog(self, prog: str) -> int:
        p = self._lib.bpf_object__find_program_by_name(self.ptr, prog.encode())
        if not p:
            raise OSError(2, f"program {prog} not in the BPF object")
        return p

    def pin_prog(self, prog: str, path: str) -> None:
        check(self._lib.bpf_program__pin(self._prog(prog), path.encode()), f"pin program {prog}")

    def section(self, prog: str) -> str:
        return self._lib.bpf_program__section_name(self._prog(prog)).decode()

    def prog_fd(self, prog: str) -> int:
        return check(self._lib.bpf_program__fd(self._prog(prog)), f"program {prog}")

    def attach_and_pin(self, prog: str, path: str) -> None:
        """Attach a program (tp_btf) and pin its link, so it stays attached after we exit."""
        p = self._prog(prog)
        link = check(self._lib.bpf_program__attach(p), f"attach {prog}")
        try:
            check(self._lib.bpf_link__pin(link, path.encode()), f"pin link {prog}")
        except OSError:
            self._lib.bpf_link__destroy(link)
            raise
        # Closes our fd only (fd-based links): the pin keeps the program attached.
        self._lib.bpf_link__destroy(link)

    def close(self) -> None:
        if self.ptr:
            self._lib.bpf_object__close(self.ptr)
            self.ptr = None

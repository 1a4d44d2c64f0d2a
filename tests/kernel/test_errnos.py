"""Every errno of docs/kernel-abi.md, as root and as an unprivileged holder of the fd."""
import ctypes
import errno
import os

import pytest
from kernelutil import NOBODY, _uapi, as_user, ioctl_errno, rule

from saga.rules.abi import pack_rule

R = _uapi.SAGA_RULE_STRUCT
DEL = _uapi.SAGA_RULE_DEL_STRUCT
LST = _uapi.SAGA_RULE_LIST_STRUCT
STS = _uapi.SAGA_STATS_STRUCT
UNMAPPED = 0x10  # never mapped: the first page is reserved


def rule_buf(text="log read", **over):
    fields = list(R.unpack(pack_rule(rule(text))))
    names = ("id", "action", "match", "pid", "uid", "position", "__pad", "comm", "key")
    for k, v in over.items():
        fields[names.index(k)] = v
    return bytearray(R.pack(*fields))


@pytest.fixture
def fd(saga):
    return saga.fileno()


def test_unknown_commands_are_enotty(fd):
    assert ioctl_errno(fd, 0xE5FF) == errno.ENOTTY
    assert ioctl_errno(fd, _uapi.SAGA_IOC_GET_INFO ^ (1 << 16)) == errno.ENOTTY  # another size
    assert ioctl_errno(fd, 0x5401, bytearray(64)) == errno.ENOTTY  # TCGETS


def test_get_info_efault(fd):
    assert ioctl_errno(fd, _uapi.SAGA_IOC_GET_INFO, UNMAPPED) == errno.EFAULT


@pytest.mark.parametrize("over", [
    {"__pad": 1}, {"action": 3}, {"match": 0x10}, {"pid": 5}, {"uid": 5},
    {"comm": b"abc"},  # comm given without MATCH_COMM
    {"match": _uapi.SAGA_MATCH_COMM},  # MATCH_COMM with an empty comm
    {"comm": b"a\0b", "match": _uapi.SAGA_MATCH_COMM},  # bytes after the NUL
    {"comm": b"x" * 16, "match": _uapi.SAGA_MATCH_COMM},  # not terminated
    {"key": b"k" * 32},
    {"position": 5},  # past the end of an empty list
])
def test_rule_add_einval(fd, over):
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_ADD, rule_buf(**over)) == errno.EINVAL


def test_rule_add_empty_syscall_set_einval(fd):
    buf = rule_buf()
    buf[_uapi.SAGA_RULE.fields[-1].offset:] = bytes(128)
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_ADD, buf) == errno.EINVAL


def test_rule_add_eexist_enospc_efault(fd):
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_ADD, rule_buf(id=9)) == 0
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_ADD, rule_buf(id=9)) == errno.EEXIST
    for _ in range(_uapi.SAGA_MAX_RULES - 1):
        assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_ADD, rule_buf()) == 0
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_ADD, rule_buf()) == errno.ENOSPC
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_ADD, UNMAPPED) == errno.EFAULT


def test_rule_del_errnos(fd):
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_DEL, bytearray(DEL.pack(42, 0, b"", 0, 0))) == errno.ENOENT
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_DEL, bytearray(DEL.pack(0, 2, b"", 0, 0))) == errno.EINVAL
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_DEL, bytearray(DEL.pack(0, 1, b"k", 0, 1))) == errno.EINVAL
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_DEL, bytearray(DEL.pack(0, 1, b"", 0, 0))) == errno.EINVAL
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_DEL, bytearray(DEL.pack(3, 1, b"k", 0, 0))) == errno.EINVAL
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_DEL, UNMAPPED) == errno.EFAULT


def test_rule_list_and_replace_errnos(fd):
    ioctl_errno(fd, _uapi.SAGA_IOC_RULE_ADD, rule_buf())
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_LIST, bytearray(LST.pack(4, 0, UNMAPPED, 0))) == errno.EFAULT
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_LIST, bytearray(LST.pack(0, 0, UNMAPPED, 0))) == 0
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_LIST, UNMAPPED) == errno.EFAULT
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_REPLACE, bytearray(LST.pack(0, 1025, UNMAPPED, 0))) == errno.ENOSPC
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_REPLACE, bytearray(LST.pack(0, 2, UNMAPPED, 0))) == errno.EFAULT
    two = ctypes.create_string_buffer(bytes(rule_buf(id=4)) + bytes(rule_buf(id=4)))
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_REPLACE,
                       bytearray(LST.pack(0, 2, ctypes.addressof(two), 0))) == errno.EEXIST
    bad = ctypes.create_string_buffer(bytes(rule_buf(action=7)))
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_REPLACE,
                       bytearray(LST.pack(0, 1, ctypes.addressof(bad), 0))) == errno.EINVAL


def test_stats_errnos(fd):
    assert ioctl_errno(fd, _uapi.SAGA_IOC_STATS_GET, bytearray(STS.pack(1025, 0, 0, *[0] * 8))) == errno.EINVAL
    assert ioctl_errno(fd, _uapi.SAGA_IOC_STATS_GET, bytearray(STS.pack(0, 1, 0, *[0] * 8))) == errno.EINVAL
    assert ioctl_errno(fd, _uapi.SAGA_IOC_STATS_GET, bytearray(STS.pack(4, 0, UNMAPPED, *[0] * 8))) == errno.EFAULT
    assert ioctl_errno(fd, _uapi.SAGA_IOC_STATS_GET, UNMAPPED) == errno.EFAULT
    assert ioctl_errno(fd, _uapi.SAGA_IOC_STATS_GET, bytearray(STS.pack(0, 0, UNMAPPED, *[0] * 8))) == 0


def test_set_enabled_errnos(fd):
    assert ioctl_errno(fd, _uapi.SAGA_IOC_SET_ENABLED, bytearray((2).to_bytes(4, "little"))) == errno.EINVAL
    assert ioctl_errno(fd, _uapi.SAGA_IOC_SET_ENABLED, UNMAPPED) == errno.EFAULT


def test_locked_changes_are_eperm(fd):
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_LOCK) == 0
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_ADD, rule_buf()) == errno.EPERM
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_DEL, bytearray(DEL.pack(1, 0, b"", 0, 0))) == errno.EPERM
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_CLEAR) == errno.EPERM
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_REPLACE, bytearray(LST.pack(0, 0, 0, 0))) == errno.EPERM
    assert ioctl_errno(fd, _uapi.SAGA_IOC_SET_ENABLED, bytearray((0).to_bytes(4, "little"))) == errno.EPERM
    assert ioctl_errno(fd, _uapi.SAGA_IOC_STATS_RESET) == 0
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_LOCK) == 0


def test_unprivileged_holder_reads_but_cannot_change(fd):
    def probe():
        info = bytearray(_uapi.SAGA_INFO.size)
        return {
            "info": ioctl_errno(fd, _uapi.SAGA_IOC_GET_INFO, info),
            "list": ioctl_errno(fd, _uapi.SAGA_IOC_RULE_LIST, bytearray(LST.pack(0, 0, 0, 0))),
            "stats": ioctl_errno(fd, _uapi.SAGA_IOC_STATS_GET, bytearray(STS.pack(0, 0, 0, *[0] * 8))),
            "add": ioctl_errno(fd, _uapi.SAGA_IOC_RULE_ADD, rule_buf()),
            "del": ioctl_errno(fd, _uapi.SAGA_IOC_RULE_DEL, bytearray(DEL.pack(1, 0, b"", 0, 0))),
            "list_replace": ioctl_errno(fd, _uapi.SAGA_IOC_RULE_REPLACE, bytearray(LST.pack(0, 0, 0, 0))),
            "clear": ioctl_errno(fd, _uapi.SAGA_IOC_RULE_CLEAR),
            "lock": ioctl_errno(fd, _uapi.SAGA_IOC_RULE_LOCK),
            "reset": ioctl_errno(fd, _uapi.SAGA_IOC_STATS_RESET),
            "enable": ioctl_errno(fd, _uapi.SAGA_IOC_SET_ENABLED, bytearray((0).to_bytes(4, "little"))),
            "unknown": ioctl_errno(fd, 0xE5FF),
        }
    got = as_user(NOBODY, probe)
    assert got == {"info": 0, "list": 0, "stats": 0, "add": errno.EPERM, "del": errno.EPERM,
                   "list_replace": errno.EPERM, "clear": errno.EPERM, "lock": errno.EPERM,
                   "reset": errno.EPERM, "enable": errno.EPERM, "unknown": errno.ENOTTY}


def test_unprivileged_open_is_eacces(saga):
    def try_open():
        try:
            os.close(os.open("/dev/saga", os.O_RDWR))
            return 0
        except OSError as exc:
            return exc.errno
    assert as_user(NOBODY, try_open) == errno.EACCES
    assert oct(os.stat("/dev/saga").st_mode & 0o777) == "0o600"


def test_read_errnos(saga, fd):
    from kernelutil import drain, only
    only(saga, "ignore all")
    drain(saga)
    with pytest.raises(BlockingIOError):  # O_NONBLOCK and nothing buffered: EAGAIN
        os.read(fd, 4096)
    with pytest.raises(OSError) as exc:  # smaller than any record
        os.read(fd, _uapi.SAGA_EVENT.size - 8)
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(OSError) as exc:
        os.lseek(fd, 0, os.SEEK_SET)
    assert exc.value.errno == errno.ESPIPE

"""Every errno of docs/kernel-abi.md, as root and as an unprivileged holder of the fd."""
import ctypes
import errno
import os

import pytest
from kernelutil import NOBODY, _uapi, as_user, ioctl_errno, rule

from saga.rules.abi import pack_rule

R, LST, STS = _uapi.SAGA_RULE, _uapi.SAGA_RULE_LIST, _uapi.SAGA_STATS
UNMAPPED = 0x10  # never mapped: the first page is reserved
_keep: list = []  # buffers whose addresses are in flight


def rule_bytes(text="1: log read", **over) -> bytes:
    fields = R.unpack(pack_rule(rule(text)))
    fields.update(over)
    return bytes(R.pack(**fields))


def replace_arg(*rules: bytes, count: int | None = None) -> bytearray:
    arr = ctypes.create_string_buffer(b"".join(rules) or b"\0")
    _keep.append(arr)
    return LST.pack(count=len(rules) if count is None else count, rules_ptr=ctypes.addressof(arr))


def replace_errno(fd, *rules: bytes) -> int:
    return ioctl_errno(fd, _uapi.SAGA_IOC_RULE_REPLACE, replace_arg(*rules))


@pytest.fixture
def fd(saga):
    return saga.fileno()


def test_the_magic_is_not_fuses():
    assert _uapi.SAGA_IOC_MAGIC == 0xD5
    assert {(_uapi.SAGA_IOC_GET_INFO >> 8) & 0xFF, (_uapi.SAGA_IOC_RULE_REPLACE >> 8) & 0xFF} == {0xD5}


def test_unknown_commands_are_enotty(fd):
    assert ioctl_errno(fd, 0xD5FF) == errno.ENOTTY
    assert ioctl_errno(fd, 0xE505) == errno.ENOTTY  # ABI 1's RULE_LOCK: gone with its magic
    assert ioctl_errno(fd, _uapi.SAGA_IOC_GET_INFO ^ (1 << 16)) == errno.ENOTTY  # another size
    assert ioctl_errno(fd, 0x5401, bytearray(64)) == errno.ENOTTY  # TCGETS


def test_get_info_efault(fd):
    assert ioctl_errno(fd, _uapi.SAGA_IOC_GET_INFO, UNMAPPED) == errno.EFAULT


@pytest.mark.parametrize("over", [
    {"__pad": 1}, {"id": 0}, {"action": 3}, {"match": 0x40}, {"pid": 5}, {"uid": 5},
    {"exe_dev": 1}, {"exe_ino": 1},                    # exe identity without MATCH_EXE
    {"match": _uapi.SAGA_MATCH_EXE},                   # MATCH_EXE without an inode
    {"match": _uapi.SAGA_MATCH_TREE},                  # TREE without a process field
    {"match": _uapi.SAGA_MATCH_TREE | _uapi.SAGA_MATCH_ERRORS},
    {"comm": b"abc"},  # comm given without MATCH_COMM
    {"match": _uapi.SAGA_MATCH_COMM},  # MATCH_COMM with an empty comm
    {"comm": b"a\0b", "match": _uapi.SAGA_MATCH_COMM},  # bytes after the NUL
    {"comm": b"x" * 16, "match": _uapi.SAGA_MATCH_COMM},  # not terminated
    {"key": b"k" * 32},
    {"syscalls": (0,) * _uapi.SAGA_SYSCALL_WORDS},     # no slot
])
def test_replace_einval(fd, over):
    assert replace_errno(fd, rule_bytes(**over)) == errno.EINVAL


def test_replace_eexist_enospc_efault_and_nothing_half_applied(saga, fd):
    assert replace_errno(fd, rule_bytes("9: log read"), rule_bytes("8: log write")) == 0
    assert replace_errno(fd, rule_bytes("4: log read"), rule_bytes("4: log write")) == errno.EEXIST
    assert replace_errno(fd, rule_bytes("4: log read"), rule_bytes("5: log write", action=7)) == errno.EINVAL
    assert [r.id for r in saga.list_rules()] == [9, 8]
    many = [rule_bytes(f"{i}: count read pid={i}") for i in range(1, _uapi.SAGA_MAX_RULES + 1)]
    assert replace_errno(fd, *many) == 0
    assert replace_errno(fd, *many, rule_bytes("2000: log read")) == errno.ENOSPC
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_REPLACE, LST.pack(count=2, rules_ptr=UNMAPPED)) == errno.EFAULT
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_REPLACE, UNMAPPED) == errno.EFAULT
    assert saga.info().nr_rules == _uapi.SAGA_MAX_RULES
    assert replace_errno(fd) == 0 and saga.list_rules() == []   # count 0: no rules (CLEAR is gone)


def test_rule_list_errnos(fd):
    replace_errno(fd, rule_bytes())
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_LIST, LST.pack(capacity=4, rules_ptr=UNMAPPED)) == errno.EFAULT
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_LIST, LST.pack(rules_ptr=UNMAPPED)) == 0
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_LIST, UNMAPPED) == errno.EFAULT


def test_stats_errnos(fd):
    assert ioctl_errno(fd, _uapi.SAGA_IOC_STATS_GET, STS.pack(nr_slots=1025)) == errno.EINVAL
    assert ioctl_errno(fd, _uapi.SAGA_IOC_STATS_GET, STS.pack(__pad=1)) == errno.EINVAL
    assert ioctl_errno(fd, _uapi.SAGA_IOC_STATS_GET, STS.pack(nr_slots=4, counters_ptr=UNMAPPED)) == errno.EFAULT
    assert ioctl_errno(fd, _uapi.SAGA_IOC_STATS_GET, UNMAPPED) == errno.EFAULT
    assert ioctl_errno(fd, _uapi.SAGA_IOC_STATS_GET, STS.pack(counters_ptr=UNMAPPED)) == 0


def test_set_enabled_errnos(fd):
    assert ioctl_errno(fd, _uapi.SAGA_IOC_SET_ENABLED, bytearray((2).to_bytes(4, "little"))) == errno.EINVAL
    assert ioctl_errno(fd, _uapi.SAGA_IOC_SET_ENABLED, UNMAPPED) == errno.EFAULT


def test_locked_changes_are_ebusy(fd):
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_LOCK) == 0
    assert replace_errno(fd) == errno.EBUSY
    assert ioctl_errno(fd, _uapi.SAGA_IOC_SET_ENABLED, bytearray((0).to_bytes(4, "little"))) == errno.EBUSY
    assert ioctl_errno(fd, _uapi.SAGA_IOC_STATS_RESET) == 0
    assert ioctl_errno(fd, _uapi.SAGA_IOC_RULE_LOCK) == 0


def test_unprivileged_holder_reads_but_cannot_change(fd):
    def probe():
        return {
            "info": ioctl_errno(fd, _uapi.SAGA_IOC_GET_INFO, _uapi.SAGA_INFO.pack()),
            "list": ioctl_errno(fd, _uapi.SAGA_IOC_RULE_LIST, LST.pack()),
            "stats": ioctl_errno(fd, _uapi.SAGA_IOC_STATS_GET, STS.pack()),
            "replace": replace_errno(fd),
            "lock": ioctl_errno(fd, _uapi.SAGA_IOC_RULE_LOCK),
            "reset": ioctl_errno(fd, _uapi.SAGA_IOC_STATS_RESET),
            "enable": ioctl_errno(fd, _uapi.SAGA_IOC_SET_ENABLED, bytearray((0).to_bytes(4, "little"))),
            "unknown": ioctl_errno(fd, 0xD5FF),
        }
    got = as_user(NOBODY, probe)
    assert got == {"info": 0, "list": 0, "stats": 0, "replace": errno.EPERM, "lock": errno.EPERM,
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

"""Aux blobs (argv, socket addresses, clone_args) as strace prints them (saga.aux_text); samples from strace 6.1."""
import socket
import struct

from saga import aux_text
from saga.render import quote


def sa_in(port, addr):
    return struct.pack("<H", socket.AF_INET) + struct.pack(">H", port) + socket.inet_aton(addr) + b"\0" * 8


def sa_in6(port, addr, scope=0):
    return (struct.pack("<H", socket.AF_INET6) + struct.pack(">HI", port, 0) + socket.inet_pton(socket.AF_INET6, addr)
            + struct.pack("<I", scope))


def sa_un(path: bytes):
    return struct.pack("<H", socket.AF_UNIX) + path


def test_socket_addresses_print_like_strace():
    assert aux_text.sockaddr(sa_in(9, "127.0.0.1"), quote) == \
        '{sa_family=AF_INET, sin_port=htons(9), sin_addr=inet_addr("127.0.0.1")}'
    assert aux_text.sockaddr(sa_in6(9, "::1"), quote) == ('{sa_family=AF_INET6, sin6_port=htons(9), '
                                                         'sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", '
                                                         '&sin6_addr), sin6_scope_id=0}')
    assert aux_text.sockaddr(sa_un(b"/tmp/nonexist.sock\0"), quote) == \
        '{sa_family=AF_UNIX, sun_path="/tmp/nonexist.sock"}'
    assert aux_text.sockaddr(sa_un(b"\0abstract-name"), quote) == '{sa_family=AF_UNIX, sun_path=@"abstract-name"}'
    assert aux_text.sockaddr(sa_un(b""), quote) == "{sa_family=AF_UNIX}"
    netlink = struct.pack("<HHII", 16, 0, 0, 0)
    assert aux_text.sockaddr(netlink, quote) == "{sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000000}"
    assert aux_text.sockaddr(sa_in(80, "10.0.0.1")[:8], quote, truncated=True).endswith(", ...}")


def test_socket_addresses_as_json():
    assert aux_text.sockaddr_fields(sa_in(80, "10.1.2.3")) == {"family": "AF_INET", "port": 80, "addr": "10.1.2.3"}
    assert aux_text.sockaddr_fields(sa_in6(443, "2001:db8::1", 2)) == {
        "family": "AF_INET6", "port": 443, "flowinfo": 0, "addr": "2001:db8::1", "scope_id": 2}
    assert aux_text.sockaddr_fields(sa_un(b"\0x\0y")) == {"family": "AF_UNIX", "abstract": b"x\0y"}


def test_argv_with_its_truncation():
    assert aux_text.argv([b"ls", b"-la"], quote) == '["ls", "-la"]'
    assert aux_text.argv([b"/bin/true", b"a b", b'c"d'], quote) == '["/bin/true", "a b", "c\\"d"]'
    assert aux_text.argv([b"sh", b"-c"], quote, truncated=True) == '["sh", "-c", ...]'
    assert aux_text.argv([], quote) == "[]"


def test_clone3_tells_a_thread_from_a_process():
    thread = struct.pack("<11Q", 0x3D0F00, 0, 0x7FC6FC5A2990, 0x7FC6FC5A2990, 0, 0x7FC6FBDA2000, 0x7FFF80,
                         0x7FC6FC5A26C0, 0, 0, 0)
    assert aux_text.clone_args(thread) == (
        "{flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|"
        "CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, child_tid=0x7fc6fc5a2990, parent_tid=0x7fc6fc5a2990, "
        "exit_signal=0, stack=0x7fc6fbda2000, stack_size=0x7fff80, tls=0x7fc6fc5a26c0}")
    assert aux_text.clone_kind(thread) == "thread"
    process = struct.pack("<11Q", 0x1000, 0x7FFC10, 0, 0, 17, 0, 0, 0, 0, 0, 0)[:64]
    assert aux_text.clone_args(process) == "{flags=CLONE_PIDFD, pidfd=0x7ffc10, exit_signal=SIGCHLD, stack=NULL, " \
                                           "stack_size=0}"
    assert aux_text.clone_kind(process) == "process"
    assert aux_text.clone_args_fields(process)["exit_signal"] == 17 and "cgroup" not in \
        aux_text.clone_args_fields(process)

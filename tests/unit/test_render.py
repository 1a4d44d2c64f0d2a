import json

import pytest

from saga import _uapi, events, render, syscalls


def one(**fields):
    fields.setdefault("ts_ns", 1795296601123456789)
    (raw,) = events.parse(events.pack(fields))
    return raw


def test_the_documented_example_line():
    raw = one(nr=syscalls.BY_NAME["openat"].slot, cpu=1, pid=812, tid=812, uid=0, comm="sshd", ret=3,
              duration_ns=12_400, args=(0xFFFFFF9C, 0x7FFD0000, 0o2000000, 0), paths=("/etc/passwd",))
    assert render.line(raw) == ('2026-11-21T21:30:01.123456789Z cpu=1 pid=812 tid=812 uid=0 comm=sshd '
                                'openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3 <12us>')


def test_failure_shows_errno_name_and_creat_shows_mode():
    raw = one(nr=syscalls.BY_NAME["openat"].slot, ret=-2, comm="x",
              args=(0xFFFFFF9C, 1, 0o101, 0o644), paths=("/nope",))
    assert 'openat(AT_FDCWD, "/nope", O_WRONLY|O_CREAT, 0644) = -2 ENOENT' in render.line(raw)


@pytest.mark.parametrize("ns, text", [(999, "<999ns>"), (1000, "<1us>"), (12_999, "<12us>"),
                                      (2_500_000_000, "<2.500s>")])
def test_duration_units(ns, text):
    assert render.line(one(nr=110, duration_ns=ns)).endswith(text)


def test_flags_and_noreturn():
    line = render.line(one(nr=syscalls.BY_NAME["exit_group"].slot, flags=_uapi.SAGA_EVF_NORETURN, args=(3,)))
    assert line.endswith("exit_group(3) = ? <?> [noreturn]")
    line = render.line(one(nr=syscalls.BY_NAME["execve"].slot, flags=_uapi.SAGA_EVF_PATH_FAULT, args=(0x10, 0, 0)))
    assert "execve(0x10, NULL, NULL)" in line and line.endswith("[path-fault]")


def test_truncated_path_is_marked_and_odd_characters_stay_on_one_line():
    long = "/" + "a" * (_uapi.SAGA_PATH_MAX - 2)
    line = render.line(one(nr=syscalls.BY_NAME["openat"].slot, flags=_uapi.SAGA_EVF_PATH_TRUNC,
                           args=(0xFFFFFF9C, 1, 0, 0), paths=(long,)))
    assert f'"{long}"...' in line
    line = render.line(one(nr=syscalls.BY_NAME["unlink"].slot, comm="a b", args=(1,), paths=('x\n"y',)))
    assert "\n" not in line and 'unlink("x\\n\\"y")' in line and 'comm="a b"' in line


def test_two_paths_and_address_returns():
    line = render.line(one(nr=syscalls.BY_NAME["renameat2"].slot, args=(0xFFFFFF9C, 1, 0xFFFFFF9C, 2, 0),
                           paths=("/a", "/b")))
    assert 'renameat2(AT_FDCWD, "/a", AT_FDCWD, "/b", 0)' in line
    line = render.line(one(nr=syscalls.BY_NAME["mmap"].slot, ret=0x7F0000001000, args=(0, 4096, 3, 0x22, 2**64 - 1, 0)))
    assert "mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000001000" in line


def test_json_form_is_serialisable_and_complete():
    obj = render.to_json(one(nr=syscalls.BY_NAME["openat"].slot, pid=5, ret=-13, comm="cat",
                             args=(0xFFFFFF9C, 1, 0, 0), paths=("/root/x",)))
    assert json.loads(json.dumps(obj))["errno"] == "EACCES"
    assert obj["syscall"] == "openat" and obj["paths"] == ["/root/x"] and obj["pid"] == 5


def test_bytes_that_are_not_utf8_are_escaped_so_the_line_is_valid_text():
    from saga.render import quote
    assert quote("/tmp/\udcff\udcfe-x") == '"/tmp/\\xff\\xfe-x"'
    assert quote("a\\b\udcff") == '"a\\\\b\\xff"'


def nr(name):
    return syscalls.BY_NAME[name].slot


def args_text(name, *args, **fields):
    return render.format_args(one(nr=nr(name), args=args, **fields))


def test_openat_prints_the_mode_only_with_o_creat_or_all_of_o_tmpfile():
    # O_DIRECTORY is one of O_TMPFILE's bits: it alone does not make openat read the mode
    directory = 0o2000000 | 0o200000 | 0o4000
    assert args_text("openat", 0xFFFFFF9C, 1, directory, 0, paths=("/tmp",)) == \
        'AT_FDCWD, "/tmp", O_RDONLY|O_NONBLOCK|O_DIRECTORY|O_CLOEXEC'
    assert args_text("openat", 0xFFFFFF9C, 1, 0o20200002, 0o600, paths=("/tmp",)) == \
        'AT_FDCWD, "/tmp", O_RDWR|O_TMPFILE, 0600'
    assert args_text("open", 1, 0o101, 0, paths=("/x",)) == '"/x", O_WRONLY|O_CREAT, 000'


def test_pointers_handles_and_offsets_keep_their_64_bits():
    assert args_text("capget", 0x7FFD9B8A1230, 0) == "0x7ffd9b8a1230, NULL"
    assert args_text("capset", 0x7FFD9B8A1230, 0x7FFD9B8A1240) == "0x7ffd9b8a1230, 0x7ffd9b8a1240"
    assert args_text("io_destroy", 0x7F5A12340000) == "0x7f5a12340000"
    assert args_text("pread64", 3, 0x7F00, 10, 5 << 32) == f"3, 0x7f00, 10, {5 << 32}"
    assert args_text("lseek", 3, 2**64 - 10, 1).startswith("3, -10, ")


def test_every_argument_type_of_the_table_is_known_to_the_generator():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "tools/gen_syscalls.py"
    spec = importlib.util.spec_from_file_location("gen_syscalls", path)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.arg_kind("capget", "header", "cap_user_header_t") == "ptr"
    assert gen.arg_kind("io_submit", "ctx_id", "aio_context_t") == "addr"
    with pytest.raises(SystemExit, match="new_handle_t"):
        gen.arg_kind("x", "h", "new_handle_t")
    kinds = {a.kind for s in syscalls.BY_SLOT.values() for a in s.args}
    assert kinds <= set(render._BY_KIND)


def test_umask_in_octal_like_strace():
    assert render.line(one(nr=nr("umask"), args=(0o27,), ret=0o22)).endswith("umask(027) = 022 <0ns>")
    assert args_text("umask", 0) == "000"


def test_minus_one_ids_are_minus_one():
    assert args_text("setresuid", 2**32 - 1, 1000, 2**32 - 1) == "-1, 1000, -1"
    assert args_text("fchown", 3, 2**32 - 1, 0) == "3, -1, 0"
    assert args_text("setgid", 4294967294) == "4294967294"


def test_json_paths_are_valid_utf8_and_lossless():
    obj = render.to_json(one(nr=nr("renameat2"), args=(0xFFFFFF9C, 1, 0xFFFFFF9C, 2, 0),
                             paths=("/tmp/\udcff\udcfe-x", "/tmp/ok")))
    text = json.dumps(obj, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate
    back = json.loads(text)["paths"]
    assert back == [{"hex": b"/tmp/\xff\xfe-x".hex()}, "/tmp/ok"]
    assert bytes.fromhex(back[0]["hex"]) == b"/tmp/\xff\xfe-x"
    assert render.to_json(one(nr=nr("getppid")))["paths"] == []


def test_an_empty_first_path_does_not_shift_the_second_into_its_place():
    # rename("", "/tmp/x"): the empty path is kept (ABI 2: path_len counts the NUL), in its place
    raw = one(nr=nr("rename"), args=(0x7FFC0010, 0x7FFC0020), paths=("", "/tmp/x"))
    assert render.format_args(raw) == '"", "/tmp/x"'
    assert render.to_json(raw)["paths"] == ["", "/tmp/x"]


def test_a_null_path_is_absent_not_a_pointer_or_a_fault():
    raw = one(nr=nr("utimensat"), args=(3, 0, 0, 0), paths=(None,))
    assert render.format_args(raw).startswith("3, NULL, ") and render.flag_names(raw[events.FLAGS]) == []


def test_empty_paths_print_as_empty_strings():
    assert args_text("newfstatat", 3, 0x7F10, 0x7FFC00, 0x1000, paths=("",)) == '3, "", 0x7ffc00, AT_EMPTY_PATH'
    assert args_text("utimensat", 3, 0, 0, 0, paths=(None,)) == "3, NULL, NULL, 0"


def test_execve_shows_its_argv_and_says_when_it_was_cut():
    argv = b"ls\0-la\0"
    raw = one(nr=nr("execve"), args=(0x10, 0x7FFD0000, 0x7FFD0100), paths=("/usr/bin/ls",),
              aux_kind=_uapi.SAGA_AUX_ARGV, aux=argv)
    assert render.format_args(raw) == '"/usr/bin/ls", ["ls", "-la"], 0x7ffd0100'
    assert render.to_json(raw)["argv"] == ["ls", "-la"]
    cut = one(nr=nr("execve"), args=(0x10, 0x7FFD0000, 0x7FFD0100), paths=("/bin/sh",),
              aux_kind=_uapi.SAGA_AUX_ARGV, aux=b"sh\0-c\0\xff\0", flags=_uapi.SAGA_EVF_AUX_TRUNC)
    assert '"/bin/sh", ["sh", "-c", "\\xff", ...], 0x7ffd0100' in render.line(cut)
    assert render.line(cut).endswith("[aux-truncated]")
    assert render.to_json(cut)["argv"] == ["sh", "-c", {"hex": "ff"}]
    at = one(nr=nr("execveat"), args=(3, 0x10, 0x7FFD0000, 0, 0x1000), paths=("",),
             aux_kind=_uapi.SAGA_AUX_ARGV, aux=b"x\0")
    assert render.format_args(at) == '3, "", ["x"], NULL, AT_EMPTY_PATH'


def test_socket_addresses_replace_their_pointers():
    import socket
    import struct
    sin = struct.pack("<H", socket.AF_INET) + struct.pack(">H", 80) + socket.inet_aton("127.0.0.1") + b"\0" * 8
    raw = one(nr=nr("connect"), args=(3, 0x7FFC00, 16), ret=-111, aux_kind=_uapi.SAGA_AUX_SOCKADDR, aux=sin)
    assert render.format_args(raw) == '3, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("127.0.0.1")}, 16'
    assert render.to_json(raw)["sockaddr"] == {"family": "AF_INET", "port": 80, "addr": "127.0.0.1"}
    unix = struct.pack("<H", socket.AF_UNIX) + b"\0srv\xff"
    raw = one(nr=nr("accept4"), args=(3, 0x7FFC00, 0x7FFC10, 0x80000), ret=4, aux_kind=_uapi.SAGA_AUX_SOCKADDR,
              aux=unix)
    assert render.format_args(raw) == '3, {sa_family=AF_UNIX, sun_path=@"srv\\xff"}, 0x7ffc10, SOCK_CLOEXEC'
    assert render.to_json(raw)["sockaddr"] == {"family": "AF_UNIX", "abstract": {"hex": "737276ff"}}
    raw = one(nr=nr("sendto"), args=(5, 0x7F00, 1, 0, 0x7FFC00, 16), ret=1, aux_kind=_uapi.SAGA_AUX_SOCKADDR,
              aux=sin)
    assert render.format_args(raw).startswith('5, 0x7f00, 1, 0, {sa_family=AF_INET, sin_port=htons(80)')
    faulted = one(nr=nr("connect"), args=(3, 0x7FFC00, 16), ret=-14, aux_kind=_uapi.SAGA_AUX_SOCKADDR, aux=b"",
                  flags=_uapi.SAGA_EVF_AUX_FAULT)
    assert render.format_args(faulted) == "3, 0x7ffc00, 16" and render.line(faulted).endswith("[aux-fault]")


def test_clone3_says_thread_or_process():
    import struct
    thread = struct.pack("<11Q", 0x3D0F00, 0, 0x7F10, 0x7F10, 0, 0x7F00, 0x7FFF80, 0x7F20, 0, 0, 0)
    raw = one(nr=nr("clone3"), args=(0x7FFC00, 88), ret=812, aux_kind=_uapi.SAGA_AUX_CLONE_ARGS, aux=thread)
    assert render.format_args(raw).startswith("{flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|")
    assert render.format_args(raw).endswith(", tls=0x7f20}, 88")
    obj = render.to_json(raw)["clone_args"]
    assert obj["kind"] == "thread" and obj["flags"] == 0x3D0F00 and obj["stack_size"] == 0x7FFF80


def test_lines_from_columns_are_the_lines_of_the_records(raws):
    """render.lines_of (an archive search's bulk rendering) prints what line() prints, for every recorded
    event and for the odd ones: flags, a comm that needs quoting, unknown time, the last representable ns."""
    import numpy as np
    odd = [one(nr=257, pid=7, comm="a b\x1b", ret=-13, flags=_uapi.SAGA_EVF_PATH_FAULT | _uapi.SAGA_EVF_NO_ENTER),
           one(nr=60, pid=8, comm="x", flags=_uapi.SAGA_EVF_NORETURN, duration_ns=5),
           one(nr=0, pid=9, ts_ns=0, duration_ns=999), one(nr=0, pid=9, ts_ns=(1 << 63) - 1, duration_ns=10**9)]
    for batch in (raws, odd, [one(nr=0, ts_ns=(1 << 64) - 1), one(nr=0, ts_ns=5)]):
        def col(i, dtype, rows=batch):
            return np.array([r[i] for r in rows], dtype)
        got = render.lines_of(col(events.TS, np.uint64), *(col(i, np.int64).tolist() for i in
                              (events.CPU, events.PID, events.TID, events.UID)),
                              col(events.COMM, "V16"), [render.call_text(r) for r in batch],
                              col(events.DURATION, np.uint64).tolist(), col(events.FLAGS, np.int64).tolist())
        assert got == [render.line(r) for r in batch]

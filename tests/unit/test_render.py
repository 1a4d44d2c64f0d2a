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
    assert 'renameat2(AT_FDCWD, "/a", AT_FDCWD, "/b", 0x0)' in line
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

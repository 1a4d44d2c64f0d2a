"""The command server (saga.cli.server) and the `saga` client (saga.cli.client), as real processes: a command
prints, fails and exits the same through the server as in its own process; signals, hang-ups, other users,
a changed installation, idle exit.  Each test has its own runtime directory and stops its server."""
from __future__ import annotations

import fcntl
import os
import pty
import shutil
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from cliserver import SAGA, WAIT, CommandServer, served_count, wait_exit
from waiting import wait_for

from saga.cli import client


@pytest.fixture
def served(tmp_path):
    with CommandServer(tmp_path) as server:
        yield server


@pytest.fixture
def db(archived_db) -> str:
    return archived_db


def test_commands_print_fail_and_exit_the_same_through_the_server(served, db):
    served.start()
    cases = [
        ["--db", db, "query", "-n", "5"], ["--db", db, "query", "--errno", "EACCES", "-n", "0"],
        ["--db", db, "query", "-e", "--json", "-n", "3"], ["--db", db, "report", "--by", "errno"],
        ["--db", db, "query", "--bogus"], ["--db", db, "query", "--errno", "ENOPE"],
        ["--db", db, "query", "--since", "tomorrowish"], ["--db", db, "query", "--path", "/nowhere"],
        ["--db", db, "report", "-b", "file", "-t", "3"], ["--help"], ["query", "--help"], ["nosuchcommand"],
        ["--db", db, "rules", "list", "--offline"], ["--db", "sqlite:////nonexistent/x.db", "query"],
    ]
    for case in cases:
        here = served.saga(*case, served=False)
        there = served.saga(*case)
        assert (there.returncode, there.stdout, there.stderr) == (here.returncode, here.stdout, here.stderr), case
        assert b"Traceback" not in there.stderr
    assert served.saga("--db", db, "query", "--bogus").returncode == 64
    assert served_count(served.stop()) == len(cases) + 1


def test_stdin_and_working_directory_are_the_clients(served, db, tmp_path):
    served.start()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "saga.toml").write_text(f'[store]\nurl = "{db}"\nhost = "h1"\n')
    for how in (False, True):       # a relative --config: the worker works in the client's directory
        r = served.saga("--config", "saga.toml", "query", "-n", "2", cwd=tmp_path / "sub", served=how)
        assert r.returncode == 0 and len(r.stdout.splitlines()) == 2, r.stderr
    for text in (b"exclude comm=cron\n", b"log syscall=nope(\n"):     # `rules check -` reads its stdin
        here = served.saga("rules", "check", "-", input=text, served=False)
        there = served.saga("rules", "check", "-", input=text)
        assert (there.returncode, there.stdout, there.stderr) == (here.returncode, here.stdout, here.stderr)
    assert served_count(served.stop()) == 3


def test_a_reader_that_goes_away_early(served, db):
    served.start()
    cmd = f"{SAGA} --db {db} query -n 0 | head -1; echo \"${{PIPESTATUS[@]}}\""
    here = subprocess.run(["bash", "-c", cmd], capture_output=True, env={**served.env, "SAGA_NO_SERVER": "1"})
    there = subprocess.run(["bash", "-c", cmd], capture_output=True, env=served.env)
    assert here.stdout.splitlines()[-1] == b"0 0"
    assert (there.stdout, there.stderr) == (here.stdout, here.stderr)
    assert served_count(served.stop()) == 1


def _on_terminal(served: CommandServer, args: list[str], env: dict[str, str], rows: int = 30, cols: int = 72):
    """(exit status, what the terminal showed) of `saga ARGS` on a pseudo-terminal of rows x cols."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {**env, "TERM": "xterm"}
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    proc = subprocess.Popen([SAGA, *args], stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    got = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:         # EIO: the terminal's last user closed it
            break
        if not chunk:
            break
        got += chunk
    os.close(master)
    return proc.wait(WAIT), got


def test_colour_and_terminal_width_on_a_terminal(served, db):
    served.start()
    alone = {**served.env, "SAGA_NO_SERVER": "1"}
    for args in (["--db", db, "query", "-e", "-n", "5"], ["query", "--help"], ["--db", db, "report", "-t", "3"]):
        for extra in ({}, {"NO_COLOR": "1"}):
            here = _on_terminal(served, args, {**alone, **extra})
            there = _on_terminal(served, args, {**served.env, **extra})
            assert there == here, (args, extra)
            if args[2:3] == ["query"] and not extra:
                assert b"\x1b[31m" in there[1]
            if extra:
                assert b"\x1b[31m" not in there[1]
    wide = _on_terminal(served, ["query", "--help"], served.env, cols=140)
    assert wide != _on_terminal(served, ["query", "--help"], served.env, cols=60)
    assert served_count(served.stop()) == 8


def _signals_default() -> None:
    """In a command these tests signal: the signals at their defaults, as a command started at a terminal has
    them (a suite run in the background, `nohup make test &`, has SIGINT and SIGHUP ignored, and a signal the
    command ignores is rightly not passed on)."""
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTERM, signal.SIGTSTP):
        signal.signal(sig, signal.SIG_DFL)


def _blocked(served: CommandServer, db: str, **kw) -> tuple[subprocess.Popen, int]:
    """`saga query -n 0` writing into a pipe nobody reads, waited for until the pipe is full (the command is
    blocked in a write); (the process, the pipe's read end)."""
    r, w = os.pipe()
    size = fcntl.fcntl(w, 1031, 4096)      # F_SETPIPE_SZ: a page (the command prints more)
    proc = subprocess.Popen([SAGA, "--db", db, "query", "-n", "0"], stdout=w, stderr=subprocess.PIPE,
                            env=served.env, preexec_fn=_signals_default, **kw)
    os.close(w)

    def full() -> bool:
        return struct.unpack("i", fcntl.ioctl(r, termios.FIONREAD, b"\0\0\0\0"))[0] >= size
    wait_for(full, WAIT, "the command to fill its pipe")
    return proc, r


def _drain(fd: int) -> bytes:
    got = b""
    while chunk := os.read(fd, 65536):
        got += chunk
    os.close(fd)
    return got


def _worker(server: int) -> int:
    children = Path(f"/proc/{server}/task/{server}/children")
    wait_for(lambda: children.read_text().split(), WAIT, "the worker")
    return int(children.read_text().split()[0])


def test_ctrl_c_to_the_client_stops_its_command(served):
    """`saga rules check -` waiting for its stdin (the worker blocked reading it, seen in /proc): Ctrl-C ends
    it as it ends the command alone, quietly, 130."""
    server = served.start()
    proc = subprocess.Popen([SAGA, "rules", "check", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=served.env, preexec_fn=_signals_default)
    worker = _worker(server)
    # read(2) (number 0) of fd 0: the command itself is waiting, its handlers in place
    wait_for(lambda: Path(f"/proc/{worker}/syscall").read_text().startswith("0 0x0 "), WAIT,
             "the worker to read its stdin")
    proc.send_signal(signal.SIGINT)
    assert (proc.wait(WAIT), proc.stdout.read(), proc.stderr.read()) == (130, b"", b"")
    proc.stdin.close()
    assert served_count(served.stop()) == 1


def test_sigterm_to_the_client_ends_it_as_it_would_end_alone(served, db):
    server = served.start()
    proc, r = _blocked(served, db)
    worker = _worker(server)
    proc.send_signal(signal.SIGTERM)
    wait_exit(worker)           # killed while blocked in its write (before the pipe is read: the write would end)
    _drain(r)
    assert proc.wait(WAIT) == -signal.SIGTERM
    assert served_count(served.stop()) == 1


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_ctrl_z_stops_the_worker_and_fg_continues_it(served, db):
    server = served.start()
    proc, r = _blocked(served, db)
    worker = _worker(server)
    proc.send_signal(signal.SIGTSTP)
    wait_for(lambda: _state(worker) == "T", WAIT, "the worker to stop")
    proc.send_signal(signal.SIGCONT)
    wait_for(lambda: _state(worker) != "T", WAIT, "the worker to continue")
    assert _drain(r) and proc.wait(WAIT) == 0
    assert served_count(served.stop()) == 1


def test_a_client_killed_takes_its_worker_with_it(served, db):
    server = served.start()
    proc, r = _blocked(served, db)
    worker = _worker(server)
    proc.kill()
    proc.wait(WAIT)
    wait_exit(worker)           # hung up by the server when the client's connection closed
    os.close(r)
    assert served_count(served.stop()) == 1


def test_a_server_of_another_installation_retires_for_the_client(served, db, tmp_path):
    """A server whose saga files changed, or a client of another interpreter setting: the server leaves, the
    client runs its command itself and starts a server like itself."""
    copy = tmp_path / "copy"
    shutil.copytree(Path(client.__file__).parents[1], copy / "saga")
    served.env["PYTHONPATH"] = str(copy)
    first = served.start()
    assert served.saga("--db", db, "query", "-n", "1").returncode == 0
    search = copy / "saga" / "cli" / "search.py"
    search.write_text(search.read_text() + "\n# changed\n")      # an upgrade of saga
    r = served.saga("--db", db, "query", "-n", "1")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1
    wait_exit(first)
    wait_for(lambda: served.log().count("serving on") == 2, WAIT, "a new server")
    second = served.pid()
    assert second != first
    r = served.saga("--db", db, "query", "-n", "1", env={"PYTHONOPTIMIZE": "1"})   # other interpreter flags
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1
    wait_exit(second)
    wait_for(lambda: served.log().count("serving on") == 3, WAIT, "a third server")
    third = served.pid()
    r = served.saga("--db", db, "query", "-n", "1", env={"PYTHONOPTIMIZE": "1", "SAGA_PYTHON_RENDER": "1"})
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1      # (the server made the C renderer's tables)
    wait_exit(third)
    wait_for(lambda: served.log().count("serving on") == 4, WAIT, "a fourth server")
    log = served.stop()
    assert log.count("leaving: a client") == 3 and served_count(log) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user")
def test_another_user_is_refused(served, db):
    served.start()
    sock = str(served.dir / client.SOCKET)
    probe = """if True:
        import _socket, sys
        from saga.cli import client
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            s.connect(sys.argv[1])
        except PermissionError:
            print("no access")
            sys.exit()
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2, 0))
        try:
            s.sendmsg([client._request(["saga", "--version"])], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
            print("answer", s.recv(100))
        except (BrokenPipeError, ConnectionResetError):
            print("answer", b"")
    """
    # nobody, allowed to read and search any directory (the tree may be in one closed to others), not to write
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=+dac_read_search",
              "--ambient-caps=+dac_read_search"]
    env = {**served.env, "PYTHONPATH": str(Path(client.__file__).parents[2])}
    plain = subprocess.run([*nobody, sys.executable, "-c", probe, sock], capture_output=True, env=env, text=True)
    assert plain.stdout == "no access\n", plain.stderr
    # With the right to pass the directory's permissions, the peer's uid is what refuses it.
    over = subprocess.run([*nobody[:4], "--inh-caps=+dac_read_search,+dac_override",
                           "--ambient-caps=+dac_read_search,+dac_override", sys.executable, "-c", probe, sock],
                          capture_output=True, env=env, text=True)
    assert over.stdout == "answer b''\n", over.stderr
    log = served.stop()
    assert "refused a connection from uid 65534" in log and served_count(log) == 0


def test_idle_server_leaves_and_removes_its_socket(tmp_path, db):
    s = CommandServer(tmp_path, SAGA_SERVER_IDLE="0.5")
    pid = s.start()
    wait_exit(pid)
    assert "leaving: idle" in s.log() and not (s.dir / client.SOCKET).exists()
    r = s.saga("--db", db, "query", "-n", "1")         # no server: runs here, starts one
    assert r.returncode == 0
    wait_for(lambda: s.log().count("serving on") == 2, WAIT, "the new server")
    s.stop()


def test_no_server_when_disabled_or_where_it_would_not_be_private(tmp_path, db):
    s = CommandServer(tmp_path)
    assert s.saga("--db", db, "query", "-n", "1", served=False).returncode == 0
    assert not s.dir.exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    s.dir.symlink_to(elsewhere)         # never followed
    assert s.saga("--db", db, "query", "-n", "1").returncode == 0
    assert not list(elsewhere.iterdir())
    s.dir.unlink()
    s.dir.mkdir(mode=0o755)             # others may enter: not used
    assert s.saga("--db", db, "query", "-n", "1").returncode == 0
    assert not list(s.dir.iterdir())

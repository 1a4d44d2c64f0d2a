"""saga query, report and stats --pid/--comm on the archive, SQLite and a real PostgreSQL server.

The archive holds the recorded workload as the replay driver delivers it (real captured calls), twice
(two writes, the first with the executable the daemon would have looked up): every expectation is
derived from the records.
"""
from __future__ import annotations

import errno
import json
from collections import Counter
from fnmatch import fnmatchcase

import pytest
from test_cli import Saga

from saga import _uapi, decode, events, render, syscalls
from saga.cli.output import RED, failed_line
from saga.cli.search import human_ns
from saga.events import COMM, FLAGS, NR, PID, PPID, RET, TID, UID
from saga.filters import failed, parse_time
from saga.store import Store, archive
from saga.store import rules as stored_rules

EXE = "/usr/bin/saga-fixture"


def _archive_driver(saga: Saga, drv, exe_of: dict | None = None) -> list[tuple]:
    """What the daemon does: read the driver, archive each read; returns the events archived."""
    archived: list[tuple] = []
    with Store.open(saga.url) as st:
        with st.session() as sess, sess.begin():
            h = stored_rules.host_id(sess, saga.config.store.host_name)
        w = archive.EventWriter(st.engine, h)
        while True:
            buf = drv.read_raw(1 << 20, timeout=0)
            if not buf:
                break
            got = events.parse(buf)
            w.write([(buf, got)], exe_of or {})
            archived += got
        w.close()
    return archived


@pytest.fixture
def saga(tmp_path, replay, store_url, raws):
    s = Saga(tmp_path, replay, store_url)
    _archive_driver(s, replay, {raws[0][PID]: EXE})
    return s


def lines(result) -> list[str]:
    return result.stdout.splitlines()


def test_query_filters_print_exactly_the_matching_events(saga, raws):
    child = next(r for r in raws if r[PPID] == raws[0][PID])
    thread = next(r for r in raws if r[TID] != r[PID])
    cases = [
        (["--errno", "EACCES"], lambda r: r[RET] == -errno.EACCES),
        (["--errno", "2", "-s", "openat"], lambda r: r[RET] == -errno.ENOENT and r[NR] == 257),
        (["--path", "/etc/*"], lambda r: any(fnmatchcase(p, "/etc/*") for p in events.paths_of(r))),
        (["--path", "/etc/shadow", "-e"], lambda r: "/etc/shadow" in events.paths_of(r) and failed(r)),
        (["--ppid", str(child[PPID])], lambda r: r[PPID] == child[PPID]),
        (["--tid", str(thread[TID])], lambda r: r[TID] == thread[TID]),
        (["-x", "saga-fixture"], lambda r: r[PID] == raws[0][PID]),
        (["--exe", "/usr/*/saga-*", "-u", "0"], lambda r: r[PID] == raws[0][PID] and r[UID] == 0),
        (["-c", "nginx"], lambda r: r[COMM].rstrip(b"\0") == b"nginx"),
    ]
    for args, expect in cases:
        want = [render.line(r) for r in raws if expect(r)]
        assert want, args
        assert lines(saga("query", "-n", "0", *args)) == want, args
    # two writes: the executable is known for the first one only
    assert len(lines(saga("query", "-n", "0", "-x", "saga-fixture"))) == sum(r[PID] == raws[0][PID] for r in raws)


def test_log_with_a_filter_only_the_archive_answers_reads_the_archive(saga):
    mine = lines(saga("query", "-x", "saga-fixture", "-n", "0"))
    assert len(mine) > 3 and lines(saga("log", "-x", "saga-fixture", "-n", "3")) == mine[-3:]
    r = saga("log", "--exe", "nope", code=1)
    assert r.stdout == "" and "no matching events" in r.stderr


def test_query_exits_1_when_nothing_matches(saga):
    for args in (["--errno", "EXDEV"], ["--path", "/no/such/file"], ["--exe", "nope"], ["--key", "nokey"],
                 ["--since", "2000-01-01", "--until", "2000-01-02"], ["--host", "other"]):
        r = saga("query", *args, code=1)
        assert r.stdout == "" and "no matching events" in r.stderr


def test_query_limit_json_and_archive_order(saga, raws):
    r = saga("query", "-n", "3")
    assert lines(r) == [render.line(x) for x in raws[-3:]]
    assert "showing the 3 matching events archived last" in r.stderr
    objs = [json.loads(x) for x in lines(saga("query", "--errno", "EACCES", "--json"))]
    want = [x for x in raws if x[RET] == -errno.EACCES]
    assert [o["ts_ns"] for o in objs] == [x[events.TS] for x in want]
    assert {o["errno"] for o in objs} == {"EACCES"} and all(o["host"] == "testhost" for o in objs)
    assert len(lines(saga("query", "-n", "0"))) == len(raws)


def test_query_by_rule_key_finds_the_calls_that_rule_logged(tmp_path, recording, store_url):
    """Records name the rule that logged them from ABI 2 on (an ABI 1 record names none: no key matches)."""
    from saga.drivers.replay import ReplayDriver
    drv = ReplayDriver(recording)
    saga = Saga(tmp_path, drv, store_url)
    added = saga("rules", "add", "log", "openat", "--key", "opens").stdout
    rule_id = int(added.split()[1].rstrip(":"))
    got = _archive_driver(saga, drv)
    saga("rules", "rm", str(rule_id))          # the key stays known for the events it logged
    at = getattr(events, "RULE_ID", None)
    want = [render.line(r) for r in got if at is not None and r[at] == rule_id]
    r = saga("query", "-n", "0", "--key", "opens", code=0 if want else 1)
    assert lines(r) == want and got
    drv.close()


def test_bad_filter_values_are_usage_errors(saga):
    for args, msg in ((["--errno", "ENOPE"], "unknown errno"), (["--errno", "0"], "errnos are 1 to 4095"),
                      (["--since", "tomorrowish"], "bad time"), (["--path", ""], "--path needs a value")):
        r = saga("query", *args, code=64)
        assert msg in r.stderr


def test_report_by_syscall_counts_calls_failures_and_time(saga, raws):
    obj = json.loads(saga("report", "--json", "--top", "0").stdout)
    assert obj["by"] == "syscall" and obj["calls"] == len(raws) and obj["failures"] == sum(map(failed, raws))
    untimed = _uapi.SAGA_EVF_NO_ENTER | _uapi.SAGA_EVF_NORETURN
    for g in obj["groups"]:
        mine = [r for r in raws if r[NR] == g["nr"]]
        assert g["syscall"] == syscalls.name_of(g["nr"])
        assert (g["calls"], g["failures"]) == (len(mine), sum(map(failed, mine)))
        durations = sorted(r[events.DURATION] for r in mine if not r[FLAGS] & untimed)
        assert g["total_ns"] == sum(durations)
        if durations:     # the histogram's bucket: within 4.5% of the true median
            true_p50 = durations[(len(durations) + 1) // 2 - 1]
            assert abs(g["p50_ns"] - true_p50) <= 0.05 * true_p50 + 128
        else:
            assert g["p50_ns"] is None
    assert [g["calls"] for g in obj["groups"]] == sorted((g["calls"] for g in obj["groups"]), reverse=True)
    table = lines(saga("report", "--top", "3"))
    assert table[0].startswith(f"{len(raws)} calls, {sum(map(failed, raws))} failed")
    assert table[1].split() == ["SYSCALL", "CALLS", "FAILED", "FAIL%", "P50", "P99", "TOTAL"]
    assert len(table) == 5


def test_report_by_errno_file_user_and_process(saga, raws):
    def groups(*args):
        return json.loads(saga("report", "--json", "--top", "0", *args).stdout)["groups"]

    errnos = Counter(-r[RET] for r in raws if failed(r))
    assert {g["errno"]: g["calls"] for g in groups("--by", "errno")} == \
        {decode.errno_name(e): n for e, n in errnos.items()}
    files = Counter(p for r in raws for p in set(events.paths_of(r)))
    assert {g["path"]: g["calls"] for g in groups("--by", "file")} == files
    assert {g["uid"]: g["calls"] for g in groups("--by", "user")} == Counter(r[UID] for r in raws)
    procs = Counter((r[COMM].rstrip(b"\0").decode(), EXE if r[PID] == raws[0][PID] else None) for r in raws)
    assert {(g["comm"], g["exe"]): g["calls"] for g in groups("--by", "process")} == procs
    # filters narrow a report as they narrow a query
    assert sum(g["calls"] for g in groups("--by", "file", "--errno", "ENOENT")) == \
        sum(len(set(events.paths_of(r))) for r in raws if r[RET] == -errno.ENOENT)
    saga("report", "--by", "colour", code=64)
    saga("report", "--errno", "EXDEV", code=1)


def test_stats_of_one_process_come_from_the_archive_like_strace_c(saga, raws):
    pid = raws[0][PID]
    out = lines(saga("stats", "--pid", str(pid), "--since", "@0"))
    assert out[0].split() == ["%", "time", "seconds", "usecs/call", "calls", "errors", "syscall"]
    mine = [r for r in raws if r[PID] == pid]
    rows = {line.split()[-1]: line.split() for line in out[2:-2]}
    assert set(rows) == {syscalls.name_of(r[NR]) for r in mine}
    for name, cols in rows.items():
        assert int(cols[3]) == sum(syscalls.name_of(r[NR]) == name for r in mine)
    assert out[-1].split()[-1] == "total" and int(out[-1].split()[3]) == len(mine)
    obj = json.loads(saga("stats", "--comm", "saga-fixture", "--since", "@0", "--json").stdout)
    assert sum(s["calls"] for s in obj["syscalls"]) == sum(r[COMM].rstrip(b"\0") == b"saga-fixture" for r in raws)
    saga("stats", "--pid", str(pid), "--watch", "1", code=64)
    saga("stats", "--since", "1h", code=64)        # the driver's counters have no time


def test_time_words():
    now = parse_time("2026-12-09T15:30:00")      # a Wednesday, local time
    day = 86400 * 10**9
    assert parse_time("today", now) == parse_time("2026-12-09", now)
    assert parse_time("yesterday", now) == parse_time("2026-12-08", now)
    assert parse_time("this-week", now) == parse_time("2026-12-07", now)     # Monday
    assert parse_time("week-ago", now) == parse_time("2026-12-02", now)
    assert parse_time("this-month", now) == parse_time("2026-12-01", now)
    assert parse_time("this-year", now) == parse_time("2026-01-01", now)
    assert parse_time("recent", now) == now - 600 * 10**9
    assert parse_time("boot", now) < now + day
    with open("/proc/stat") as f:
        btime = next(int(x.split()[1]) for x in f if x.startswith("btime "))
    assert parse_time("boot") == btime * 10**9


def test_failures_stand_out_on_a_terminal_only():
    raw = events.parse(events.pack(dict(nr=257, pid=1, ts_ns=5, ret=-2, paths=("/x",))))[0]
    text = render.line(raw)
    coloured = failed_line(text)
    assert RED in coloured and coloured.replace(RED, "").replace("\x1b[0m", "") == text
    assert "= \x1b[31m-2 ENOENT\x1b[0m <" in coloured


def test_query_output_is_plain_in_pipes_and_with_no_color(saga, monkeypatch):
    assert "\x1b[" not in saga("query", "-e").stdout             # CliRunner: not a terminal
    from saga.cli import output
    monkeypatch.setattr(output.sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    assert not output.colour(output.sys.stdout)


def test_human_durations():
    assert [human_ns(x) for x in (None, 850, 12_300, 3_400_000, 1_200_000_000)] == \
        ["-", "850ns", "12.3us", "3.4ms", "1.20s"]


def test_rules_add_warns_when_an_earlier_rule_shadows_it(tmp_path, replay, sqlite_url):
    saga = Saga(tmp_path, replay, sqlite_url)
    saga("rules", "add", "count", "open*", "--uid", "0")
    r = saga("rules", "add", "ignore", "openat", "--uid", "0", "--comm", "nginx")
    assert "warning: rule 1: count open* uid=0 comes first and matches every call this one does" in r.stderr
    assert "--first" in r.stderr
    for args in (["ignore", "openat", "--comm", "nginx"],        # uid unset: the earlier rule does not cover it
                 ["ignore", "read"],                              # another syscall
                 ["ignore", "openat", "--uid", "0", "--first"]):  # put before it
        assert "warning" not in saga("rules", "add", *args).stderr, args
    saga("rules", "add", "log", "%file", "--errors")
    assert "warning" in saga("rules", "add", "log", "unlink", "--errors", "--uid", "5").stderr
    assert "warning" not in saga("rules", "add", "log", "unlinkat").stderr   # errors-only does not cover it


def test_stats_watch_keeps_the_header_and_the_rows_that_fit(saga, raws):
    from saga.cli.stats import Sort, render_table
    st = saga.driver.stats()
    text = render_table(st, Sort.calls, None, fit=10).splitlines()
    assert len(text) == 10 and text[1].split()[0] == "SYSCALL" and text[-1].split()[0] == "total"
    assert len(render_table(st, Sort.calls, None).splitlines()) == len(st.per_slot) + 3


def test_host_selects_one_hosts_events_in_queries_reports_and_stats(saga, raws, recording):
    """Several hosts archive into one database (a PostgreSQL server's use): --host takes one host's events."""
    other = raws[:100]
    with Store.open(saga.url) as st:
        with st.session() as sess, sess.begin():
            h = stored_rules.host_id(sess, "web2")
        w = archive.EventWriter(st.engine, h)
        w.write([(recording[:sum(r[events.SIZE] for r in other)], other)])
        w.close()
    assert lines(saga("query", "-n", "0", "--host", "web2")) == [render.line(r) for r in other]
    assert lines(saga("query", "-n", "0", "--host", "testhost")) == [render.line(r) for r in raws]
    both = lines(saga("query", "-n", "0", "--with-host"))
    assert both == [f"testhost: {render.line(r)}" for r in raws] + [f"web2: {render.line(r)}" for r in other]
    for host, mine in (("web2", other), ("testhost", raws)):
        obj = json.loads(saga("report", "--json", "--host", host).stdout)
        assert obj["calls"] == len(mine) and obj["failures"] == sum(map(failed, mine)), host
        got = json.loads(saga("stats", "--pid", str(raws[0][PID]), "--since", "@0", "--host", host, "--json").stdout)
        assert sum(s["calls"] for s in got["syscalls"]) == sum(r[PID] == raws[0][PID] for r in mine), host
    saga("report", "--host", "web3", code=1)


def test_query_on_a_terminal_shows_failed_calls_in_red(saga, raws, monkeypatch):
    from saga.cli import search
    monkeypatch.setattr(search, "colour", lambda stream: True)
    got = lines(saga("query", "-n", "0"))
    assert got == [failed_line(render.line(r)) if failed(r) else render.line(r) for r in raws]
    assert sum(RED in x for x in got) == sum(map(failed, raws)) > 0

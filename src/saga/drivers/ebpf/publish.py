"""Publishing a rule set to the probes, and reading back the one in force.

A rule set lives in entry 0 or 1 of two maps (bpf/saga_bpf.h): the
per-slot action table in `slot_actions`, which every call reads, and the
whole list in `rules` (an array of maps), which only slots that must walk
the rules read.  config.actions names the entry in force.  A change:

1. stores the new list in the spare entry of `rules`: a new inner map
   swapped in with one update.  The kernel returns from an update of an
   array of maps only after an RCU grace period (maybe_wait_bpf_programs()
   in kernel/bpf/syscall.c, since Linux 4.17), and every probe runs inside
   an RCU read-side section (the raw tracepoint runner takes
   rcu_read_lock() around the program).  So when the update returns, every
   probe that read the index before the previous switch -- the only ones
   that could still be reading the spare entry -- has finished;
2. writes the spare entry of `slot_actions`: nobody reads it now, so no
   probe can see it half written;
3. switches config.actions to the spare entry with one aligned 4-byte
   store.  A probe reads the index once and takes both the table and the
   list from that entry: it applies the old set or the new one, never a mix.

Dying at any point before step 3 leaves the set in force untouched; the
next change starts over.  Changes are serialised by the caller (flock on
the pin directory).

sys_enter is attached before a set that can log takes effect and detached
after one that cannot: counting alone then runs one program per call.
(Calls already under way when it attaches are logged NO_ENTER, as at load.)
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from saga.drivers.ebpf import layout as L
from saga.drivers.ebpf import libbpf
from saga.drivers.ebpf.ruleset import RuleSet
from saga.drivers.ebpf.shared import Words
from saga.errors import DriverError


@dataclass
class RuleMaps:
    """What a rule change touches: the pin directory, the two maps and the config words."""
    directory: str
    rules_fd: int
    actions_fd: int
    cfg: Words

    def in_force(self) -> int:
        return self.cfg.u32(L.CFG_ACTIONS) & 1


def publish(maps: RuleMaps, rs: RuleSet) -> None:
    """Make rs the rule set in force (steps 1-3 above)."""
    can_log = rs.can_log()
    if can_log:
        set_enter_attached(maps.directory, True)
    spare = 1 - maps.in_force()
    _store(maps, spare, rs)
    maps.cfg.set_u32(L.CFG_ACTIONS, spare)
    if not can_log:
        set_enter_attached(maps.directory, False)


def _store(maps: RuleMaps, entry: int, rs: RuleSet) -> None:
    value, table = rs.encode(), rs.actions()
    inner = libbpf.map_create_array("saga_ruleset", L.RULESET_SIZE)
    try:
        libbpf.map_update(inner, 0, value)
        libbpf.map_update(maps.rules_fd, entry, inner.to_bytes(4, "little"))  # waits for a grace period
    finally:
        os.close(inner)
    libbpf.map_update(maps.actions_fd, entry, table)


def current(maps: RuleMaps) -> RuleSet:
    """The rule set in force, read back from its list."""
    for _ in range(5):
        inner_id = int.from_bytes(libbpf.map_lookup(maps.rules_fd, maps.in_force(), 4), "little")
        try:
            fd = libbpf.map_fd_by_id(inner_id)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue  # replaced and freed between the two calls: read again
            raise
        try:
            return RuleSet.decode(libbpf.map_lookup(fd, 0, L.RULESET_SIZE))
        finally:
            os.close(fd)
    raise DriverError("the rule set kept changing while being read; try again", errno=errno.EAGAIN)


def freeze(maps: RuleMaps) -> None:
    """Make both entries hold the set in force, then freeze both maps against user space.

    With both entries equal, switching the index (the config stays
    writable) cannot bring back an older set."""
    try:
        _store(maps, 1 - maps.in_force(), current(maps))
    except OSError as exc:
        if exc.errno != errno.EPERM:  # EPERM: `rules` is frozen, so a lock got this far before
            raise
    for fd in (maps.rules_fd, maps.actions_fd):
        try:
            libbpf.map_freeze(fd)
        except OSError as exc:
            if exc.errno != errno.EBUSY:  # EBUSY: already frozen
                raise


def set_enter_attached(directory: str, attached: bool) -> None:
    link = os.path.join(directory, L.ENTER_LINK_PIN)
    if attached and not os.path.exists(link):
        libbpf.attach_pinned_prog(os.path.join(directory, L.ENTER_PROG_PIN), link)
    elif not attached and os.path.exists(link):
        os.unlink(link)  # the last reference: the kernel detaches it

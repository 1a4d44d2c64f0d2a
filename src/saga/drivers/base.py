"""The driver interface: one capture backend behind one set of operations.

A driver is the live state of capture on this machine: counters, rules,
the enabled flag and the event stream.  `kmod` talks to /dev/saga, `ebpf`
to saga's pinned BPF maps and ring buffer, `replay` to a file of recorded
records (tests and demos).  Every method raises only SagaError subclasses
(saga.errors); OSError is translated at this boundary.
"""
from __future__ import annotations

import errno as errnos
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from saga import _uapi
from saga.errors import RuleError, RulesLocked, SagaError, from_oserror
from saga.rules.model import Rule


@dataclass(frozen=True)
class DriverInfo:
    driver: str              # "kmod", "ebpf" or "replay"
    version: str             # of the kernel side (module or BPF object)
    abi_version: int
    features: int            # SAGA_FEAT_*
    ring_bytes: int          # event buffer per CPU (kmod) or in all (ebpf)
    nr_cpus: int
    enabled: bool
    locked: bool
    nr_rules: int
    default_action: str      # log | count | ignore


@dataclass(frozen=True)
class Stats:
    per_slot: dict[int, tuple[int, int]] = field(default_factory=dict)  # slot -> (calls, errors), nonzero only
    calls: int = 0
    errors: int = 0
    events: int = 0          # records produced
    drops: int = 0           # records lost to a full buffer
    read: int = 0            # records handed to readers
    no_enter: int = 0        # records without enter state
    path_faults: int = 0
    aux_faults: int = 0      # aux blobs cut short: user memory could not be read
    tree_drops: int = 0      # descendants not marked for a tree rule (no room)
    missed: int = 0          # calls neither counted nor logged: the kernel skipped saga's probe (eBPF, docs/ebpf.md)
    reset_ns: int = 0        # CLOCK_REALTIME of the last reset or load


class Driver(ABC):
    name: ClassVar[str]

    # -- state -------------------------------------------------------------
    @abstractmethod
    def info(self) -> DriverInfo: ...

    @abstractmethod
    def stats(self) -> Stats: ...

    @abstractmethod
    def reset_stats(self) -> None: ...

    @abstractmethod
    def set_enabled(self, enabled: bool) -> None: ...

    # -- rules (ordered; first match wins; ids are the caller's: nonzero, unique) --
    @abstractmethod
    def list_rules(self) -> list[Rule]:
        """Rules in force, in order, with ids; syscall tokens rebuilt from the slot set."""

    @abstractmethod
    def replace_rules(self, rules: list[Rule]) -> None:
        """Install exactly these rules (each with its id) in one atomic step; refusals as `refusal` says."""

    @abstractmethod
    def lock_rules(self) -> None: ...

    # -- events --------------------------------------------------------------
    @abstractmethod
    def fileno(self) -> int:
        """A descriptor that polls readable when records are waiting."""

    @abstractmethod
    def read_raw(self, max_bytes: int = 1 << 20, timeout: float | None = 0.0) -> bytes:
        """Whole records (saga.events format), at most max_bytes; b"" if none came within timeout
        (None waits indefinitely).  The calling process is excluded from capture while it reads."""

    def set_wake_period(self, seconds: float | None) -> None:
        """How often fileno() polls readable for a trickle of records that has not reached the driver's
        fill mark (None: the driver's default).  Only the eBPF driver has such a periodic check; the
        others' descriptors poll readable as soon as a record waits, and ignore this."""
        return None

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


LOCKED = "rules are locked until the driver is unloaded"


def refusal(code: int, what: str) -> SagaError:
    """The error every driver raises when a change fails with errno `code` (docs/kernel-abi.md): the
    change's own meanings of EBUSY, EEXIST, ENOSPC and EINVAL, else errors.from_oserror's translation."""
    if code == errnos.EBUSY:
        return RulesLocked(f"{what}: {LOCKED}")
    if code == errnos.EEXIST:
        return RuleError(f"{what}: two rules have the same id", errno=code)
    if code == errnos.ENOSPC:
        return RuleError(f"{what}: too many rules (at most {_uapi.SAGA_MAX_RULES})", errno=code)
    if code == errnos.EINVAL:
        return RuleError(f"{what}: the driver refused a rule (invalid argument)", errno=code)
    return from_oserror(OSError(code, os.strerror(code)), what, hint="needs CAP_SYS_ADMIN: run as root")

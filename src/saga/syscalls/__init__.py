"""The syscall table: names, slots, arguments and classes.

Slots are the numbers saga counts by (see SAGA_NR_SLOTS in the uapi
header): a native x86_64 call is its own number, an ia32 call maps to the
native slot of the same name, and ia32 calls with no native twin are
counted apart at SAGA_COMPAT_BASE + their ia32 number, named `ia32:NAME`.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from functools import lru_cache

from saga import _uapi
from saga.syscalls import _table


@dataclass(frozen=True, slots=True)
class Arg:
    name: str
    ctype: str
    kind: str  # path str ptr fd dirfd mode flags int uint


@dataclass(frozen=True, slots=True)
class Syscall:
    slot: int
    name: str
    args: tuple[Arg, ...]

    @property
    def path_args(self) -> tuple[int, ...]:
        return tuple(i for i, a in enumerate(self.args) if a.kind == "path")


def _build() -> tuple[dict[int, Syscall], dict[str, Syscall], dict[int, int]]:
    by_slot: dict[int, Syscall] = {}
    for slot, name, args in _table.NATIVE:
        by_slot[slot] = Syscall(slot, name, tuple(Arg(*a) for a in args))
    ia32_slot: dict[int, int] = {}
    for nr, name, slot, args in _table.IA32:
        ia32_slot[nr] = slot
        if slot >= _uapi.SAGA_COMPAT_BASE and slot != _uapi.SAGA_NR_UNKNOWN:
            by_slot[slot] = Syscall(slot, f"ia32:{name}", tuple(Arg(*a) for a in args))
    by_slot[_uapi.SAGA_NR_UNKNOWN] = Syscall(_uapi.SAGA_NR_UNKNOWN, "unknown", ())
    by_name = {s.name: s for s in by_slot.values()}
    return by_slot, by_name, ia32_slot


BY_SLOT, BY_NAME, IA32_SLOT = _build()
CLASSES: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in _table.CLASSES.items()}
NATIVE_NAMES: tuple[str, ...] = tuple(name for _, name, _ in _table.NATIVE)
# Slots whose child side (a new task returning 0) is neither counted nor logged.
FORK_SLOTS: frozenset[int] = frozenset(BY_NAME[n].slot for n in _table.FORK_CALLS)
# Slots counted and logged at entry (flag NORETURN).
ENTRY_SLOTS: frozenset[int] = frozenset(BY_NAME[n].slot for n in _table.DONE_AT_ENTRY)
# Slot -> (kind SAGA_AUX_*, pointer arg, length arg or None, length read through a pointer, read at exit).
AUX: dict[int, tuple[int, int, int | None, bool, bool]] = {
    BY_NAME[n].slot: (getattr(_uapi, "SAGA_AUX_" + kind), ptr, length, lenptr, at_exit)
    for n, (kind, ptr, length, lenptr, at_exit) in _table.AUX.items()}


def name_of(slot: int) -> str:
    """The slot's name; `syscall_N` for slots this table does not know (newer kernels)."""
    s = BY_SLOT.get(slot)
    return s.name if s else f"syscall_{slot}"


def lookup(name: str) -> Syscall | None:
    """The syscall called `name`, or `syscall_N` for a bare slot number."""
    if name in BY_NAME:
        return BY_NAME[name]
    if name.startswith("syscall_") and name[8:].isdigit():
        slot = int(name[8:])
        if 0 <= slot < _uapi.SAGA_NR_SLOTS:
            return BY_SLOT.get(slot) or Syscall(slot, name, ())
    return None


def suggest(name: str, n: int = 3) -> list[str]:
    """The closest known names, for 'did you mean' messages."""
    import difflib  # here: only a mistake needs it, and it costs a command's start
    return difflib.get_close_matches(name, BY_NAME.keys(), n=n, cutoff=0.6)


@lru_cache(maxsize=512)
def glob(pattern: str) -> tuple[Syscall, ...]:
    """Calls whose name matches a shell glob (`open*`), native names first."""
    return tuple(s for s in BY_SLOT.values() if fnmatch.fnmatchcase(s.name, pattern))

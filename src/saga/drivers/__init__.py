"""Capture drivers and the choice between them.

`auto` prefers the kernel module (cheapest, works on any kernel Debian
ships) and falls back to eBPF where modules cannot be loaded (Secure
Boot, lockdown, CONFIG_MODULES=n).  Each driver module exposes a class
with `open(load=False)` that raises DriverUnavailable with the reason it
cannot run.  Only the daemon (and `make up`) passes load=True: loading the
module (modprobe) or the BPF program is a deliberate act, never a side
effect of `saga stats`.  Without load, open() attaches to what is already
loaded and says how to load it when nothing is.
"""
from __future__ import annotations

from saga.drivers.base import Driver, DriverInfo, Stats
from saga.errors import DriverUnavailable, UsageError

KINDS = ("auto", "kmod", "ebpf", "replay")


def _open_kmod(load: bool) -> Driver:
    try:
        from saga.drivers.kmod import KmodDriver
    except ImportError as exc:
        raise DriverUnavailable(f"kmod: this build has no kernel-module driver ({exc})") from None
    return KmodDriver.open(load=load)


def _open_ebpf(load: bool) -> Driver:
    try:
        from saga.drivers.ebpf import EbpfDriver
    except ImportError as exc:
        raise DriverUnavailable(f"ebpf: this build has no eBPF driver ({exc})") from None
    return EbpfDriver.open(load=load)


def open_driver(kind: str = "auto", *, load: bool = False, replay_path: str | None = None) -> Driver:
    """Open the named driver; `auto` tries kmod, then ebpf, and explains both failures."""
    openers = {"kmod": _open_kmod, "ebpf": _open_ebpf}
    if kind in openers:
        try:
            return openers[kind](load)
        except DriverUnavailable as exc:
            raise DriverUnavailable(f"the {kind} driver cannot run: {exc}") from None
    if kind == "replay":
        if not replay_path:
            raise UsageError("the replay driver needs a recording (--replay FILE)")
        from saga.drivers.replay import ReplayDriver
        return ReplayDriver.open(replay_path)
    if kind != "auto":
        raise UsageError(f"unknown driver {kind!r}: one of {', '.join(KINDS)}")
    reasons = []
    for name, opener in openers.items():
        try:
            return opener(load)
        except DriverUnavailable as exc:
            reasons.append(f"{name}: {exc}")
    raise DriverUnavailable("no capture driver can run here: " + "; ".join(reasons))


__all__ = ["Driver", "DriverInfo", "Stats", "open_driver", "KINDS"]

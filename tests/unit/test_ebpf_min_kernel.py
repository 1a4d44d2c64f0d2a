"""The eBPF driver names the oldest kernel it runs on and refuses older ones before loading anything.

5.17 is the newest feature the BPF program uses (bpf_loop; task storage
for tracing programs came in 5.11, bpf_task_pt_regs in 5.15); docs/ebpf.md
states it.  No root or kernel feature needed: the release is made up.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from saga.drivers.ebpf import loader
from saga.errors import DriverUnavailable


def check_host_on(monkeypatch, release: str) -> str:
    """check_host()'s refusal (or "") as if this were Linux `release`, run as root."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "host", release, "#1", "x86_64")))
    try:
        loader.check_host()
    except DriverUnavailable as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize("release", ["5.16.20", "5.10.0-33-amd64", "4.19.0-27-amd64", "5.4"])
def test_older_kernels_are_refused_with_the_minimum_and_the_fix(monkeypatch, release):
    why = check_host_on(monkeypatch, release)
    assert re.fullmatch(rf"Linux {re.escape(release)} is too old for the eBPF driver \(needs 5\.17 or newer\): "
                        r"use the kernel module", why), why


@pytest.mark.parametrize("release", ["5.17.0", "6.1.0-57-rt-amd64", "6.12.117+deb13-amd64", "7.3.4+deb13-amd64",
                                     "10.0.1"])
def test_supported_kernels_pass_the_version_check(monkeypatch, release):
    assert "too old" not in check_host_on(monkeypatch, release)


def test_the_minimum_is_the_documented_one():
    doc = (Path(__file__).resolve().parents[2] / "docs/ebpf.md").read_text()
    assert f"Linux {loader.MIN_KERNEL[0]}.{loader.MIN_KERNEL[1]} or newer" in doc

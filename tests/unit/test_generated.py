"""The committed generated files match their sources."""
import glob
import re
import subprocess
import sys
from pathlib import Path

import pytest

from saga import _uapi, syscalls

ROOT = Path(__file__).resolve().parents[2]


def test_uapi_mirrors_and_the_version_are_fresh():
    res = subprocess.run([sys.executable, "tools/gen_uapi.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_uapi_layout_matches_struct_formats():
    for layout in (_uapi.SAGA_EVENT, _uapi.SAGA_RULE, _uapi.SAGA_STATS, _uapi.SAGA_INFO):
        assert getattr(_uapi, layout.name.upper() + "_STRUCT").size == layout.size


def test_syscall_tables_are_fresh():
    res = subprocess.run([sys.executable, "tools/gen_syscalls.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_constant_tables_are_fresh():
    res = subprocess.run([sys.executable, "tools/gen_consts.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


UNISTD_64 = "/usr/src/linux-headers-*-amd64/arch/x86/include/generated/uapi/asm/unistd_64.h"


@pytest.mark.parametrize("unistd", sorted(glob.glob(UNISTD_64)))
def test_every_installed_kernel_call_is_known_by_number(unistd):
    for name, nr in re.findall(r"#define __NR_(\w+)\s+(\d+)", Path(unistd).read_text()):
        if name == "syscalls":
            continue
        assert syscalls.name_of(int(nr)) == name, f"{unistd}: {name}={nr}"


def test_path_arguments_of_well_known_calls():
    assert syscalls.BY_NAME["openat"].path_args == (1,)
    assert syscalls.BY_NAME["renameat2"].path_args == (1, 3)
    assert syscalls.BY_NAME["execve"].path_args == (0,)
    assert syscalls.BY_NAME["getppid"].path_args == ()
    assert syscalls.IA32_SLOT[5] == syscalls.BY_NAME["open"].slot  # ia32 open -> native open
    assert syscalls.name_of(syscalls.IA32_SLOT[102]) == "ia32:socketcall"


def test_the_kernel_sides_take_syscall_numbers_from_the_generated_header():
    """A syscall number typed by hand in the module or the BPF program is a mirror nothing checks."""
    typed = []
    for src in sorted(ROOT.glob("kmod/*.[ch]")) + sorted(ROOT.glob("bpf/*.[ch]")):
        if src.name == "saga_syscalls.h":
            continue
        typed += [f"{src.name}: {m}" for m in re.findall(r"^#define\s+\w*NR_\w*\s+\d+.*$", src.read_text(), re.M)]
        typed += [f"{src.name}: {m}" for m in re.findall(r"\b(?:slot|nr|id)\s*[!=]=\s*\d+", src.read_text())]
    assert not typed, typed

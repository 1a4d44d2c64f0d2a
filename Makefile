# saga — top-level targets.  `make up` and `make test` work on a fresh clone:
# each installs what it needs first (tools/deps.sh, idempotent).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := .venv
PY      := $(VENV)/bin/python
PYTEST  := PYTHONDONTWRITEBYTECODE=1 $(PY) -m pytest -p no:cacheprovider
BPF_DIR := src/saga/drivers/ebpf
BPF_OBJ := $(BPF_DIR)/saga.bpf.o
# The compiled renderer (saga.fastrender loads it with ctypes; the daemon renders in Python without it).
RENDER_SO := src/saga/_render.so
# Kernels the module is tested on: Debian 12's 6.1 and 6.1 PREEMPT_RT, Debian 13's
# 6.12 and 6.12 PREEMPT_RT, trixie-backports' 7.x and 7.x PREEMPT_RT (tools/kernels.sh).
TEST_KERNELS = $(shell tools/kernels.sh)

.PHONY: help up down deps build kmod bpf render uapi syscalls consts test test-unit test-host test-vm test-pkg bench deb clean

help:
	@echo "make up      install what is needed, build, start saga (module or eBPF) and mount /sagafs"
	@echo "make down    stop saga and unmount /sagafs"
	@echo "make test    install what is needed and run every test (host, VMs, packages)"
	@echo "make bench   run the benchmarks (docs/benchmarks.md)"
	@echo "make deb     build the Debian packages into dist/"
	@echo "make build   build the BPF object and, where headers exist, the module"

up:
	tools/deps.sh base bpf
	$(MAKE) --no-print-directory build
	tools/up.sh

down:
	tools/down.sh

deps:
	tools/deps.sh base bpf

build: bpf render
	@if [ -d /lib/modules/$$(uname -r)/build ]; then $(MAKE) --no-print-directory kmod KDIR=/lib/modules/$$(uname -r)/build; \
	 else echo "build: no headers for $$(uname -r): module not built here (the eBPF driver needs none)"; fi

# The module for one kernel: make kmod KDIR=/lib/modules/<release>/build
kmod:
	$(MAKE) -C kmod KDIR=$(KDIR)

bpf: $(BPF_OBJ)

$(BPF_OBJ): bpf/saga.bpf.c bpf/*.h kmod/include/uapi/linux/saga.h kmod/saga_syscalls.h tools/build-bpf.sh
	tools/build-bpf.sh $@

render: $(RENDER_SO)

$(RENDER_SO): src/saga/_render.c kmod/include/uapi/linux/saga.h tools/build-render.sh
	tools/build-render.sh $@

# Regenerate the committed generated files (tests fail when they are stale).
uapi:
	$(PY) tools/gen_uapi.py

syscalls:
	$(PY) tools/gen_syscalls.py

consts:
	$(PY) tools/gen_consts.py

test:
	tools/deps.sh base bpf vm pkg pg bench
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory test-unit test-host test-vm test-pkg

test-unit:
	$(PYTEST) tests/unit

# eBPF, FUSE and the fault suite on this machine's kernel (root), as on a fresh machine: in a
# private mount namespace where no tracefs, debugfs or bpffs is mounted.
test-host:
	tools/fresh-ns env $(PYTEST) tests/ebpf tests/fuse tests/faults

# One VM boot per kernel: build saga.ko with its release's toolchain, run tests/kernel
# inside (and the eBPF driver's core tests on 6.1 and 7.x).
test-vm:
	tools/vmtest $(TEST_KERNELS)

# Build the packages for Debian 12 and 13, install them on clean roots of their
# release (debootstrap, cached in /var/cache/saga-test), boot Debian 12's in a
# VM, and both with systemd-nspawn --boot for the service's lifecycle
# (docs/install.md).
test-pkg:
	tools/deps.sh base bpf vm pkg
	$(PYTEST) tests/pkg

bench:
	tools/deps.sh base bpf vm bench
	$(MAKE) --no-print-directory build
	tools/bench.sh

deb:
	tools/deps.sh base bpf pkg
	packaging/build.sh

clean:
	$(MAKE) -C kmod clean KDIR=$(firstword $(wildcard /lib/modules/*/build)) || true
	rm -rf build dist $(BPF_OBJ) $(RENDER_SO)

"""The eBPF capture driver: saga's BPF program (bpf/saga.bpf.c) loaded through libbpf.

`EbpfDriver.open(load=True)` loads and pins it (daemon, `make up`);
`EbpfDriver.open()` attaches to the pinned state from any process;
`EbpfDriver.unload()` detaches and unpins (`make down`).  docs/ebpf.md.
"""
from saga.drivers.ebpf.driver import EbpfDriver

__all__ = ["EbpfDriver"]

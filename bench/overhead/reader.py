"""The benchmark's draining reader: what the daemon does, minus the archive.

Reads records with EbpfDriver.read_raw until SIGTERM, then prints the
records and bytes it received.  Run with SAGA_BPF_DIR pointing at the
instance under test."""
from __future__ import annotations

import signal
import sys

from saga.drivers.ebpf import EbpfDriver

stop = False


def on_term(*_):
    global stop
    stop = True


def main() -> int:
    signal.signal(signal.SIGTERM, on_term)
    n = nbytes = 0
    with EbpfDriver.open() as drv:
        drv.fileno()  # registers this process as a reader: its own calls are not logged
        print("ready", flush=True)
        while not stop:
            data = drv.read_raw(4 << 20, 0.05)
            nbytes += len(data)
        n = drv.stats().read
    print(n, nbytes, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

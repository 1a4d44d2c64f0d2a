"""python -m saga.drivers.ebpf load|unload|status: for make up/down and packaging scripts."""
from __future__ import annotations

import sys

from saga.errors import SagaError


def main(argv: list[str]) -> int:
    from saga.drivers.ebpf import EbpfDriver, loader

    cmd = argv[0] if argv else ""
    try:
        if cmd == "load":
            EbpfDriver.open(load=True).close()
            print(f"saga eBPF driver loaded, pinned at {loader.pin_dir()}")
        elif cmd == "unload":
            print("saga eBPF driver unloaded" if EbpfDriver.unload() else "saga eBPF driver was not loaded")
        elif cmd == "status":
            with EbpfDriver.open() as drv:
                info, st = drv.info(), drv.stats()
                print(f"loaded at {loader.pin_dir()}: version {info.version}, enabled={int(info.enabled)}, "
                      f"rules={info.nr_rules}, calls={st.calls}, events={st.events}, drops={st.drops}")
        else:
            print("usage: python -m saga.drivers.ebpf load|unload|status", file=sys.stderr)
            return 64
    except SagaError as exc:
        print(f"saga: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

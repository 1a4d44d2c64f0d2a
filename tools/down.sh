#!/usr/bin/env bash
# `make down`: stop what `make up` started: the daemon (which archives what it
# drained and unmounts /sagafs), the eBPF driver or the module make up loaded,
# and the `saga` link on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
SAGA="$PWD/.venv/bin/saga"
PY="$PWD/.venv/bin/python"
MOUNT=${SAGA_MOUNT:-/sagafs}
RUN=/run/saga
LINK=/usr/local/bin/saga

[ "$(id -u)" = 0 ] || { echo "make down: needs root (sudo make down)" >&2; exit 77; }

if [ -f "$RUN/saga.pid" ] && pid=$(cat "$RUN/saga.pid" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  echo "stopping the saga daemon (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "make down: the daemon did not stop within 30 s (pid $pid)" >&2
    exit 1
  fi
fi
if mountpoint -q "$MOUNT" 2>/dev/null || ! stat "$MOUNT" >/dev/null 2>&1; then
  fusermount3 -uz "$MOUNT" 2>/dev/null || umount -l "$MOUNT" 2>/dev/null || true
fi
if [ -x "$PY" ] && "$PY" -m saga.drivers.ebpf status >/dev/null 2>&1; then
  "$PY" -m saga.drivers.ebpf unload
fi
if [ -f "$RUN/insmod-by-make-up" ]; then
  rmmod saga && echo "saga.ko unloaded"
  rm -f "$RUN/insmod-by-make-up"
fi
if [ "$(readlink "$LINK" 2>/dev/null)" = "$SAGA" ]; then
  rm -f "$LINK"
fi
echo "saga is stopped"

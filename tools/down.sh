#!/usr/bin/env bash
# `make down`: stop what `make up` started: the daemon (which archives what it
# drained, unmounts /sagafs and unloads its driver), any saga driver still
# loaded (a daemon that was killed, `saga driver load`), and the `saga` link
# on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
SAGA="$PWD/.venv/bin/saga"
MOUNT=${SAGA_MOUNT:-/sagafs}
RUN=/run/saga
LINK=/usr/local/bin/saga
# This script's own saga commands start no command server (docs/cli.md): one would outlive
# `make up`/`make down` for its idle time; the daemon started here inherits it and never uses one.
export SAGA_NO_SERVER=1

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
if [ -x "$SAGA" ]; then
  out=$("$SAGA" driver unload) || exit 1
  [ "$out" = "no saga driver was loaded" ] || echo "$out"
fi
# The mount point and run directory the daemon made, when empty (never through a mount).
mountpoint -q "$MOUNT" 2>/dev/null || rmdir "$MOUNT" 2>/dev/null || true
rmdir "$RUN" 2>/dev/null || true
if [ "$(readlink "$LINK" 2>/dev/null)" = "$SAGA" ]; then
  rm -f "$LINK"
fi
echo "saga is stopped"

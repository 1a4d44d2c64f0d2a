#!/usr/bin/env bash
# `make up`: start saga here with the best driver this kernel allows, mount
# /sagafs, and say what to try next.  Idempotent: a running saga is left as is.
# `make down` (tools/down.sh) undoes it.
set -euo pipefail
cd "$(dirname "$0")/.."
SAGA="$PWD/.venv/bin/saga"
MOUNT=${SAGA_MOUNT:-/sagafs}
LOGDIR=/var/log/saga
LINK=/usr/local/bin/saga
# This script's own saga commands start no command server (docs/cli.md): one would outlive
# `make up`/`make down` for its idle time; the daemon started here inherits it and never uses one.
export SAGA_NO_SERVER=1

[ "$(id -u)" = 0 ] || { echo "make up: saga needs root (sudo make up)" >&2; exit 77; }

daemon_running() {
  "$SAGA" status --json 2>/dev/null | "$PWD/.venv/bin/python" -c \
    'import json,sys; r=json.load(sys.stdin); sys.exit(0 if r["daemon"].get("running") and r.get("mount") else 1)'
}

next_steps() {
  command -v saga >/dev/null 2>&1 || LINKED="$SAGA"
  local s=${LINKED:-saga}
  cat <<EOF

saga is running ($1 driver); its log: $LOGDIR/daemon.log. Try:
  tail /sagafs/log                      # the newest events (cat: the whole window)
  cat /sagafs/pipe                      # follow new events (Ctrl-C to stop)
  $s stats --top 10                   # per-syscall counters
  $s rules add ignore 'open*'         # stop counting and logging open, openat, openat2
  $s log -f --syscall execve          # follow process starts
  $s query --syscall openat --errors --since 1h
Stop it with: make down
EOF
}

if daemon_running; then
  driver=$("$SAGA" status --json | "$PWD/.venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["driver"]["driver"])')
  echo "saga is already running."
  next_steps "$driver"
  exit 0
fi

# The best driver: the module where this kernel can load it, else eBPF.
driver=ebpf
reason=""
if [ -e /dev/saga ]; then
  driver=kmod
elif [ ! -e /proc/modules ]; then
  reason="this kernel ($(uname -r)) was built without module support"
elif [ "$(cat /proc/sys/kernel/modules_disabled 2>/dev/null || echo 0)" = 1 ]; then
  reason="module loading is disabled (kernel.modules_disabled=1)"
elif [ ! -f kmod/saga.ko ]; then
  reason="saga.ko is not built: no headers for $(uname -r) (apt install linux-headers-$(uname -r), then make up)"
elif out=$(insmod kmod/saga.ko 2>&1); then
  driver=kmod   # the daemon owns it from now on: it removes the module when it stops
else
  reason="insmod saga.ko failed: ${out##*: } (Secure Boot or lockdown refuses unsigned modules)"
fi
if [ "$driver" = kmod ]; then
  echo "saga: using the kernel module (saga.ko)"
else
  echo "saga: using the eBPF driver: $reason"
fi

mkdir -p "$LOGDIR"
setsid "$SAGA" daemon --driver "$driver" --mount "$MOUNT" >>"$LOGDIR/daemon.log" 2>&1 </dev/null &
for _ in $(seq 1 120); do
  daemon_running && break
  if ! kill -0 $! 2>/dev/null; then
    echo "make up: the daemon stopped; the end of $LOGDIR/daemon.log:" >&2
    tail -5 "$LOGDIR/daemon.log" >&2
    exit 1
  fi
  sleep 0.5
done
if ! daemon_running; then
  echo "make up: the daemon did not come up within 60 s; see $LOGDIR/daemon.log" >&2
  exit 1
fi

# `saga` on PATH, unless another one (the Debian package) is there already.
if ! command -v saga >/dev/null 2>&1 || [ "$(readlink "$LINK" 2>/dev/null)" = "$SAGA" ]; then
  ln -sfn "$SAGA" "$LINK"
fi
next_steps "$driver"

#!/usr/bin/env bash
# Run every benchmark: each bench/<name>/run prints a markdown table and
# writes it to build/bench/<name>.md.  docs/benchmarks.md quotes them.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/bench
status=0
for run in bench/*/run; do
  name=$(basename "$(dirname "$run")")
  echo "== bench/$name"
  "$run" | tee "build/bench/$name.md" || status=1
done
exit $status

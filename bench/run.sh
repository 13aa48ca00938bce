#!/bin/sh
# Builds what the session-host benchmarks need in build-bench and runs them (as root).
#   bench/run.sh [session_bench.py options...]      e.g. bench/run.sh --only launch --launches 5
# Raw numbers go to bench/results.json (rename it to keep it), the Markdown table to stdout.
# Bounded: the build by `timeout 1200`, the benchmark by its own --time-limit (570 s) and by
# `timeout 660` around it.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
build="${BENCH_BUILD:-$repo/build-bench}"
[ -f "$build/build.ninja" ] || cmake -S "$repo" -B "$build" -G Ninja >/dev/null
timeout 1200 ninja -C "$build" -j2 appvirt-hostd appvirt-hostctl appvirt-sandbox appvirt-rdp \
  rdp-probe appvirt-testpattern
exec timeout -s TERM -k 30 660 /usr/bin/python3 "$repo/bench/session_bench.py" \
  --build "$build" --json "$repo/bench/results.json" "$@"

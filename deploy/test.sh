#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs dependencies, builds, runs every test (unit, root,
# end-to-end) on the release build, the unit tests again under ASan+UBSan, and each fuzz target
# for a bounded time. Run as root on Debian 12. Exit code 0 only if everything passed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc)
fuzz_seconds=${APPVIRT_FUZZ_SECONDS:-20}

step() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }

step "install dependencies"
bash deploy/install-deps.sh

step "release build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build -j"$jobs"

step "all tests (unit, root, e2e) on the release build"
ctest --test-dir build --output-on-failure --timeout 600 -j1

step "ASan+UBSan build, unit tests"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DAPPVIRT_SANITIZE=ON >/dev/null
ninja -C build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -L unit --timeout 300 -j"$jobs"

step "fuzz targets (${fuzz_seconds}s each)"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DAPPVIRT_FUZZ=ON >/dev/null
ninja -C build-fuzz -j"$jobs" fuzz_targets
for target in build-fuzz/tests/fuzz/*_fuzz; do
  name=$(basename "$target")
  corpus="tests/fuzz/corpus/${name%_fuzz}"
  work=$(mktemp -d)
  cp -r "$corpus"/. "$work"/ 2>/dev/null || true
  echo "fuzz: $name"
  "$target" -max_total_time="$fuzz_seconds" -print_final_stats=0 "$work" 2>&1 | tail -n 2
  rm -rf "$work"
done

step "all passed"

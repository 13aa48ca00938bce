#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs dependencies, builds, runs every test (unit, root,
# end-to-end) on the release build, the unit tests again under ASan+UBSan, and each fuzz target
# for a bounded time. Run as root on Debian 12. Exit code 0 only if everything passed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc)

step() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }

step "install dependencies"
bash deploy/install-deps.sh

step "release build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build -j"$jobs"

step "all tests (unit, root, e2e) on the release build"
ctest --test-dir build --output-on-failure --timeout 600 -j1

step "ASan+UBSan build, unit tests"
# Only the executables behind unit-labelled tests are built again with sanitizers (names from the
# release build's test list), which halves this step's build time.
unit_targets=$(ctest --test-dir build -L unit --show-only=json-v1 | python3 -c '
import json, os, sys
tests = json.load(sys.stdin)["tests"]
print(" ".join(sorted({os.path.basename(t["command"][0]) for t in tests if t.get("command")})))')
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DAPPVIRT_SANITIZE=ON >/dev/null
# shellcheck disable=SC2086
ninja -C build-asan -j"$jobs" $unit_targets
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -L unit --timeout 300 -j"$jobs"

step "fuzz targets (bounded runs of every libFuzzer target)"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DAPPVIRT_FUZZ=ON >/dev/null
ninja -C build-fuzz -j"$jobs" fuzz_targets
ctest --test-dir build-fuzz --output-on-failure -R '_fuzz_smoke$' --timeout 300

step "all passed"

#!/usr/bin/env bash
# All-in-one start on this machine (Debian 12, as root): installs the dependencies, builds the
# runtime binaries, installs them under /opt/appvirt and runs `appvirt up`, which starts hostd,
# broker and gateway with a demo user and demo apps and prints where to connect (docs/up.md).
# Runs until Ctrl-C / SIGTERM, then logs every session off and leaves nothing running.
# Idempotent: run it again at any time. Extra arguments go to `appvirt up` (see --help), e.g.
#   sudo bash deploy/run.sh --demo-user alice:'a long password' --rdp-port 13389
set -euo pipefail
if [[ $EUID -ne 0 ]]; then echo "run.sh: run as root (sudo bash deploy/run.sh)" >&2; exit 1; fi
root=$(cd "$(dirname "$0")/.." && pwd)
build=${APPVIRT_BUILD_DIR:-$root/build-run}
prefix=${APPVIRT_PREFIX:-/opt/appvirt}

bash "$root/deploy/install-deps.sh"
# Without tests and benchmarks (APPVIRT_BUILD_TESTS=OFF): every remaining target is one that
# `cmake --install` needs, so no hand-kept target list (one broke when appvirt-vm was added).
# Its own build directory, so that it never reconfigures the test build (deploy/test.sh: build/).
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DAPPVIRT_BUILD_TESTS=OFF -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
ninja -C "$build" -j"$(nproc)"
cmake --install "$build" --prefix "$prefix" >/dev/null
echo "run.sh: installed under $prefix; starting appvirt up"
exec "$prefix/bin/appvirt" up "$@"

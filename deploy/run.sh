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
build=${APPVIRT_BUILD_DIR:-$root/build}
prefix=${APPVIRT_PREFIX:-/opt/appvirt}

bash "$root/deploy/install-deps.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
# Everything: `cmake --install` needs every target that has an install() rule, and components
# keep adding them (a hand-kept list broke when session-host/vm added appvirt-vm).
ninja -C "$build" -j"$(nproc)"
cmake --install "$build" --prefix "$prefix" >/dev/null
echo "run.sh: installed under $prefix; starting appvirt up"
exec "$prefix/bin/appvirt" up "$@"

#!/usr/bin/env bash
# Installs every Debian 12 package appvirt needs to build, run and test, and the system user the
# RDP endpoints run as. Idempotent; run as root.
set -euo pipefail
if [[ $EUID -ne 0 ]]; then echo "install-deps.sh: run as root" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive

packages=(
  # build
  build-essential cmake ninja-build pkg-config git clang libclang-rt-14-dev
  libboost-system-dev libboost-dev libssl-dev libpam0g-dev libspdlog-dev libfmt-dev
  nlohmann-json3-dev libtomlplusplus-dev libexpected-dev libsqlite3-dev libseccomp-dev
  libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev libpng-dev
  freerdp2-dev libx11-dev libxext-dev libxdamage-dev libxfixes-dev libxtst-dev libxrandr-dev
  # run: X server for sessions, published demo apps, RDP libraries
  xvfb xauth x11-xkb-utils xkb-data xfonts-base xterm x11-apps x11-utils
  libfreerdp-server2-2 libfreerdp-shadow2-2 libfreerdp-shadow-subsystem2-2 libfreerdp-client2-2
  openssl iproute2 procps psmisc util-linux passwd python3 curl
  # test: real RDP clients, screenshots
  freerdp2-x11 freerdp2-shadow-x11 imagemagick
  # VM sessions: QEMU, and building the golden image (deploy/build-vm-image.sh)
  qemu-system-x86 qemu-utils mmdebstrap cpio e2fsprogs
  # test: the web portal in a headless browser (Playwright from npm drives Debian's chromium)
  chromium nodejs
)
# npm: Debian's package, unless the installed nodejs brings its own (NodeSource's conflicts with it).
command -v npm >/dev/null || packages+=(npm)

stamp=/var/lib/appvirt/.deps-installed
want=$(printf '%s\n' "${packages[@]}" | sha256sum | cut -c1-16)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]] && dpkg -s "${packages[@]}" >/dev/null 2>&1; then
  echo "install-deps: all packages present"
else
  apt-get update
  apt-get install -y --no-install-recommends "${packages[@]}"
  mkdir -p "$(dirname "$stamp")"
  echo "$want" > "$stamp"
fi

# The unprivileged user every appvirt-rdp endpoint runs as: it must not be able to read users' files.
if ! getent passwd appvirt-rdp >/dev/null; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin appvirt-rdp
fi
# PAM service of appvirt-broker (portal sign-in, gateway logon); a site's own stack is kept.
if [[ ! -e /etc/pam.d/appvirt ]]; then
  install -m 0644 "$(dirname "$0")/pam.d/appvirt" /etc/pam.d/appvirt
fi
echo "install-deps: done"

#!/usr/bin/env bash
# Builds the golden VM image of appvirt's VM sessions from Debian packages (see docs/vm.md):
#   <out>/<variant>/<hash>/{rootfs.qcow2,vmlinuz,initrd.img,manifest.json}, <out>/<variant>/current -> <hash>
# <hash> is the sha256 of every input (this script, deploy/vm/*, the binaries copied in, the
# package list with resolved versions, the mirrors), so a rebuild with the same inputs is a no-op.
# The guest boots directly (-kernel/-initrd): no boot loader, no systemd; busybox init starts
# the guest agent. Run as root (mmdebstrap in root mode, chroot).
set -euo pipefail

usage() {
  cat <<EOF
usage: $0 [--minimal] [--out DIR] [--rdp BIN] [--testpattern BIN] [--mirror "deb URI SUITE COMP"]...
  --minimal        small image for tests (Xvfb, appvirt-rdp, appvirt-testpattern; no WM)
  --out DIR        image store (default /var/lib/appvirt/images)
  --rdp BIN        appvirt-rdp to install (default <repo>/build/session-host/rdp/appvirt-rdp)
  --testpattern BIN  appvirt-testpattern to install (default <repo>/build/tests/tools/appvirt-testpattern)
  --mirror LINE    apt source line (repeatable; default deb.debian.org bookworm, -updates, -security)
  --no-verify      skip the boot check at the end
Prints the image directory on the last line of stdout.
EOF
}

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
variant=full
out=/var/lib/appvirt/images
rdp_bin="$repo/build/session-host/rdp/appvirt-rdp"
pattern_bin="$repo/build/tests/tools/appvirt-testpattern"
mirrors=()
verify=1
suite=bookworm
kernel_meta=linux-image-cloud-amd64
# Fixed timestamp for files, file system and archives: same inputs, same bytes where the tools allow.
export SOURCE_DATE_EPOCH=1704067200
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH

while [[ $# -gt 0 ]]; do
  case $1 in
    --minimal) variant=minimal ;;
    --out) out=$2; shift ;;
    --rdp) rdp_bin=$2; shift ;;
    --testpattern) pattern_bin=$2; shift ;;
    --mirror) mirrors+=("$2"); shift ;;
    --no-verify) verify=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build-vm-image: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [[ ${#mirrors[@]} -eq 0 ]]; then
  mirrors=("deb http://deb.debian.org/debian $suite main"
           "deb http://deb.debian.org/debian $suite-updates main"
           "deb http://deb.debian.org/debian-security $suite-security main")
fi

exec 9>&2  # the caller's stderr: progress and failures go there, step output to step logs
step_no=0
steps_total=8
current_step=""
work=""
step_log=/dev/null
t_start=$(date +%s)

# run_step NAME FUNCTION: progress line, the function in a subshell with errexit (so the first
# failing command ends it), its output in a per-step log, and on failure a message naming the
# step with the end of that log.
run_step() {
  step_no=$((step_no + 1))
  current_step=$1
  step_log="$work/log/$step_no-$1.log"
  echo "build-vm-image: [$step_no/$steps_total] $1 ($(($(date +%s) - t_start)) s)" >&9
  local rc=0
  set +e
  (set -e; "$2") > "$step_log" 2>&1
  rc=$?
  set -e
  if [[ $rc -ne 0 ]]; then
    echo "build-vm-image: FAILED at step '$1' (exit $rc); last lines of $step_log:" >&9
    tail -n 25 "$step_log" >&9
    exit 1
  fi
}

cleanup() {
  [[ -n $work && -d $work ]] || return 0
  # Never rm -rf through a mount that an interrupted mmdebstrap left behind (e.g. /dev binds).
  if awk -v w="$work/" 'index($2, w) == 1 {found = 1} END {exit !found}' /proc/mounts; then
    echo "build-vm-image: mounts remain below $work; not removing it" >&9
  elif [[ ${KEEP_WORK:-0} != 1 ]]; then
    rm -rf "$work"
  fi
}
trap cleanup EXIT

check_tools() {
  [[ $EUID -eq 0 ]] || { echo "build-vm-image: run as root (mmdebstrap --mode=root, chroot)" >&2; false; }
  local t
  for t in mmdebstrap qemu-img qemu-system-x86_64 mke2fs debugfs cpio gzip apt-get apt-cache dpkg-deb ldd sha256sum; do
    command -v "$t" > /dev/null || { echo "missing tool: $t (deploy/install-deps.sh installs it)"; false; }
  done
  [[ -x $rdp_bin ]] || { echo "appvirt-rdp not found at $rdp_bin (build it or pass --rdp)"; false; }
  [[ -x $pattern_bin ]] || { echo "appvirt-testpattern not found at $pattern_bin (pass --testpattern)"; false; }
}

# Debian packages that hold the shared libraries the binaries link (resolved on this Debian
# host; with merged /usr, dpkg may know a library under /lib or under /usr/lib). One dpkg -S call:
# each call reads dpkg's whole file database.
lib_packages() {
  local lib p q pkg
  local -a libs cands=()
  mapfile -t libs < <(ldd "$@" | awk '$3 ~ /^\// {print $3}' | sort -u)
  for lib in "${libs[@]}"; do
    for p in "$lib" "$(readlink -f "$lib")"; do cands+=("$p" "${p#/usr}" "/usr$p"); done
  done
  dpkg -S "${cands[@]}" 2> /dev/null | awk -F': ' '{sub(/:[a-z0-9]+$/, "", $1); print $2, $1}' \
    > "$work/lib-packages" || true
  for lib in "${libs[@]}"; do
    pkg=""
    for p in "$lib" "$(readlink -f "$lib")"; do
      for q in "$p" "${p#/usr}" "/usr$p"; do
        pkg=$(awk -v f="$q" '$1 == f {print $2; exit}' "$work/lib-packages")
        [[ -n $pkg ]] && break 2
      done
    done
    [[ -n $pkg ]] || { echo "no Debian package holds $lib (linked by $*)" >&2; return 1; }
    echo "$pkg"
  done | sort -u
}

resolve_inputs() {
  local names pkg ver kpkg
  names=$( (grep -v '^#' "$here/vm/packages-$variant.txt"; lib_packages "$rdp_bin" "$pattern_bin") |
           awk 'NF' | sort -u)
  kpkg=$(apt-cache depends "$kernel_meta" | awk '/Depends: linux-image-/ {print $2; exit}')
  [[ -n $kpkg ]] || { echo "cannot resolve $kernel_meta (apt-get update?)"; false; }
  # One apt-cache call: each call loads the whole package cache.
  # shellcheck disable=SC2086
  apt-cache policy $names "$kpkg" |
    awk '/^[^ ].*:$/ {pkg = substr($0, 1, length($0) - 1)} /^  Candidate:/ {print pkg, $2}' \
    > "$work/candidates"
  for pkg in $names $kpkg; do
    ver=$(awk -v p="$pkg" '$1 == p {print $2; exit}' "$work/candidates")
    [[ -n $ver && $ver != "(none)" ]] || { echo "package $pkg has no candidate version"; false; }
    if [[ $pkg == "$kpkg" ]]; then echo "$pkg=$ver" > "$work/kernel"; else echo "$pkg=$ver"; fi
  done > "$work/packages"
  {
    echo "variant $variant"; echo "suite $suite"; echo "epoch $SOURCE_DATE_EPOCH"
    printf 'mirror %s\n' "${mirrors[@]}"
    cat "$work/packages" "$work/kernel"
    # Absolute paths, then made repo-relative: the hash must not depend on how it was invoked.
    sha256sum "$here/build-vm-image.sh" "$here"/vm/* | awk '{print "file", $1, $2}' | sed "s#$repo/##"
    echo "rdp $(sha256sum < "$rdp_bin" | cut -c1-64)"
    echo "testpattern $(sha256sum < "$pattern_bin" | cut -c1-64)"
  } > "$work/inputs"
  sha256sum < "$work/inputs" | cut -c1-16 > "$work/hash"
}

bootstrap_rootfs() {
  local include
  include=$(paste -sd, "$work/packages")
  mmdebstrap --mode=root --variant=minbase --include="$include" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    "$suite" "$work/root" "${mirrors[@]}"
}

install_appvirt() {
  local r=$work/root
  install -D -m 0755 "$rdp_bin" "$r/usr/lib/appvirt/appvirt-rdp"
  install -D -m 0755 "$pattern_bin" "$r/usr/local/bin/appvirt-testpattern"
  install -D -m 0755 "$here/vm/guest-agent" "$r/usr/lib/appvirt/guest/agent"
  install -D -m 0644 "$here/vm/inittab" "$r/etc/inittab"
  install -D -m 0755 "$here/vm/power-button" "$r/etc/acpi/PWRF/00000080"
  chroot "$r" useradd --system --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin appvirt-rdp
  # Nothing host- or build-specific stays in the image.
  rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/log/* "$r"/tmp/* "$r"/etc/ssh/ssh_host_*
  : > "$r/etc/machine-id"
  echo appvirt-guest > "$r/etc/hostname"
  find "$r" -xdev -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

fetch_kernel() {
  local k=$work/kernel-deb
  mkdir -p "$k" && (cd "$k" && apt-get download "$(cat "$work/kernel")")
  dpkg-deb -x "$k"/linux-image-*.deb "$k/x"
  cp "$k"/x/boot/vmlinuz-* "$work/img/vmlinuz"
}

build_initramfs() {
  local i=$work/initramfs m kver
  kver=$(ls "$work/kernel-deb/x/lib/modules")
  mkdir -p "$i"/{bin,dev,proc,sys,modules,newroot}
  cp "$work/root/bin/busybox" "$i/bin/busybox"
  install -m 0755 "$here/vm/initramfs-init" "$i/init"
  grep -v '^#' "$here/vm/modules.order" > "$i/modules.order"
  local loaded=" " dep f
  for m in $(cat "$i/modules.order"); do
    f=$(find "$work/kernel-deb/x/lib/modules/$kver" -name "$m.ko" | head -n1)
    [[ -n $f ]] || { echo "module $m.ko not in $kver"; false; }
    # insmod resolves nothing: every dependency must come earlier in modules.order.
    for dep in $(grep -a -o 'depends=[a-z0-9_,-]*' "$f" | head -n1 | cut -d= -f2 | tr , ' '); do
      [[ $loaded == *" $dep "* ]] || { echo "modules.order: $m needs $dep first"; false; }
    done
    loaded+="$m "
    cp "$f" "$i/modules/"
  done
  find "$i" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  (cd "$i" && find . | LC_ALL=C sort | cpio --quiet -o -H newc --reproducible -R 0:0 | gzip -9n) \
    > "$work/img/initrd.img"
}

make_disk() {
  local mib
  # Rounded up to 64 MiB, so small differences in how the host file system counts the
  # directory tree do not change the disk size.
  mib=$(( ($(du -sm "$work/root" | cut -f1) * 13 / 10 + 128 + 63) / 64 * 64 ))
  mke2fs -q -t ext4 -L appvirt-root -U 5d7f3e2a-6b1c-4c8e-9a40-0a0b0c0d0e0f \
    -E "root_owner=0:0,hash_seed=3c1a9e62-7f04-4b2d-8e55-6a7b8c9d0e1f" -m 0 \
    -d "$work/root" "$work/rootfs.raw" "${mib}M"
  # mke2fs -d copies each file's ctime (the time of this build: no tool can set it) and atime
  # (directories read by the steps above get a fresh one): set both to SOURCE_DATE_EPOCH in
  # every inode, so the same inputs give the same disk bytes.
  if (cd "$work/root" && find . -xdev -printf '%P\n' | grep -q '["\\]'); then
    echo "a path in the root fs holds a quote or backslash: cannot script debugfs"; false
  fi
  { echo "/"; cd "$work/root" && find . -xdev -mindepth 1 -printf '/%P\n'; } |
    awk -v t="@$SOURCE_DATE_EPOCH" '{print "sif \"" $0 "\" ctime " t; print "sif \"" $0 "\" atime " t}' \
    > "$work/times.debugfs"
  debugfs -w -f "$work/times.debugfs" "$work/rootfs.raw" > /dev/null
  qemu-img convert -f raw -O qcow2 "$work/rootfs.raw" "$work/img/rootfs.qcow2"
  rm -f "$work/rootfs.raw"
}

verify_boot() {  # kernel + initramfs reach /init under TCG (the accelerator probe's path)
  local log=$work/verify.console
  [[ $verify == 1 ]] || { echo "skipped (--no-verify)"; return 0; }
  timeout 120 qemu-system-x86_64 -machine q35 -accel tcg -m 256 -nodefaults -no-user-config \
    -display none -serial "file:$log" -no-reboot -kernel "$work/img/vmlinuz" \
    -initrd "$work/img/initrd.img" -append "console=ttyS0 quiet no_timer_check appvirt.probe=1 panic=-1" || true
  grep -q APPVIRT-PROBE-OK "$log" || { cat "$log"; echo "guest did not reach the initramfs"; false; }
}

write_manifest() {
  local f=$work/img/manifest.json
  {
    echo "{"
    echo "  \"variant\": \"$variant\", \"hash\": \"$hash\", \"built_at\": \"$(date -u +%FT%TZ)\","
    echo "  \"kernel\": \"$(cat "$work/kernel")\", \"disk\": \"rootfs.qcow2\","
    echo "  \"cmdline\": \"console=ttyS0 quiet no_timer_check panic=-1\","
    echo "  \"packages\": [$(sed 's/.*/"&"/' "$work/packages" | paste -sd,)]"
    echo "}"
  } > "$f"
  cp "$work/inputs" "$work/img/inputs.txt"
  chmod 0444 "$work/img"/*
}

main() {
  mkdir -p "$out/$variant"
  work=$(mktemp -d "$out/$variant/.build.XXXXXX")
  mkdir -p "$work/log" "$work/img"
  run_step check-tools check_tools
  run_step resolve-inputs resolve_inputs
  hash=$(cat "$work/hash")
  local dest=$out/$variant/$hash
  if [[ -f $dest/manifest.json ]]; then
    echo "build-vm-image: $variant image $hash is up to date" >&9
    ln -sfn "$hash" "$out/$variant/current"
    echo "$dest"
    return 0
  fi
  run_step bootstrap-rootfs bootstrap_rootfs
  run_step install-appvirt install_appvirt
  run_step fetch-kernel fetch_kernel
  run_step build-initramfs build_initramfs
  run_step make-disk make_disk
  run_step verify-boot verify_boot
  write_manifest
  rm -rf "$dest" && mv "$work/img" "$dest"
  ln -sfn "$hash" "$out/$variant/current.tmp" && mv -T "$out/$variant/current.tmp" "$out/$variant/current"
  echo "build-vm-image: built $variant image $hash in $(($(date +%s) - t_start)) s" >&9
  echo "$dest"
}

main

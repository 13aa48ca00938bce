#!/usr/bin/env bash
# All-in-one start on this machine: installs dependencies, builds, creates the demo user, starts
# appvirt-hostd with a demo session and prints how to connect. Runs until Ctrl-C / SIGTERM, then
# ends the demo sessions and leaves nothing behind. Run as root on Debian 12.
#
# Until the broker and gateway land (issues 3 and 4), the session's RDP endpoint is reached directly
# on a host-internal loopback port with the session secret as the X.224 cookie.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state_dir=${APPVIRT_STATE_DIR:-/var/lib/appvirt-demo}
demo_user=${APPVIRT_DEMO_USER:-demo}
demo_password=${APPVIRT_DEMO_PASSWORD:-demo-password}
app=${APPVIRT_DEMO_APP:-/usr/bin/xterm}

bash "$root/deploy/install-deps.sh"
bash "$root/deploy/build.sh"
bin=$root/build/session-host

if ! getent passwd "$demo_user" >/dev/null; then
  useradd --create-home --shell /bin/bash "$demo_user"
fi
echo "$demo_user:$demo_password" | chpasswd

mkdir -p "$state_dir"
chmod 0700 "$state_dir"
cat > "$state_dir/hostd.toml" <<TOML
state_dir = "$state_dir/hostd"
runtime_dir = "/run/appvirt-demo"
control_socket = "/run/appvirt-demo/hostd.sock"

[rdp]
listen_tcp = true

[paths]
sandbox = "$bin/sandbox/appvirt-sandbox"
rdp = "$bin/rdp/appvirt-rdp"
TOML

"$bin/hostd/appvirt-hostd" --config "$state_dir/hostd.toml" --terminate-sessions-on-exit \
  2>"$state_dir/hostd.log" &
hostd_pid=$!
stop() { kill -TERM "$hostd_pid" 2>/dev/null; wait "$hostd_pid" 2>/dev/null || true; }
trap 'stop; exit 0' INT TERM
trap stop EXIT

ctl=("$bin/hostd/appvirt-hostctl" --socket /run/appvirt-demo/hostd.sock)
for _ in $(seq 100); do "${ctl[@]}" health >/dev/null 2>&1 && break; sleep 0.1; done
reply=$("${ctl[@]}" launch --user "$demo_user" --app demo-xterm -- "$app")
read -r secret tcp < <(python3 -c 'import json, sys
d = json.load(sys.stdin); print(d.get("secret", ""), (d.get("endpoint") or {}).get("tcp") or "")' \
  <<<"$reply" 2>/dev/null || true)
[[ -n $secret && -n $tcp ]] || { echo "launch failed: $reply" >&2; exit 1; }

cat <<MSG

appvirt is running: user '$demo_user' (password '$demo_password') has '$app' published in a
sandboxed container. Connect from this machine with:

  xfreerdp /v:$tcp /load-balance-info:"Cookie: msts=$secret" /cert:ignore

Logs: $state_dir/hostd.log   Sessions: ${ctl[*]} list
Press Ctrl-C to stop; the demo session is logged off and nothing is left behind.
MSG
wait "$hostd_pid"

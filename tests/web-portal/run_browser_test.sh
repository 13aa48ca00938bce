#!/usr/bin/env bash
# Runs the portal's browser test: installs the pinned playwright-core (npm ci, into the build
# tree, only when the lock file changed) and runs portal_e2e.test.mjs with node's test runner.
# Missing node, npm or chromium is a failure, never a skip.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)/web-portal/tests
npm_dir=${PORTAL_NPM_DIR:?}

for tool in node npm chromium; do
  command -v "$tool" >/dev/null || { echo "portal_browser_e2e: $tool is not installed (deploy/install-deps.sh)" >&2; exit 1; }
done
[[ $EUID -eq 0 ]] || { echo "portal_browser_e2e: needs root (users, PAM, hostd)" >&2; exit 1; }

mkdir -p "$npm_dir"
stamp="$npm_dir/.lock-sha256"
want=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" || ! -d $npm_dir/node_modules/playwright-core ]]; then
  cp "$src/package.json" "$src/package-lock.json" "$npm_dir/"
  (cd "$npm_dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
fi

export PORTAL_NODE_MODULES="$npm_dir/node_modules"
export CHROMIUM=${CHROMIUM:-$(command -v chromium)}
mkdir -p "${PORTAL_ARTIFACTS:?}"
exec node --test-reporter=spec "$here/portal_e2e.test.mjs"

#!/usr/bin/env bash
# Builds qbo-sim, starts it on a free port (no throttling), runs both peer-client scripts against
# it and stops it. Installs the clients on first use into /tmp (override with QBO_PEER_VENV /
# QBO_PEER_NODE). Exit status 0 when every check of both scripts passed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
venv=${QBO_PEER_VENV:-/tmp/qbo-peer-venv}
nodedir=${QBO_PEER_NODE:-/tmp/qbo-peer-node}

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import quickbooks, intuitlib' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q python-quickbooks intuit-oauth
fi
if [ ! -d "$nodedir/node_modules/node-quickbooks" ]; then
    mkdir -p "$nodedir"
    npm --prefix "$nodedir" install --silent node-quickbooks
fi

cargo build -q -p qbo-sim --manifest-path "$root/Cargo.toml"
out=$(mktemp)
"${CARGO_TARGET_DIR:-$root/target}/debug/qbo-sim" --port 0 >"$out" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 100); do
    grep -q '^api_base_url=' "$out" && break
    sleep 0.1
done
base=$(sed -n 's/^api_base_url=//p' "$out")
echo "qbo-sim at $base"

status=0
echo "== python-quickbooks $("$venv/bin/pip" show python-quickbooks | sed -n 's/^Version: //p'), intuit-oauth $("$venv/bin/pip" show intuit-oauth | sed -n 's/^Version: //p')"
"$venv/bin/python" -W ignore::DeprecationWarning "$here/python_quickbooks_check.py" --base-url "$base" || status=1
echo "== node-quickbooks $(node -p "require('$nodedir/node_modules/node-quickbooks/package.json').version")"
NODE_PATH="$nodedir/node_modules" node "$here/node_quickbooks_check.js" --base-url "$base" || status=1
exit "$status"

#!/usr/bin/env bash
# Builds qbo-sim, starts it on a free port (no throttling), runs the peer-client scripts against
# it and stops it: python-quickbooks + intuit-oauth, node-quickbooks, Singer's tap-quickbooks and
# Airbyte's source-quickbooks. Installs the clients on first use into /tmp (override with
# QBO_PEER_VENV / QBO_PEER_NODE / QBO_PEER_TAP_VENV / QBO_PEER_AIRBYTE_VENV); the connectors get a
# virtualenv each (their dependencies conflict). Pass client names to run only some:
#   run.sh [python-quickbooks] [node-quickbooks] [tap-quickbooks] [source-quickbooks]
# Exit status 0 when every check of every script run passed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
venv=${QBO_PEER_VENV:-/tmp/qbo-peer-venv}
nodedir=${QBO_PEER_NODE:-/tmp/qbo-peer-node}
tapvenv=${QBO_PEER_TAP_VENV:-/tmp/qbo-peer-tap-venv}
abvenv=${QBO_PEER_AIRBYTE_VENV:-/tmp/qbo-peer-airbyte-venv}
export PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

clients=("$@")
[ ${#clients[@]} -gt 0 ] || clients=(python-quickbooks node-quickbooks tap-quickbooks source-quickbooks)
wants() { [[ " ${clients[*]} " == *" $1 "* ]]; }

# venv_with DIR IMPORT REQUIREMENT...: a virtualenv in DIR where `import IMPORT` works.
venv_with() {
    local dir=$1 module=$2
    shift 2
    if [ ! -x "$dir/bin/python" ] || ! "$dir/bin/python" -c "import $module" 2>/dev/null; then
        python3 -m venv "$dir"
        "$dir/bin/pip" install -q "$@"
    fi
}

wants python-quickbooks && venv_with "$venv" "quickbooks, intuitlib" python-quickbooks intuit-oauth
wants tap-quickbooks && venv_with "$tapvenv" tap_quickbooks tap-quickbooks==2.5.0
wants source-quickbooks && venv_with "$abvenv" source_quickbooks airbyte-source-quickbooks==4.0.4
if wants node-quickbooks && [ ! -d "$nodedir/node_modules/node-quickbooks" ]; then
    mkdir -p "$nodedir"
    npm --prefix "$nodedir" install --silent node-quickbooks
fi

cargo build -q -p qbo-sim --manifest-path "$root/Cargo.toml"
out=$(mktemp)
"${CARGO_TARGET_DIR:-$root/target}/debug/qbo-sim" --port 0 --no-limits >"$out" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 100); do
    grep -q '^api_base_url=' "$out" && break
    sleep 0.1
done
base=$(sed -n 's/^api_base_url=//p' "$out")
echo "qbo-sim at $base"

version() { "$1/bin/pip" show "$2" | sed -n 's/^Version: //p'; }
status=0
if wants python-quickbooks; then
    echo "== python-quickbooks $(version "$venv" python-quickbooks), intuit-oauth $(version "$venv" intuit-oauth)"
    "$venv/bin/python" -W ignore::DeprecationWarning "$here/python_quickbooks_check.py" --base-url "$base" || status=1
fi
if wants node-quickbooks; then
    echo "== node-quickbooks $(node -p "require('$nodedir/node_modules/node-quickbooks/package.json').version")"
    NODE_PATH="$nodedir/node_modules" node "$here/node_quickbooks_check.js" --base-url "$base" || status=1
fi
if wants tap-quickbooks; then
    echo "== tap-quickbooks $(version "$tapvenv" tap-quickbooks) (Singer)"
    "$tapvenv/bin/python" "$here/singer_tap_quickbooks_check.py" --base-url "$base" || status=1
fi
if wants source-quickbooks; then
    echo "== source-quickbooks $(version "$abvenv" airbyte-source-quickbooks) (Airbyte, airbyte-cdk $(version "$abvenv" airbyte-cdk))"
    "$abvenv/bin/python" "$here/airbyte_source_quickbooks_check.py" --base-url "$base" || status=1
fi
exit "$status"

#!/usr/bin/env bash
# Quick start: installs what is missing, builds, starts three demo upstreams
# on 127.0.0.1:9001-9003 and the gateway on :8080 with conf/gateway.yaml.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/deps.sh run
[ -d build ] || meson setup build --buildtype=release >/dev/null
ninja -C build gateway >/dev/null

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

python3 tests/stubs/stub_upstream.py --port 9001 --name catalog-1 & pids+=($!)
python3 tests/stubs/stub_upstream.py --port 9002 --name catalog-2 & pids+=($!)
python3 tests/stubs/stub_upstream.py --port 9003 --name checkout-1 & pids+=($!)

echo "gateway on http://localhost:8080  (try: curl localhost:8080/api/catalog/items)"
./build/gateway -c conf/gateway.yaml &
gw=$!
pids+=($gw)
wait "$gw"

#!/usr/bin/env bash
# Installs the Debian 12 packages the gateway needs to build, run and test.
# Usage: tests/deps.sh run|test     (as root, or through sudo)
set -euo pipefail

run_pkgs="gcc meson ninja-build pkg-config libevent-dev libssl-dev libyaml-dev libhiredis-dev check python3 curl"
# prometheus ships promtool (test_metrics.py checks /metrics with it); chromium
# renders the admin status page headless (--no-sandbox as root). With
# --no-install-recommends chromium still runs headless: its hard dependencies
# pull libfontconfig1 -> fontconfig-config -> fonts-dejavu-core, enough to
# render text; the recommended fonts-liberation, GL drivers, udev and upower
# are not needed for --headless. The tests only run promtool, never the
# prometheus server (containers' policy-rc.d keeps apt from starting it).
# clang-14 and libclang-rt-14-dev (libFuzzer and the sanitizer runtimes)
# build the fuzz harnesses (tests/fuzz/run.sh).
# slowhttptest is the slowloris, slow-body and slow-read attacker of
# tests/integration/test_slow_clients.py.
test_pkgs="$run_pkgs redis-server prometheus chromium clang-14 libclang-rt-14-dev slowhttptest"

case "${1:-run}" in
run) pkgs=$run_pkgs ;;
test) pkgs=$test_pkgs ;;
*) echo "usage: $0 run|test" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null

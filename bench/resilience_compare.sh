#!/usr/bin/env bash
# Resilience side by side: the same faults against the gateway, nginx 1.22
# and HAProxy 2.6, each in front of three upstream_stubs, 1000 req/s open
# loop, the fault from 5 s to 20 s of a 25 s run, two runs per cell with the
# proxies interleaved. Configs: bench/resilience/{gateway.yaml,nginx.conf,
# haproxy.cfg}; the driver: bench/resilience/compare.py (see bench/README.md,
# "resilience_compare").
#
#   bench/resilience_compare.sh [--only FAULTS] [--runs N] [--proxies LIST]
#                               [--out DIR] [--no-hedge] [--balance rr|least] ...
#   bench/resilience_compare.sh --report DIR     # the tables again from a kept DIR
#
#   --only FAULTS   kill,blackhole,slow,503,503-post,all-503 (default: all six)
#   --runs N        runs per cell (2)
#   --proxies LIST  gateway,nginx,haproxy (default: all three)
#   --out DIR       keep every config, log, loadgen log, stub timeline, per-run
#                   timeline.csv, raw.json and report.md in DIR
#   --no-hedge      the gateway without `retry.hedge` (also dropped, with a
#                   warning, when `gateway -t` refuses the key)
#   --balance B     least (default: gateway least_request, nginx least_conn,
#                   HAProxy leastconn) or rr (round robin everywhere)
#   --rate R --duration S --fault-at S --recover-at S --connections N
#   --max-connections N --client-timeout S --post-body B
#   --gateway BIN   (default: ninja -C build-bench gateway, then build-bench/gateway)
#
# The full matrix (6 faults x 3 proxies x 2 runs) takes about 16 minutes; the
# estimate is printed first. Binds only 127.0.0.1, starts every process in
# its own process group and stops them all (by PID) on exit or interrupt.
# Never writes to bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

gateway="" args=()
while [ $# -gt 0 ]; do
	case $1 in
	--gateway) gateway=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) args+=("$1"); shift ;;
	esac
done

[ -f build-bench/build.ninja ] || meson setup build-bench -Dbuildtype=release >/dev/null
targets="bench/loadgen bench/upstream_stub"
[ -z "$gateway" ] && targets="gateway $targets"
# shellcheck disable=SC2086
if ! log=$(ninja -C build-bench $targets 2>&1); then
	echo "$log" | tail -n 20 >&2
	echo "resilience_compare: build failed (above); --gateway BIN uses another gateway binary" >&2
	exit 1
fi
[ -n "$gateway" ] || gateway=$root/build-bench/gateway
gateway=$(realpath "$gateway")
exec python3 "$root/bench/resilience/compare.py" --gateway "$gateway" \
	--stub "$root/build-bench/bench/upstream_stub" --loadgen "$root/build-bench/bench/loadgen" \
	"${args[@]}"

#!/usr/bin/env bash
# Instructions the gateway executes per proxied request, for two gateway
# binaries (before and after a change), on the same configs. Counting
# instructions (cachegrind, --cache-sim=no) instead of timing makes the
# comparison immune to what else the machine runs.
#
#   bench/instructions.sh BEFORE_BIN AFTER_BIN [--passes N]
#
# Method (as bench/cost_of_resilience.sh): each binary and config is run
# under valgrind with bench/loadgen at 100 and then 400 req/s for 5 s (10
# connections) against bench/upstream_stub; (Ir(400) - Ir(100)) / (extra
# 2xx answers) is the marginal cost of one request, start-up, shutdown and
# timers cancelled out. Configs: "bare" (one route, one server) and "full"
# (retry, circuit breaker, fallback, outlier detection, health checks).
# Prints one line per binary, config and pass, then the after/before ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ $# -ge 2 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
before=$(realpath "$1") after=$(realpath "$2")
shift 2
passes=2
[ "${1:-}" = "--passes" ] && passes=$2
command -v valgrind >/dev/null || { echo "instructions: needs valgrind" >&2; exit 1; }
[ -f build-bench/build.ninja ] || meson setup build-bench -Dbuildtype=release >/dev/null
ninja -C build-bench bench/upstream_stub bench/loadgen >/dev/null
stub=$root/build-bench/bench/upstream_stub loadgen=$root/build-bench/bench/loadgen
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$stub" >"$work/stub.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do grep -q listening "$work/stub.out" 2>/dev/null && break; sleep 0.01; done
sport=$(awk -F: '/listening/ {print $2; exit}' "$work/stub.out")

# Under valgrind every event loop runs ~50x slower: a gateway that measures
# its loop lag would see overload where there is none. Binaries that know
# the shedding section get max_loop_lag raised out of the way.
conf() { # name port [shedding]
	cat <<YAML
listen: ["127.0.0.1:$2"]
workers: 1
access_log: "off"
drain_timeout: 1s
YAML
	[ "${3:-}" = shedding ] && printf 'shedding: { max_loop_lag: 1m }\n'
	cat <<YAML
upstreams:
  bench:
    servers: ["127.0.0.1:$sport"]
    keepalive: 512
    max_connections: 4096
YAML
	if [ "$1" = full ]; then
		cat <<YAML
    health_check: {path: /healthz, interval: 1s, timeout: 500ms}
    outlier_detection: {}
routes:
  - name: all
    upstream: bench
    retry: {attempts: 3, per_try_timeout: 1s}
    circuit_breaker: {}
    fallback: {status: 503, content_type: application/json, body: '{"message":"try again soon"}'}
YAML
	else
		printf 'routes:\n  - name: all\n    upstream: bench\n'
	fi
}

ir() { # bin config rate -> "Ir answered"
	local p vp f
	p=$(free_port) f=$work/run.$RANDOM
	conf "$2" "$p" shedding >"$f.yaml"
	"$1" -t -c "$f.yaml" >/dev/null 2>&1 || conf "$2" "$p" >"$f.yaml"
	valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$f.cg" "$1" -c "$f.yaml" 2>"$f.vg" &
	vp=$!
	pids+=($vp)
	for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$p/warm" && break; sleep 0.1; done
	"$loadgen" --url "http://127.0.0.1:$p/small" --rate "$3" --connections 10 --duration 5 --json "$f.json" >/dev/null
	kill -TERM "$vp"
	wait "$vp" || true
	echo "$(awk '/^summary:/ {print $2}' "$f.cg") $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total"]["answered"]["2xx"])' "$f.json")"
}

echo "before: $before"
echo "after:  $after"
: >"$work/out.txt"
for pass in $(seq 1 "$passes"); do
	for config in bare full; do
		for which in before after; do
			bin=$before
			[ "$which" = after ] && bin=$after
			read -r i1 n1 <<<"$(ir "$bin" "$config" 100)"
			read -r i4 n4 <<<"$(ir "$bin" "$config" 400)"
			per=$(((i4 - i1) / (n4 - n1)))
			echo "pass $pass $config $which: $per instructions per request ($n1 / $n4 answers)"
			echo "$config $which $per" >>"$work/out.txt"
		done
	done
done
python3 - "$work/out.txt" <<'PY'
import collections, statistics, sys
v = collections.defaultdict(list)
for line in open(sys.argv[1]):
    c, w, n = line.split()
    v[(c, w)].append(int(n))
for c in ("bare", "full"):
    b, a = statistics.median(v[(c, "before")]), statistics.median(v[(c, "after")])
    print("%s: before %d, after %d: after/before %.3f (%+.1f%%)" % (c, b, a, a / b, 100 * (a / b - 1)))
PY

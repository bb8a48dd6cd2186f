#!/usr/bin/env bash
# What the resilience features cost when nothing fails: two gateways (the
# same binary, 1 worker each, access log off) in front of the same upstream
# stub, measured interleaved (A B A B ...) with wrk on the small body.
#
#   bench/cost_of_resilience.sh [--gateway BIN] [--rounds R] [--duration D]
#                               [--connections C] [--no-instructions] [--keep DIR]
#
#   --gateway BIN    the gateway binary (default: ninja -C build-bench gateway,
#                    then build-bench/gateway)
#   --rounds R       interleaved rounds (5)
#   --duration D     seconds per wrk run (5)
#   --connections C  wrk connections (50)
#   --no-instructions  skip the instruction count (below)
#   --keep DIR       keep configs, logs and raw results in DIR
#
#   A "bare":  one route, one upstream of one server, nothing else (the retry
#              budget's request count is on for every route, by design)
#   B "full":  the same route with retry {attempts: 3, per_try_timeout: 1s},
#              circuit_breaker {} (defaults), fallback, and the upstream with
#              outlier_detection {} (defaults) and health_check {interval: 1s}
#
# Per run: wrk -t1 -cC -dDs --latency req/s, p50, p99; the gateway's CPU time
# per request (utime+stime from /proc over the run); and the background load:
# the CPU the rest of the machine used during the run (from /proc/stat, minus
# the gateway, the stub and wrk), in cores. Reports medians and B/A ratios.
#
# On a shared 2-core machine two identical gateways differ by up to +-25% in
# req/s from one 5 s run to the next, so a 5% cost cannot be seen in req/s
# alone. When valgrind is installed, the script therefore also counts the
# instructions the gateway executes per request (cachegrind, --cache-sim=no),
# which the rest of the machine does not disturb: each config is run under
# valgrind with loadgen at 100 and then 400 req/s for 5 s each (10
# connections), and (Ir(400) - Ir(100)) / (2000 - 500) is the marginal cost of
# one request, with start-up, shutdown and timers (health checks) cancelled
# out. Twice per config, A B A B.
# Loopback only; every process it starts is stopped on exit (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

gateway="" rounds=5 duration=5 conns=50 keep="" instr=1
while [ $# -gt 0 ]; do
	case $1 in
	--gateway) gateway=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--duration) duration=${2%s}; shift 2 ;;
	--connections) conns=$2; shift 2 ;;
	--keep) keep=$2; shift 2 ;;
	--no-instructions) instr=0; shift ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "cost_of_resilience: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done
for v in "$rounds" "$duration" "$conns"; do
	[[ $v =~ ^[0-9]+$ ]] && [ "$v" -ge 1 ] || { echo "cost_of_resilience: not a positive number: $v" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "cost_of_resilience: needs wrk (apt-get install wrk)" >&2; exit 1; }

if [ -z "$gateway" ]; then
	[ -f build-bench/build.ninja ] || meson setup build-bench -Dbuildtype=release >/dev/null
	if ! log=$(ninja -C build-bench gateway bench/upstream_stub bench/loadgen 2>&1); then
		echo "$log" | tail -n 20 >&2
		echo "cost_of_resilience: build failed (above); pass --gateway BIN to use another binary" >&2
		exit 1
	fi
	gateway=$root/build-bench/gateway
else
	ninja -C build-bench bench/upstream_stub bench/loadgen >/dev/null
fi
[ -x "$gateway" ] || { echo "cost_of_resilience: $gateway is not executable" >&2; exit 2; }
gateway=$(realpath "$gateway")
stub=$root/build-bench/bench/upstream_stub loadgen=$root/build-bench/bench/loadgen
if [ "$instr" = 1 ] && ! command -v valgrind >/dev/null; then
	echo "cost_of_resilience: no valgrind: instruction counts skipped" >&2
	instr=0
fi

if [ -n "$keep" ]; then mkdir -p "$keep"; work=$(realpath "$keep"); else work=$(mktemp -d); fi
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

"$stub" >"$work/stub.out" 2>&1 &
spid=$!; pids+=($spid)
for _ in $(seq 1 300); do grep -q listening "$work/stub.out" 2>/dev/null && break; sleep 0.01; done
sport=$(awk -F: '/listening/ {print $2; exit}' "$work/stub.out")
[ -n "$sport" ] || { echo "cost_of_resilience: the stub did not start" >&2; exit 1; }

common() { # port
	cat <<EOF
listen: ["127.0.0.1:$1"]
workers: 1
access_log: "off"
drain_timeout: 1s
upstreams:
  bench:
    servers: ["127.0.0.1:$sport"]
    keepalive: 512
    max_connections: 4096
EOF
}
conf_A() { common "$1"; cat <<EOF
routes:
  - name: all
    upstream: bench
EOF
}
conf_B() { common "$1"; cat <<EOF
    health_check: {path: /healthz, interval: 1s, timeout: 500ms}
    outlier_detection: {}
routes:
  - name: all
    upstream: bench
    retry: {attempts: 3, per_try_timeout: 1s}
    circuit_breaker: {}
    fallback: {status: 503, content_type: application/json, body: '{"message":"try again soon"}'}
EOF
}
aport=$(free_port) bport=$(free_port)
conf_A "$aport" >"$work/A.yaml"
conf_B "$bport" >"$work/B.yaml"
declare -A gpid port
port[A]=$aport port[B]=$bport
for c in A B; do
	if ! out=$("$gateway" -t -c "$work/$c.yaml" 2>&1); then echo "$out" >&2; exit 1; fi
	"$gateway" -c "$work/$c.yaml" 2>"$work/$c.log" &
	gpid[$c]=$!; pids+=($!)
done
for c in A B; do
	for _ in $(seq 1 100); do
		curl -sf -o /dev/null "http://127.0.0.1:${port[$c]}/small" && break
		sleep 0.05
	done
	curl -sf -o /dev/null "http://127.0.0.1:${port[$c]}/small" ||
		{ cat "$work/$c.log" >&2; echo "cost_of_resilience: gateway $c did not start" >&2; exit 1; }
	wrk -t1 -c"$conns" -d1s "http://127.0.0.1:${port[$c]}/small" >/dev/null # warm-up
done

echo "gateway: $gateway"
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk -t1 -c$conns -d${duration}s --latency http://127.0.0.1:PORT/small, $rounds rounds, order A B"
tck=$(getconf CLK_TCK)
: >"$work/raw.txt"
for r in $(seq 1 "$rounds"); do
	for c in A B; do
		g0=$(cpu_ticks "${gpid[$c]}") s0=$(cpu_ticks "$spid") b0=$(busy_ticks)
		t0=$(date +%s.%N)
		/usr/bin/time -f '%U %S' -o "$work/wrk.time" \
			wrk -t1 -c"$conns" -d"${duration}s" --latency "http://127.0.0.1:${port[$c]}/small" >"$work/wrk.$c.$r" 2>&1
		t1=$(date +%s.%N)
		g1=$(cpu_ticks "${gpid[$c]}") s1=$(cpu_ticks "$spid") b1=$(busy_ticks)
		echo "$r $c $t0 $t1 $((g1 - g0)) $((s1 - s0)) $((b1 - b0)) $(tail -n 1 "$work/wrk.time") $(cut -d' ' -f1 /proc/loadavg)" >>"$work/raw.txt"
	done
done
# both gateways must still be alive, or the numbers above mean nothing
for c in A B; do kill -0 "${gpid[$c]}" 2>/dev/null || { echo "cost_of_resilience: gateway $c died" >&2; cat "$work/$c.log" >&2; exit 1; }; done
for c in A B; do kill -TERM "${gpid[$c]}"; wait "${gpid[$c]}" || true; done

# instructions per request: Ir at 400 req/s minus Ir at 100 req/s, same duration
ir_run() { # config rate pass -> appends "Ir 2xx" to ir.txt (no subshell: pids stays ours)
	local p vp f=$work/ir.$1.$2.$3
	p=$(free_port)
	"conf_$1" "$p" >"$f.yaml"
	valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$f.cg" \
		"$gateway" -c "$f.yaml" 2>"$f.vg" &
	vp=$!; pids+=($vp)
	for _ in $(seq 1 100); do
		curl -sf -o /dev/null "http://127.0.0.1:$p/warm" && break
		sleep 0.1
	done
	"$loadgen" --url "http://127.0.0.1:$p/small" --rate "$2" --connections 10 --duration 5 \
		--json "$f.json" >/dev/null
	kill -TERM "$vp"; wait "$vp" || true
	printf ' %s %s' "$(awk '/^summary:/ {print $2}' "$f.cg")" \
		"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total"]["answered"]["2xx"])' "$f.json")" >>"$work/ir.txt"
}
: >"$work/ir.txt"
if [ "$instr" = 1 ]; then
	for pass in 1 2; do
		for c in A B; do
			printf '%s %s' "$c" "$pass" >>"$work/ir.txt"
			ir_run "$c" 100 "$pass"
			ir_run "$c" 400 "$pass"
			echo >>"$work/ir.txt"
		done
	done
fi

python3 - "$work" "$tck" "$rounds" <<'PY'
import os, re, statistics, sys
work, tck, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)$", v)
    x = float(m.group(1))
    return x / 1000 if m.group(2) == "us" else x * 1000 if m.group(2) == "s" else x

res = {"A": [], "B": []}
for line in open(os.path.join(work, "raw.txt")):
    r, c, t0, t1, g, s, b, wu, ws, la = line.split()
    text = open(os.path.join(work, "wrk.%s.%s" % (c, r))).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    total = int(re.search(r"(\d+) requests in", text).group(1))
    p50 = ms(re.search(r"\n\s+50%\s+(\S+)", text).group(1))
    p99 = ms(re.search(r"\n\s+99%\s+(\S+)", text).group(1))
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: (.*)", text)
    wall = float(t1) - float(t0)
    ours = (int(g) + int(s)) / tck + float(wu) + float(ws)
    res[c].append(dict(round=int(r), rps=rps, p50=p50, p99=p99, cpu_us=int(g) / tck * 1e6 / total,
                       others=max(0.0, int(b) / tck - ours) / wall, load=float(la),
                       errs=int(errs.group(1)) if errs else 0, sock=sock.group(1) if sock else ""))

print()
print("| round | A req/s | B req/s | B/A | A p99 ms | B p99 ms | A CPU us/req | B CPU us/req | background load A / B (cores) |")
print("|---|---|---|---|---|---|---|---|---|")
for a, b in zip(res["A"], res["B"]):
    print("| %d | %.0f | %.0f | %.3f | %.2f | %.2f | %.1f | %.1f | %.2f / %.2f |" % (
        a["round"], a["rps"], b["rps"], b["rps"] / a["rps"], a["p99"], b["p99"], a["cpu_us"],
        b["cpu_us"], a["others"], b["others"]))
med = lambda c, k: statistics.median(x[k] for x in res[c])
ratios = [b["rps"] / a["rps"] for a, b in zip(res["A"], res["B"])]
print()
print("| config | req/s (median of %d) | p50 ms | p99 ms | gateway CPU us/req | background load (cores) |" % rounds)
print("|---|---|---|---|---|---|")
for c, name in (("A", "A bare route"), ("B", "B retry + breaker + fallback + outlier + health check")):
    print("| %s | %.0f [%.0f-%.0f] | %.3f | %.2f | %.1f | %.2f |" % (
        name, med(c, "rps"), min(x["rps"] for x in res[c]), max(x["rps"] for x in res[c]),
        med(c, "p50"), med(c, "p99"), med(c, "cpu_us"), med(c, "others")))
print()
print("B/A throughput: ratio of medians %.3f (cost %.1f%%); median of per-round ratios %.3f [%.3f-%.3f]; B faster in %d of %d rounds" % (
    med("B", "rps") / med("A", "rps"), 100 * (1 - med("B", "rps") / med("A", "rps")),
    statistics.median(ratios), min(ratios), max(ratios), sum(x > 1 for x in ratios), len(ratios)))
print("B/A gateway CPU per request: %.3f (%+.1f%%)" % (
    med("B", "cpu_us") / med("A", "cpu_us"), 100 * (med("B", "cpu_us") / med("A", "cpu_us") - 1)))
bad = sum(x["errs"] for c in res for x in res[c])
sock = [x["sock"] for c in res for x in res[c] if x["sock"]]
print("non-2xx answers: %d; socket errors: %s" % (bad, "; ".join(sock) or "none"))

ir = {}
for line in open(os.path.join(work, "ir.txt")):
    c, p, ir_lo, n_lo, ir_hi, n_hi = line.split()
    ir.setdefault(c, []).append((int(ir_hi) - int(ir_lo)) / (int(n_hi) - int(n_lo)))
if ir:
    print()
    print("instructions per request (cachegrind; (Ir at 400 req/s - Ir at 100 req/s) / extra requests):")
    for c in ("A", "B"):
        print("  %s: %s" % (c, ", ".join("%.0f" % x for x in ir[c])))
    a, b = statistics.mean(ir["A"]), statistics.mean(ir["B"])
    print("  B/A: %.3f (%+.1f%% instructions per request)" % (b / a, 100 * (b / a - 1)))
PY

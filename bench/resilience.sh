#!/usr/bin/env bash
# Resilience under failure: the gateway (1 worker, access log to a file) in
# front of 3 upstream stubs, an open-loop load (loadgen), and one fault per
# scenario. Loopback only; bounded in time (about 25 s per scenario); every
# process it starts is stopped on exit (by PID).
#
#   bench/resilience.sh [--gateway BIN] [--rate R] [--connections N]
#                       [--duration S] [--fault-at S] [--only a,b,...] [--keep DIR]
#
#   --gateway BIN    the gateway binary (default: ninja -C build-bench gateway,
#                    then build-bench/gateway)
#   --rate R         requests/s of the load (500)
#   --connections N  loadgen keep-alive connections (20)
#   --duration S     seconds of load per scenario (20)
#   --fault-at S     when the fault starts in a, b, b-nohc, c-kill (5)
#   --only LIST      run only these scenarios (default: all, in this order)
#   --keep DIR       keep every log, config and JSON in DIR
#
# Route: retry {attempts: 3, per_try_timeout: 200ms}, timeout 2s, default
# backoff (25-250 ms, full jitter) and budget (ratio 0.2, min_per_second 10).
# Upstream: 3 stubs, round_robin, outlier_detection {consecutive_failures: 3,
# base_ejection_time: 5s, max_ejection_percent: 50}, and (except b-nohc)
# health_check {path: /healthz, interval: 500ms, timeout: 100ms,
# unhealthy_threshold: 2, healthy_threshold: 2}.
#
# Scenarios:
#   a       stub 1 killed (kill -9) at --fault-at
#   b       stub 1 turns 2 s slow at --fault-at (SIGUSR1 to the stub; /healthz slow too)
#   b-nohc  as b, without the health check: outlier detection alone
#   c       every stub answers 503 from the start (SIGUSR2; /healthz stays 200,
#           so only the retry budget and outlier detection act)
#   c-100   as c at 100 req/s, where the budget's floor (10/s) weighs more
#   c-kill  every stub killed (kill -9) at --fault-at
#   c-cb    as c, with circuit_breaker {} (defaults: window 10s, min_requests 20,
#           failure_ratio 0.5, open_duration 30s) and a fallback on the route
#
# Upstream requests are counted by the stubs (SIGHUP prints their counters;
# a stub about to be killed is asked first) and, independently, from the
# access log's `tries` (which also counts tries that never reached a stub:
# connect failures). Health checks are counted apart.
#
# Background load: /proc/loadavg before and after, and the CPU the rest of
# the machine used during the load (all CPU time from /proc/stat minus that
# of the gateway, the stubs and loadgen), in cores.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

gateway="" rate=500 conns=20 duration=20 fault_at=5 only="" keep=""
while [ $# -gt 0 ]; do
	case $1 in
	--gateway) gateway=$2; shift 2 ;;
	--rate) rate=$2; shift 2 ;;
	--connections) conns=$2; shift 2 ;;
	--duration) duration=${2%s}; shift 2 ;;
	--fault-at) fault_at=${2%s}; shift 2 ;;
	--only) only=$2; shift 2 ;;
	--keep) keep=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "resilience: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done
for v in "$rate" "$conns" "$duration" "$fault_at"; do
	[[ $v =~ ^[0-9]+$ ]] || { echo "resilience: not a whole number: $v" >&2; exit 2; }
done
scenarios="a b b-nohc c c-100 c-kill c-cb"
[ -n "$only" ] && scenarios=${only//,/ }
for s in $scenarios; do
	case $s in a|b|b-nohc|c|c-100|c-kill|c-cb) ;; *) echo "resilience: unknown scenario $s" >&2; exit 2 ;; esac
done

bench=$root/build-bench/bench
if [ -z "$gateway" ]; then
	[ -f build-bench/build.ninja ] || meson setup build-bench -Dbuildtype=release >/dev/null
	if ! log=$(ninja -C build-bench gateway bench/loadgen bench/upstream_stub 2>&1); then
		echo "$log" | tail -n 20 >&2
		echo "resilience: build failed (above); pass --gateway BIN to use another binary" >&2
		exit 1
	fi
	gateway=$root/build-bench/gateway
else
	ninja -C build-bench bench/loadgen bench/upstream_stub >/dev/null
fi
[ -x "$gateway" ] || { echo "resilience: $gateway is not executable" >&2; exit 2; }
gateway=$(realpath "$gateway")
stub=$bench/upstream_stub loadgen=$bench/loadgen
command -v curl >/dev/null || { echo "resilience: needs curl" >&2; exit 1; }

if [ -n "$keep" ]; then mkdir -p "$keep"; work=$(realpath "$keep"); else work=$(mktemp -d); fi
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# the utime+stime of a live process, in clock ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

# wait until file $1 has a line matching $2 (more than $3 such lines), up to 3 s
wait_line() {
	local i
	for i in $(seq 1 300); do
		[ "$(grep -c "$2" "$1" 2>/dev/null || true)" -gt "${3:-0}" ] && return 0
		sleep 0.01
	done
	echo "resilience: no '$2' in $1" >&2
	return 1
}
# ask stub $1 (index) for its counters; prints its newest stats line
stub_stats() {
	local f=$sdir/stub$1.out n
	n=$(grep -c '^stats' "$f" || true)
	kill -HUP "${spid[$1]}"
	wait_line "$f" '^stats' "$n"
	grep '^stats' "$f" | tail -n 1
}

run_scenario() {
	local name=$1 r=$rate hc=1 i
	case $name in c-100) r=100 ;; b-nohc) hc=0 ;; esac
	sdir=$work/$name
	mkdir -p "$sdir"
	spid=() sport=()
	for i in 0 1 2; do
		"$stub" --slow-ms 2000 >"$sdir/stub$i.out" 2>&1 &
		spid[$i]=$!; pids+=($!)
	done
	for i in 0 1 2; do
		wait_line "$sdir/stub$i.out" listening
		sport[$i]=$(awk -F: '/listening/ {print $2; exit}' "$sdir/stub$i.out")
	done
	local gport
	gport=$(free_port)
	{
		echo "listen: [\"127.0.0.1:$gport\"]"
		echo "workers: 1"
		echo "access_log: \"$sdir/access.log\""
		echo "upstreams:"
		echo "  stubs:"
		echo "    servers: [\"127.0.0.1:${sport[0]}\", \"127.0.0.1:${sport[1]}\", \"127.0.0.1:${sport[2]}\"]"
		echo "    keepalive: 64"
		[ "$hc" = 1 ] && echo "    health_check: {path: /healthz, interval: 500ms, timeout: 100ms, unhealthy_threshold: 2, healthy_threshold: 2}"
		echo "    outlier_detection: {consecutive_failures: 3, base_ejection_time: 5s, max_ejection_percent: 50}"
		echo "routes:"
		echo "  - name: res"
		echo "    upstream: stubs"
		echo "    timeout: 2s"
		echo "    retry: {attempts: 3, per_try_timeout: 200ms}"
		if [ "$name" = c-cb ]; then
			echo "    circuit_breaker: {}"
			echo "    fallback: {status: 503, body: 'fallback'}"
		fi
	} >"$sdir/gateway.yaml"
	"$gateway" -c "$sdir/gateway.yaml" 2>"$sdir/gateway.log" &
	gpid=$!; pids+=($gpid)
	for i in $(seq 1 100); do
		curl -sf -o /dev/null "http://127.0.0.1:$gport/warm" && break
		kill -0 "$gpid" 2>/dev/null || { cat "$sdir/gateway.log" >&2; return 1; }
		sleep 0.05
	done
	# warm every stub's keep-alive connections, as a running gateway would have
	for i in $(seq 1 30); do curl -s -o /dev/null "http://127.0.0.1:$gport/warm"; done
	sleep 0.6 # a round of health checks
	if [ "${name%%-*}" = c ] && [ "$name" != c-kill ]; then
		for i in 0 1 2; do kill -USR2 "${spid[$i]}"; wait_line "$sdir/stub$i.out" 'fault 503 on'; done
	fi
	for i in 0 1 2; do stub_stats "$i" >"$sdir/stats0.$i"; done

	local la0 busy0 t0 lpid
	la0=$(cut -d' ' -f1-3 /proc/loadavg)
	busy0=$(busy_ticks)
	t0=$(date +%s.%N)
	/usr/bin/time -f '%U %S' -o "$sdir/loadgen.time" \
		"$loadgen" --url "http://127.0.0.1:$gport/small?run=$name" --rate "$r" \
		--connections "$conns" --duration "$duration" --timeout 5 \
		--json "$sdir/loadgen.json" >"$sdir/loadgen.out" 2>&1 &
	lpid=$!; pids+=($lpid)
	local fault_t=""
	case $name in
	a|b|b-nohc|c-kill)
		sleep "$fault_at"
		fault_t=$(date +%s.%N)
		case $name in
		a)
			stub_stats 0 >"$sdir/stats1.0"
			kill -9 "${spid[0]}"; { wait "${spid[0]}"; } 2>/dev/null || true ;;
		b|b-nohc)
			kill -USR1 "${spid[0]}" ;;
		c-kill)
			for i in 0 1 2; do stub_stats "$i" >"$sdir/stats1.$i"; done
			kill -9 "${spid[0]}" "${spid[1]}" "${spid[2]}"
			{ wait "${spid[0]}" "${spid[1]}" "${spid[2]}"; } 2>/dev/null || true ;;
		esac ;;
	esac
	wait "$lpid" || true
	local busy1 la1 t1 ours=0
	busy1=$(busy_ticks)
	t1=$(date +%s.%N)
	la1=$(cut -d' ' -f1-3 /proc/loadavg)
	sleep 0.3 # the access log is written at most 100 ms late
	for i in 0 1 2; do
		if kill -0 "${spid[$i]}" 2>/dev/null; then
			stub_stats "$i" >"$sdir/stats1.$i"
			ours=$((ours + $(cpu_ticks "${spid[$i]}")))
		fi
	done
	ours=$((ours + $(cpu_ticks "$gpid")))
	kill -TERM "$gpid"; wait "$gpid" || true
	for i in 0 1 2; do
		if kill -0 "${spid[$i]}" 2>/dev/null; then kill -TERM "${spid[$i]}"; fi
		wait "${spid[$i]}" 2>/dev/null || true
	done
	cat >"$sdir/meta.json" <<EOF
{"name": "$name", "rate": $r, "connections": $conns, "duration": $duration,
 "health_check": $hc, "t0": $t0, "t1": $t1, "fault_t": ${fault_t:-null},
 "loadavg_before": "$la0", "loadavg_after": "$la1",
 "busy_ticks": $((busy1 - busy0)), "our_ticks_gw_stubs": $ours,
 "clk_tck": $(getconf CLK_TCK), "ncpu": $(nproc)}
EOF
}

echo "gateway: $gateway"
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "load: $rate req/s (c-100: 100), $conns connections, ${duration}s per scenario, fault at ${fault_at}s"
for s in $scenarios; do
	echo "running $s ..." >&2
	run_scenario "$s"
done
FAULT_AT=$fault_at python3 - "$work" $scenarios <<'PY'
import json, os, sys, datetime
work, names = sys.argv[1], sys.argv[2:]

def stats(path):
    if not os.path.exists(path):
        return None
    f = open(path).read().split()
    return {f[i]: f[i + 1] for i in range(1, len(f) - 1, 2)}

def iso(s):
    return datetime.datetime.strptime(s[:23], "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()

desc = {
    "a": "stub 1 killed (kill -9) at t=%ss",
    "b": "stub 1 2 s slow at t=%ss (health check on)",
    "b-nohc": "stub 1 2 s slow at t=%ss, no health check",
    "c": "all stubs 503 from t=0",
    "c-100": "all stubs 503 from t=0, 100 req/s",
    "c-kill": "all stubs killed at t=%ss",
    "c-cb": "all stubs 503 from t=0, circuit breaker (defaults) + fallback",
}
rows = []
for n in names:
    d = os.path.join(work, n)
    m = json.load(open(os.path.join(d, "meta.json")))
    lg = json.load(open(os.path.join(d, "loadgen.json")))["total"]
    sched, sent = lg["scheduled"], lg["sent"]
    ok = lg["answered"]["2xx"]
    c5 = lg["answered"]["5xx"]
    c4 = lg["answered"]["4xx"]
    errs = sum(lg["errors"].values())
    bad = sched - ok
    lat = lg["latency_us"]
    # stubs: requests seen during the load (the stats after minus before)
    seen = hz = 0
    for i in range(3):
        s0 = stats(os.path.join(d, "stats0.%d" % i))
        s1 = stats(os.path.join(d, "stats1.%d" % i))
        if s0 and s1:
            seen += int(s1["requests"]) - int(s0["requests"])
            hz += int(s1["healthz"]) - int(s0["healthz"])
    # access log: this run's requests only
    tries = reqs = 0
    codes, errors, late = {}, {}, []
    path = "/small?run=" + n
    for line in open(os.path.join(d, "access.log")):
        e = json.loads(line)
        if e.get("path") != path:
            continue
        reqs += 1
        tries += e["tries"]
        codes[e["status"]] = codes.get(e["status"], 0) + 1
        if e["error"]:
            errors[e["error"]] = errors.get(e["error"], 0) + 1
        if e["status"] >= 500 or e["status"] == 499:
            late.append(iso(e["time"]) - m["t0"])
    tck, busy = m["clk_tck"], m["busy_ticks"]
    lgt = open(os.path.join(d, "loadgen.time")).read().split()
    ours = m["our_ticks_gw_stubs"] / tck + float(lgt[-2]) + float(lgt[-1])
    wall = m["t1"] - m["t0"]
    others = max(0.0, busy / tck - ours) / wall
    events = []
    for line in open(os.path.join(d, "gateway.log")):
        if any(k in line for k in ("ejected", "returns after", "is down", "is up", "not ejected", "circuit", "breaker")):
            parts = line.split(" ", 2)
            try:
                t = iso(parts[0]) - m["t0"]
            except ValueError:
                continue
            events.append("t=%5.1fs %s" % (t, parts[2].strip()))
    rows.append(dict(n=n, m=m, sched=sched, sent=sent, ok=ok, c4=c4, c5=c5, errs=errs,
                     rate=100.0 * bad / sched if sched else 0, p50=lat["p50"] / 1000,
                     p99=lat["p99"] / 1000, p999=lat["p99_9"] / 1000, mx=lat["max"] / 1000,
                     seen=seen, hz=hz, tries=tries, reqs=reqs, codes=codes, errors=errors,
                     late=late, others=others, ours=ours / wall, events=events,
                     lgerr=lg["errors"], status=lg["status"],
                     svc99=lg["service_us"]["p99"] / 1000, svcmax=lg["service_us"]["max"] / 1000,
                     maxq=json.load(open(os.path.join(d, "loadgen.json"))).get("max_queue", 0)))

print()
print("| scenario | sent | 2xx | 5xx | errors | error rate | p50 ms | p99 ms | p99.9 ms | max ms | upstream requests (stubs) | ratio stubs/client | tries (access log) | ratio tries/client | background load |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print("| %s: %s | %d | %d | %d | %d | %.3f%% | %.2f | %.2f | %.2f | %.2f | %d (+%d health checks) | %.3f | %d | %.3f | %.2f cores (loadavg %s -> %s) |" % (
        r["n"], desc[r["n"]].replace("%s", os.environ["FAULT_AT"]),
        r["sent"], r["ok"], r["c5"], r["errs"], r["rate"], r["p50"], r["p99"], r["p999"], r["mx"],
        r["seen"], r["hz"], r["seen"] / r["sent"] if r["sent"] else 0,
        r["tries"], r["tries"] / r["sent"] if r["sent"] else 0,
        r["others"], r["m"]["loadavg_before"].split()[0], r["m"]["loadavg_after"].split()[0]))
print()
for r in rows:
    print("%s (%d req/s, %d connections): service time (send -> last byte) p99 %.2f ms, max %.2f ms; loadgen max queue %d; status %s; loadgen errors %s; gateway errors %s; access-log entries %d; CPU of gateway+stubs+loadgen %.2f cores" % (
        r["n"], r["m"]["rate"], r["m"]["connections"], r["svc99"], r["svcmax"], r["maxq"],
        " ".join("%s=%d" % kv for kv in sorted(r["status"].items())),
        " ".join("%s=%d" % kv for kv in r["lgerr"].items() if kv[1]) or "none",
        " ".join("%s=%d" % kv for kv in sorted(r["errors"].items())) or "none",
        r["reqs"], r["ours"]))
    if r["late"] and r["n"] in ("a", "b", "b-nohc"):
        secs = {}
        for t in r["late"]:
            secs[int(t)] = secs.get(int(t), 0) + 1
        print("    failed requests by second of the run: " + ", ".join("t=%ds: %d" % kv for kv in sorted(secs.items())))
    for e in r["events"][:12]:
        print("    " + e)
    if len(r["events"]) > 12:
        print("    ... %d more gateway events" % (len(r["events"]) - 12))
PY

#!/usr/bin/env bash
# TLS side by side (issue 12): the gateway, nginx and HAProxy terminating TLS
# with the same certificate in front of the same upstream_stub, measured with
# bench/tls_loadgen: full handshakes/s, resumed handshakes/s and requests/s
# over kept-alive TLS connections, for an ECDSA P-256 and an RSA 2048
# certificate. Configs: bench/tls/{gateway.yaml.in,nginx.conf.in,
# haproxy.cfg.in}; tables: bench/tls/report.py (see bench/README.md,
# "tls_loadgen and tls_compare.sh").
#
#   bench/tls_compare.sh [--runs N] [--duration S] [--warmup S] [--keys LIST]
#                        [--modes LIST] [--proxies LIST] [--tls 1.3|1.2]
#                        [--handshake-quota P] [--handshake-only]
#                        [--connections N] [--threads T] [--no-pin]
#                        [--server-cpus LIST] [--client-cpus LIST]
#                        [--build DIR] [--gateway BIN] [--out DIR]
#   bench/tls_compare.sh --report DIR     # the tables again from a kept DIR
#
#   --runs N         runs per cell, proxies interleaved, order rotated (3)
#   --duration S     measured seconds per run (6), after --warmup S (1)
#   --keys LIST      ecdsa,rsa (both)
#   --modes LIST     full,resumed,keepalive (all three)
#   --proxies LIST   gateway,nginx,haproxy (all three)
#   --tls V          the only TLS version offered by the client: 1.3 (default) or 1.2
#   --connections N  concurrent connections of the client, every mode (32)
#   --threads T      client threads (1)
#   --server-cpus L  CPUs of the proxy under test (taskset; default 0)
#   --client-cpus L  CPUs of tls_loadgen and upstream_stub (default: the others)
#   --no-pin         no taskset at all
#   --handshake-quota P  full and resumed runs: the proxy may use at most P% of
#                    one CPU (cgroup CPU bandwidth, 10 ms period; 30), so that
#                    it, not the client, is the bottleneck: an OpenSSL 3.0
#                    client spends as much CPU per handshake as the server.
#                    Keep-alive runs are not limited. 0: no limit anywhere.
#   --handshake-only full and resumed: the bare handshake, no request
#                    (tls_loadgen --no-request), to separate the handshake
#                    from the proxying of the one request
#   --quiet-cpus C   before each run, wait until the machine (other jobs: the
#                    proxies and the stub are idle then) uses at most C CPUs
#                    over 0.5 s (0.3), for at most --quiet-max S seconds (15);
#                    the run goes ahead anyway after that, and the report
#                    counts such runs
#   --build DIR      meson build directory for gateway, upstream_stub,
#                    tls_loadgen (build-bench; set up if missing)
#   --gateway BIN    another gateway binary
#   --out DIR        where runs/*.json, configs, logs and report.md go
#                    (default bench/out/tls-compare-YYYYmmdd-HHMMSS)
#
# Each proxy runs one worker (gateway `workers: 1`, nginx `worker_processes
# 1`, HAProxy `nbthread 1`) pinned to --server-cpus; the client and the stub
# run on the other CPUs, so the proxy's core is its own (other jobs on the
# machine apart: the report shows how busy that core was). The certificates
# are made at run time with `openssl req` in a temporary directory (mode 700)
# deleted on exit; nothing secret is written to the repository or --out.
#
# When the gateway refuses the TLS config (`gateway -t`), or does not answer
# over TLS, its column says "n/a (...)" with the reason and the script goes
# on with the others. Loopback only, free ports, every process started is
# stopped by PID on exit or interrupt, every loadgen run is bounded
# (`timeout`). The default matrix (2 keys x 3 modes x 3 proxies x 3 runs of
# 7 s) takes about 8 minutes on a quiet machine (the estimate is printed
# first), up to 20 more when other jobs make it wait (--quiet-max).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cmdline="bench/tls_compare.sh${*:+ $*}"

runs=3 duration=6 warmup=1 keys=ecdsa,rsa modes=full,resumed,keepalive
proxies=gateway,nginx,haproxy tls=1.3 conns=32 threads=1 pin=1
server_cpus=0 client_cpus="" build=build-bench gateway="" out="" report=""
quiet_cpus=0.3 quiet_max=15 hs_quota=30 hs_only=0
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	--duration) duration=${2%s}; shift 2 ;;
	--warmup) warmup=${2%s}; shift 2 ;;
	--keys) keys=$2; shift 2 ;;
	--modes) modes=$2; shift 2 ;;
	--proxies) proxies=$2; shift 2 ;;
	--tls) tls=$2; shift 2 ;;
	--connections) conns=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--server-cpus) server_cpus=$2; shift 2 ;;
	--client-cpus) client_cpus=$2; shift 2 ;;
	--no-pin) pin=0; shift ;;
	--quiet-cpus) quiet_cpus=$2; shift 2 ;;
	--handshake-quota) hs_quota=$2; shift 2 ;;
	--handshake-only) hs_only=1; shift ;;
	--quiet-max) quiet_max=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--gateway) gateway=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--report) report=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "tls_compare: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done
if [ -n "$report" ]; then
	exec python3 "$root/bench/tls/report.py" "$report"
fi
for v in "$runs" "$conns" "$threads"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "tls_compare: not a positive number: $v" >&2; exit 2; }
done
[[ $hs_quota =~ ^[0-9]+$ ]] && [ "$hs_quota" -le 100 ] || { echo "tls_compare: --handshake-quota wants 0..100 (percent of a CPU)" >&2; exit 2; }
[[ $quiet_max =~ ^[0-9]+$ ]] || { echo "tls_compare: --quiet-max wants whole seconds" >&2; exit 2; }
for v in "$duration" "$warmup" "$quiet_cpus"; do
	[[ $v =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "tls_compare: not a number of seconds: $v" >&2; exit 2; }
done
case $tls in 1.2|1.3) ;; *) echo "tls_compare: --tls 1.2|1.3" >&2; exit 2 ;; esac
IFS=, read -r -a key_list <<<"$keys"
IFS=, read -r -a mode_list <<<"$modes"
IFS=, read -r -a proxy_list <<<"$proxies"
for k in "${key_list[@]}"; do case $k in ecdsa|rsa) ;; *) echo "tls_compare: key $k: ecdsa|rsa" >&2; exit 2 ;; esac; done
for m in "${mode_list[@]}"; do case $m in full|resumed|keepalive) ;; *) echo "tls_compare: mode $m: full|resumed|keepalive" >&2; exit 2 ;; esac; done
for p in "${proxy_list[@]}"; do case $p in gateway|nginx|haproxy) ;; *) echo "tls_compare: proxy $p: gateway|nginx|haproxy" >&2; exit 2 ;; esac; done

# ---- CPUs
ncpu=$(nproc)
if [ "$pin" = 1 ]; then
	if [ "$ncpu" -lt 2 ]; then
		echo "tls_compare: one CPU: no pinning" >&2
		pin=0
	elif [ -z "$client_cpus" ]; then
		client_cpus=$(python3 -c '
import sys
srv = set(int(c) for c in sys.argv[1].split(","))
print(",".join(str(c) for c in range(int(sys.argv[2])) if c not in srv))' "$server_cpus" "$ncpu")
		[ -n "$client_cpus" ] || { echo "tls_compare: no CPU left for the client" >&2; exit 2; }
	fi
fi
srv_run=() cli_run=()
if [ "$pin" = 1 ]; then
	srv_run=(taskset -c "$server_cpus")
	cli_run=(taskset -c "$client_cpus")
	pinning="proxy on CPU $server_cpus; tls_loadgen and upstream_stub on CPU $client_cpus (taskset)"
else
	server_cpus="" pinning="none"
fi

# ---- tools and build
for p in "${proxy_list[@]}"; do
	[ "$p" = gateway ] && continue
	command -v "$p" >/dev/null || { echo "tls_compare: $p not installed (apt-get install -y nginx haproxy)" >&2; exit 1; }
done
command -v openssl >/dev/null || { echo "tls_compare: the openssl command is missing" >&2; exit 1; }
[ -f "$build/build.ninja" ] || meson setup "$build" -Dbuildtype=release >/dev/null
if ! log=$(ninja -C "$build" bench/tls_loadgen bench/upstream_stub 2>&1); then
	echo "$log" | tail -n 20 >&2
	echo "tls_compare: build failed (above)" >&2
	exit 1
fi
gw_build_error=""
if [[ ,$proxies, == *,gateway,* ]]; then
	if [ -z "$gateway" ]; then
		# the gateway's own build failing (work in progress) is reported in its column
		if ! log=$(ninja -C "$build" gateway 2>&1); then
			gw_build_error=$(echo "$log" | grep -m1 -E 'error|FAILED' || echo "$log" | tail -n1)
			echo "tls_compare: the gateway did not build: $gw_build_error" >&2
		fi
		gateway=$build/gateway
	fi
	[ -n "$gw_build_error" ] || [ -x "$gateway" ] || { echo "tls_compare: no gateway binary $gateway" >&2; exit 1; }
	[ -n "$gw_build_error" ] || gateway=$(realpath "$gateway")
fi
loadgen=$(realpath "$build/bench/tls_loadgen")
stub=$(realpath "$build/bench/upstream_stub")

# ---- directories, processes, cleanup
[ -n "$out" ] || out=bench/out/tls-compare-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out/runs" "$out/status" "$out/logs" "$out/configs"
out=$(realpath "$out")
rm -f "$out"/runs/*.json "$out"/status/*
work=$(mktemp -d /tmp/tls-compare.XXXXXX)
chmod 700 "$work"
pids=()
tree() { # PID and its descendants
	local p=$1 c
	echo "$p"
	for c in $(pgrep -P "$p" 2>/dev/null); do tree "$c"; done
}
stop_pids() { # PID...: TERM, up to 5 s, then KILL (descendants too)
	local all=() p alive
	for p in "$@"; do all+=($(tree "$p")); done
	[ ${#all[@]} -gt 0 ] || return 0
	kill -TERM "${all[@]}" 2>/dev/null || true
	for _ in $(seq 1 50); do
		alive=0
		for p in "${all[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for p in "${all[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	# forget them: a PID the kernel hands out again later is not ours
	local keep=() q stopped
	for q in "${pids[@]}"; do
		stopped=0
		for p in "$@"; do [ "$q" = "$p" ] && stopped=1; done
		[ $stopped = 1 ] || keep+=("$q")
	done
	pids=(${keep[@]+"${keep[@]}"})
}
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	[ ${#pids[@]} -gt 0 ] && stop_pids "${pids[@]}"
	wait 2>/dev/null || true
	cg_remove
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---- CPU bandwidth limit for the proxy under test (cgroup v1 "cpu" or v2)
cg="" cg_kind=""
cg_setup() {
	[ "$hs_quota" -gt 0 ] || return 0
	if [ -w /sys/fs/cgroup/cpu ] && [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
		cg=/sys/fs/cgroup/cpu/tls-compare-$$ cg_kind=v1
	elif [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
		cg=/sys/fs/cgroup/tls-compare-$$ cg_kind=v2
	fi
	if [ -z "$cg" ] || ! mkdir "$cg" 2>/dev/null; then
		echo "tls_compare: no writable cgroup CPU controller: --handshake-quota ignored (handshake rates may be client-bound)" >&2
		cg="" hs_quota=0
		return 0
	fi
	[ $cg_kind = v1 ] && echo 10000 >"$cg/cpu.cfs_period_us"
	cg_limit 0
}
cg_limit() { # percent of one CPU, 0 = none
	[ -n "$cg" ] || return 0
	if [ $cg_kind = v1 ]; then
		if [ "$1" -gt 0 ]; then echo $(( $1 * 100 )) >"$cg/cpu.cfs_quota_us"; else echo -1 >"$cg/cpu.cfs_quota_us"; fi
	else
		if [ "$1" -gt 0 ]; then echo "$(( $1 * 100 )) 10000" >"$cg/cpu.max"; else echo "max 10000" >"$cg/cpu.max"; fi
	fi
}
cg_add() { # PIDs
	local q
	[ -n "$cg" ] || return 0
	for q in "$@"; do echo "$q" >"$cg/cgroup.procs" 2>/dev/null || true; done
}
cg_throttled() { # "periods throttled" so far
	[ -n "$cg" ] || { echo "0 0"; return 0; }
	awk '$1 == "nr_periods" { p = $2 } $1 == "nr_throttled" { t = $2 } END { print p + 0, t + 0 }' "$cg/cpu.stat"
}
cg_remove() {
	[ -n "$cg" ] || return 0
	local i
	for i in $(seq 1 20); do rmdir "$cg" 2>/dev/null && break; sleep 0.1; done
	cg=""
}

free_ports() { # K free loopback ports
	python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# ---- the upstream
"${cli_run[@]}" "$stub" --threads 1 >"$out/logs/upstream.log" 2>&1 & stub_pid=$!; pids+=($stub_pid)
up_port=""
for _ in $(seq 1 100); do
	up_port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out/logs/upstream.log" | head -n1)
	[ -n "$up_port" ] && break
	kill -0 "$stub_pid" 2>/dev/null || break
	sleep 0.1
done
[ -n "$up_port" ] || { echo "tls_compare: upstream_stub did not start:" >&2; cat "$out/logs/upstream.log" >&2; exit 1; }

# ---- meta
n_runs=$(( ${#key_list[@]} * ${#mode_list[@]} * ${#proxy_list[@]} * runs ))
est=$(python3 -c "print(round($n_runs * ($duration + $warmup + 1.2) / 60 + ${#key_list[@]} * 0.2, 1))")
gw_version=$(cd "$root" && git log -1 --format='%h %cd' --date=format:'%Y-%m-%d %H:%M' 2>/dev/null || echo '?')
if [ -n "$(cd "$root" && git status --porcelain -- gateway meson.build 2>/dev/null | head -n1)" ]; then
	gw_version="$gw_version + uncommitted changes in gateway/"
fi
{
	printf 'date\t%s\n' "$(date '+%Y-%m-%d %H:%M:%S %z')"
	printf 'command\t%s\n' "$cmdline"
	printf 'machine\t%s CPUs (%s), %s\n' "$ncpu" "$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1)" "$(uname -r)"
	printf 'pinning\t%s\n' "$pinning"
	printf 'server_cpus\t%s\n' "$server_cpus"
	printf 'quiet\t%s %s\n' "$quiet_cpus" "$quiet_max"
	printf 'settings\tTLS %s offered, %s runs x (%s s warm-up + %s s), %s connections, %s client thread(s), %s\n' \
		"$tls" "$runs" "$warmup" "$duration" "$conns" "$threads" \
		"$([ "$hs_only" = 1 ] && echo 'full/resumed: the handshake only, no request (--handshake-only); keepalive: ' || echo '')GET /small (12-byte body) proxied to upstream_stub"
	printf 'versions\tgateway %s; %s; %s; %s\n' "$gw_version" "$(nginx -v 2>&1 | sed 's/^nginx version: //')" \
		"$(haproxy -v 2>/dev/null | head -n1 | sed 's/ - https.*//')" "$(openssl version)"
} >"$out/meta.tsv"
echo "tls_compare: $n_runs runs of $warmup + $duration s, about $est min; results in $out"

# ---- certificates
make_cert() { # key -> $work/KEY.{crt,key,pem}, fingerprint in meta
	local k=$1 newkey
	case $k in
	ecdsa) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
	rsa) newkey=(-newkey rsa:2048) ;;
	esac
	(umask 077 && openssl req -x509 "${newkey[@]}" -nodes -keyout "$work/$k.key" -out "$work/$k.crt" \
		-days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
		>"$work/openssl-$k.log" 2>&1) || { cat "$work/openssl-$k.log" >&2; exit 1; }
	cat "$work/$k.crt" "$work/$k.key" >"$work/$k.pem"
	chmod 644 "$work/$k.crt"
	chmod 600 "$work/$k.key" "$work/$k.pem"
	printf 'fingerprint_%s\t%s\n' "$k" "$(openssl x509 -in "$work/$k.crt" -noout -fingerprint -sha256 | sed 's/.*=//')" >>"$out/meta.tsv"
}

# ---- proxies
declare -A port ppid status
fill() { # template out: @...@ from the current key and ports
	sed -e "s#@PORT@#$3#g; s#@UP@#$up_port#g; s#@CERT@#$work/$key.crt#g; s#@KEY@#$work/$key.key#g" \
		-e "s#@PEM@#$work/$key.pem#g; s#@DIR@#$work/$4#g" "$1" >"$2"
}
check_tls() { # proxy port pid: wait until one TLS request through it answers 2xx
	local i
	for i in $(seq 1 50); do
		if timeout 10 "$loadgen" --connect "127.0.0.1:$2" --check --tls "$tls" >"$work/check.json" 2>&1; then
			return 0
		fi
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
start_proxy() { # name: sets port[name], ppid[name], status[name]
	local p=$1 prt cfg log reason
	read -r prt <<<"$(free_ports 1)"
	port[$p]=$prt
	log=$out/logs/$key.$p.log
	: >"$log"
	case $p in
	gateway)
		if [ -n "$gw_build_error" ]; then
			status[$p]="n/a (the gateway did not build: $gw_build_error)"
			return 0
		fi
		cfg=$work/$key.gateway.yaml
		fill bench/tls/gateway.yaml.in "$cfg" "$prt" gateway
		if ! "$gateway" -t -c "$cfg" >"$work/gw-t.log" 2>&1; then
			reason=$(grep -v '^\s*$' "$work/gw-t.log" | head -n1 | sed "s#$work/##g")
			status[$p]="n/a (gateway refused the config: ${reason:-exit status $?})"
			return 0
		fi
		"${srv_run[@]}" "$gateway" -c "$cfg" >"$log" 2>&1 & ppid[$p]=$! ;;
	nginx)
		mkdir -p "$work/nginx-$key"
		cfg=$work/$key.nginx.conf
		fill bench/tls/nginx.conf.in "$cfg" "$prt" "nginx-$key"
		"${srv_run[@]}" nginx -p "$work/nginx-$key/" -c "$cfg" >"$log" 2>&1 & ppid[$p]=$! ;;
	haproxy)
		cfg=$work/$key.haproxy.cfg
		fill bench/tls/haproxy.cfg.in "$cfg" "$prt" haproxy
		"${srv_run[@]}" haproxy -db -f "$cfg" >"$log" 2>&1 & ppid[$p]=$! ;;
	esac
	pids+=("${ppid[$p]}")
	sed "s#$work/#TMP/#g" "$cfg" >"$out/configs/$(basename "$cfg")"
	if ! check_tls "$p" "$prt" "${ppid[$p]}"; then
		reason=$(python3 -c 'import json,sys
try: print(json.load(open(sys.argv[1])).get("first_error") or "no answer")
except Exception: print(open(sys.argv[1]).read().strip().splitlines()[-1:] or "no answer")' "$work/check.json" 2>/dev/null || echo "no answer")
		kill -0 "${ppid[$p]}" 2>/dev/null || reason="exited: $(grep -v '^\s*$' "$log" | tail -n1)"
		status[$p]="n/a ($p does not answer over TLS: $reason)"
		stop_pids "${ppid[$p]}"
		return 0
	fi
	cg_add $(tree "${ppid[$p]}")
	if [ -s "$log" ] && grep -qi 'warn\|alert\|emerg\|error' "$log"; then
		echo "  $p says at start-up:"; grep -i 'warn\|alert\|emerg\|error' "$log" | head -n 5 | sed 's/^/    /'
	fi
	status[$p]=ok
}
server_pids() { # name -> --server-pid arguments (the proxy and its children)
	local q
	for q in $(tree "${ppid[$1]}"); do printf -- '--server-pid %s ' "$q"; done
}

machine_busy() { # CPUs busy over 0.5 s (everything: our proxies and stub are idle now)
	python3 - <<'EOF'
import os, time
def snap():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v), v[3] + v[4]
t0, i0 = snap()
time.sleep(0.5)
t1, i1 = snap()
print("%.2f" % ((t1 - t0 - (i1 - i0)) / max(1, t1 - t0) * os.cpu_count()))
EOF
}
quiet_wait() { # file: wait (at most --quiet-max s) for the machine to be quiet, note it in file
	local busy waited=0
	while :; do
		busy=$(machine_busy)
		python3 -c "import sys; sys.exit(0 if $busy <= $quiet_cpus else 1)" && break
		[ "$waited" -ge "$quiet_max" ] && break
		sleep 1
		waited=$((waited + 1))
	done
	printf '%s %s' "$busy" "$waited" >"$1"
	[ "$waited" -gt 0 ] && echo "    (waited ${waited} s for other jobs: $busy CPUs busy before the run)"
	return 0
}

run_one() { # mode proxy run
	local m=$1 p=$2 r=$3 f
	local limit=0 th0 th1 extra=()
	f=$out/runs/$key.$m.$p.$r.json
	[ "$m" != keepalive ] && limit=$hs_quota
	[ "$m" != keepalive ] && [ "$hs_only" = 1 ] && extra=(--no-request)
	cg_limit "$limit"
	quiet_wait "$out/runs/$key.$m.$p.$r.pre"
	th0=$(cg_throttled)
	# shellcheck disable=SC2046
	if ! timeout $(python3 -c "print(int($warmup + $duration + 20))") "${cli_run[@]}" "$loadgen" \
		--connect "127.0.0.1:${port[$p]}" --mode "$m" --tls "$tls" --connections "$conns" \
		--threads "$threads" --duration "$duration" --warmup "$warmup" ${extra[@]+"${extra[@]}"} \
		$(server_pids "$p") --json "$f" >/dev/null 2>"$work/lg.err"; then
		echo "tls_compare: tls_loadgen failed against $p ($m, run $r):" >&2
		cat "$work/lg.err" >&2
		rm -f "$f"
	fi
	th1=$(cg_throttled)
	python3 -c "import sys; a, b = '$th0'.split(), '$th1'.split(); p = int(b[0]) - int(a[0]); t = int(b[1]) - int(a[1]); print(' $limit %.3f' % (t / p if p else 0))" >>"$out/runs/$key.$m.$p.$r.pre"
	if ! kill -0 "${ppid[$p]}" 2>/dev/null; then
		status[$p]="n/a ($p exited during the $m run $r: $(grep -v '^\s*$' "$out/logs/$key.$p.log" | tail -n1))"
		echo "tls_compare: ${status[$p]}" >&2
	fi
	python3 - "$f" "$p" "$m" "$r" <<'EOF' || true
import json, sys
f, p, m, r = sys.argv[1:]
try:
    j = json.load(open(f))
except Exception:
    sys.exit(0)
sc = j.get("server_cpu") or {}
print("    %-8s %-9s run %s: %9.1f /s  errors %-4d p99 %7.3f ms  proxy cpu %.2f  client cpu %.2f%s" % (
    p, m, r, j["rate"], j["errors"]["total"], j["latency_ms"]["p99"], sc.get("util", -1),
    j["client_cpu"]["util"], ("  first error: " + j["first_error"]) if j["errors"]["total"] else ""))
EOF
}

cg_setup
printf 'quota\t%s\n' "$hs_quota" >>"$out/meta.tsv"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for key in "${key_list[@]}"; do
	make_cert "$key"
	echo "== $key: certificate $(sed -n "s/^fingerprint_$key\t//p" "$out/meta.tsv" | cut -c1-23)..."
	for p in "${proxy_list[@]}"; do
		start_proxy "$p"
		[ "${status[$p]}" = ok ] || echo "  $p: ${status[$p]}"
	done
	for r in $(seq 1 "$runs"); do
		# rotate the order of the proxies every run
		order=()
		for i in "${!proxy_list[@]}"; do
			order+=("${proxy_list[$(( (i + r - 1) % ${#proxy_list[@]} ))]}")
		done
		for m in "${mode_list[@]}"; do
			for p in "${order[@]}"; do
				[ "${status[$p]}" = ok ] || continue
				run_one "$m" "$p" "$r"
			done
		done
	done
	for p in "${proxy_list[@]}"; do
		printf '%s\n' "${status[$p]}" >"$out/status/$key.$p"
		if [ -n "${ppid[$p]:-}" ]; then
			stop_pids "${ppid[$p]}"
			ppid[$p]=""
		fi
	done
	rm -f "$work/$key.key" "$work/$key.pem"
done
printf 'load\tload average %s at the start, %s at the end\n' "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/meta.tsv"
echo
python3 "$root/bench/tls/report.py" "$out"

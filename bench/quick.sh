#!/usr/bin/env bash
# A rough first measure: wrk against an nginx upstream reached directly and
# through the gateway (1 worker), interleaved over several rounds, with the
# gateway's peak RSS. Loopback only; bounded in time (rounds x 2 x duration).
#
#   bench/quick.sh [rounds=3] [duration=5s] [connections=50]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
duration=${2:-5s}
conns=${3:-50}

command -v wrk >/dev/null && command -v nginx >/dev/null || {
	echo "installing wrk and nginx"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx >/dev/null
}
[ -x build/gateway ] || { meson setup build >/dev/null && ninja -C build >/dev/null; }
ninja -C build gateway >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up_port=$(free_port)
gw_port=$(free_port)
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cat >"$work/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen 127.0.0.1:$up_port; keepalive_requests 1000000;
           location / { return 200 "hello world\n"; } }
}
NGX
cat >"$work/gateway.yaml" <<GW
listen: ["127.0.0.1:$gw_port"]
workers: 1
access_log: "off"
upstreams:
  bench:
    servers: ["127.0.0.1:$up_port"]
    keepalive: 256
routes:
  - name: all
    upstream: bench
GW
nginx -c "$work/nginx.conf" & pids+=($!)
./build/gateway -c "$work/gateway.yaml" 2>"$work/gateway.log" & gw=$!; pids+=($gw)
for _ in $(seq 1 50); do
	curl -sf "http://127.0.0.1:$gw_port/" >/dev/null 2>&1 && break
	sleep 0.1
done

run() { # url -> "rps p99ms"
	wrk -t1 -c"$conns" -d"$duration" --latency "$1" |
		awk '/Requests\/sec/ {rps=$2} / 99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; p99=v} END {print rps, p99}'
}
: >"$work/direct"; : >"$work/gateway"
for r in $(seq 1 "$rounds"); do
	run "http://127.0.0.1:$up_port/" >>"$work/direct"
	run "http://127.0.0.1:$gw_port/" >>"$work/gateway"
done
hwm=$(awk '/VmHWM/ {print $2}' /proc/$gw/status)
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
d_rps=$(cut -d' ' -f1 "$work/direct" | median); g_rps=$(cut -d' ' -f1 "$work/gateway" | median)
d_p99=$(cut -d' ' -f2 "$work/direct" | median); g_p99=$(cut -d' ' -f2 "$work/gateway" | median)
echo "| target | req/s (median of $rounds) | p99 ms |"
echo "|---|---|---|"
echo "| upstream direct | $d_rps | $d_p99 |"
echo "| through gateway | $g_rps | $g_p99 |"
echo
echo "gateway/direct throughput: $(awk -v g="$g_rps" -v d="$d_rps" 'BEGIN {printf "%.2f", g/d}')x; gateway peak RSS: $((hwm / 1024)) MiB ($hwm KiB)"

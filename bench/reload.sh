#!/usr/bin/env bash
# Config reloads under load: the gateway against nginx and HAProxy.
#
# One open-loop load (loadgen, keep-alive connections) through each proxy to
# the same two upstream stubs, with no reload and with one config reload per
# second; the two config files of each proxy differ by one route (/only-a in
# A, /only-b in B), and every reload swaps them, so that every reload really
# changes something. Loopback only; bounded in time (about 34 s per run:
# 3 proxies x 2 modes x --runs); every process it starts is stopped on exit
# (by PID / its own process group).
#
#   bench/reload.sh [--runs N] [--duration S] [--rate R] [--connections N]
#                   [--workers N] [--warmup S] [--gateway-reload post|hup]
#                   [--proxies gateway,nginx,haproxy] [--gateway BIN] [--out DIR]
#
#   --runs N          rounds; each runs every proxy without and with reloads (3)
#   --duration S      seconds of measured load per run (30): S reloads in a reload run
#   --rate R          requests/s, open loop (2000)
#   --connections N   loadgen keep-alive connections (50; the pool may grow to 4x)
#   --workers N       gateway workers = nginx worker_processes = HAProxy nbthread (1)
#   --warmup S        loadgen warm-up seconds, not counted and without reloads (2)
#   --gateway-reload  post: POST /reload on the admin API (default); hup: kill -HUP
#   --proxies LIST    which proxies (default gateway,nginx,haproxy)
#   --gateway BIN     the gateway binary (default: ninja -C build-bench, build-bench/gateway)
#   --out DIR         keep every config, log, loadgen JSON and run record in DIR
#   --report DIR      print the tables again from a DIR kept by --out (runs nothing)
#
# Reloads: the gateway by POST /reload (or SIGHUP); nginx by SIGHUP to its
# master (what `nginx -s reload` sends), master + N workers; HAProxy 2.6 in
# master-worker mode (-W) by SIGUSR2 to its master. Before each reload the
# live config file is replaced (rename) by the other variant. After each
# reload a probe (a fresh connection, not counted by loadgen) asks for the new
# route until it answers 200: the "apply" time from the signal (POST: from
# the request) to the new config serving new connections (given up after
# 0.9 s). Runs without reloads send the same probe once a second for the
# current route, so both modes carry the same extra traffic.
#
# Per run: loadgen's numbers (latency from the scheduled send to the last
# byte, so no coordinated omission; non-2xx answers and errors by kind), the
# proxy's processes, open fds and RSS (summed over its process tree, from
# /proc) before the load, every second during it, and 1 s after loadgen
# ended; the proxy's CPU and the CPU used by the rest of the machine. For the
# gateway also GET /status (reloads, reloads_failed, last_reload_error) and
# gateway_reloads_total from GET /metrics after the run, and its log's
# warnings and errors.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

args="$*"
runs=3 duration=30 rate=2000 conns=50 workers=1 warmup=2 gw_reload=post
proxies="gateway,nginx,haproxy" gateway="" out="" report=""
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	--duration) duration=${2%s}; shift 2 ;;
	--rate) rate=$2; shift 2 ;;
	--connections) conns=$2; shift 2 ;;
	--workers) workers=$2; shift 2 ;;
	--warmup) warmup=${2%s}; shift 2 ;;
	--gateway-reload) gw_reload=$2; shift 2 ;;
	--proxies) proxies=$2; shift 2 ;;
	--gateway) gateway=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--report) report=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "reload: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done
for v in "$runs" "$duration" "$rate" "$conns" "$workers" "$warmup"; do
	[[ $v =~ ^[0-9]+$ ]] && [ "$v" -gt 0 ] || { echo "reload: not a positive whole number: $v" >&2; exit 2; }
done
case $gw_reload in post|hup) ;; *) echo "reload: --gateway-reload post|hup" >&2; exit 2 ;; esac
proxy_list=${proxies//,/ }
for p in $proxy_list; do
	case $p in
	gateway) ;;
	nginx|haproxy) command -v "$p" >/dev/null || { echo "reload: $p not found (apt-get install $p, or --proxies)" >&2; exit 1; } ;;
	*) echo "reload: unknown proxy $p" >&2; exit 2 ;;
	esac
done

# ------------------------------------------------------------ the report
# the tables, from a directory of runs (runs/NN-PROXY-MODE/{run.json,loadgen.json,proxy.log})
report() {
python3 - "$1" <<'PY'
import glob, json, os, re, statistics, sys
# the gateway: every warning or error; nginx and HAProxy: errors only (HAProxy logs
# "[WARNING] Proxy fe stopped" and "Former worker exited" on every reload, by design)
WARN = {"gateway": r"^\S+ (warn|error|fatal|crit)", "nginx": r"\[(error|crit|alert|emerg)\]",
        "haproxy": r"\[ALERT\](?!.*exited with code 143)"}  # 143: our SIGTERM at the end
work = sys.argv[1]
rate = duration = WORKERS = None
runs = []
for d in sorted(glob.glob(os.path.join(work, "runs", "*"))):
    try:
        rec = json.load(open(os.path.join(d, "run.json")))
        lg = json.load(open(os.path.join(d, "loadgen.json")))
    except (OSError, ValueError) as e:
        print("(run %s incomplete: %s)" % (os.path.basename(d), e))
        continue
    t = lg["total"]
    rate, duration = int(lg["rate"]), int(lg["duration_s"])
    if WORKERS is None:
        for fn in glob.glob(os.path.join(d, "gateway.yaml")) + glob.glob(os.path.join(d, "nginx.conf")):
            m = re.search(r"^(workers:|worker_processes) (\d+)", open(fn).read(), re.M)
            WORKERS = int(m.group(2)) if m else None
    errs = {k: v for k, v in t["errors"].items() if v}
    non2xx = {k: v for k, v in t["status"].items() if not k.startswith("2")}
    unsent = t["scheduled"] - t["sent"]
    bad = t["scheduled"] - t["answered"]["2xx"]
    log = open(os.path.join(d, "proxy.log"), errors="replace").read().splitlines()
    rec.update(dir=os.path.basename(d), rps=t["answered"]["2xx"] / lg["duration_s"],
               p50=t["latency_us"]["p50"] / 1000, p99=t["latency_us"]["p99"] / 1000,
               p999=t["latency_us"]["p99_9"] / 1000, mx=t["latency_us"]["max"] / 1000,
               sched=t["scheduled"], bad=bad, errs=errs, non2xx=non2xx, unsent=unsent,
               reconnects=lg.get("connect_attempts", 0) - lg.get("connections_opened", 0),
               tick_gap=lg.get("max_tick_gap_us", 0) / 1000,
               warn=[l for l in log if re.search(WARN[rec["proxy"]], l)])
    runs.append(rec)

PROX = [p for p in ("gateway", "nginx", "haproxy") if any(r["proxy"] == p for r in runs)]
MODES = [("none", "no reload"), ("reload", "reload every 1 s")]
med = statistics.median

def sel(p, m):
    return [r for r in runs if r["proxy"] == p and r["mode"] == m]

def fmt(x, nd=2):
    if x is None:
        return "-"
    if abs(x) >= 100:
        return "{:,.0f}".format(x).replace(",", " ")
    return ("%." + str(nd) + "f") % x

def workers_of(r):
    return WORKERS or 1

def ratio(a, b):
    return "%.2fx" % (a / b) if a is not None and b else "-"

agg = {}
for p in PROX:
    for m, _ in MODES:
        rs = sel(p, m)
        if not rs:
            continue
        apply = [x["apply_ms"] for r in rs for x in r["reloads"] if x.get("apply_ms") is not None]
        not_applied = sum(1 for r in rs for x in r["reloads"] if m == "reload" and x.get("apply_ms") is None)
        kinds = {}
        for r in rs:
            for k, v in list(r["errs"].items()) + list(r["non2xx"].items()):
                kinds[k] = kinds.get(k, 0) + v
            if r["unsent"]:
                kinds["unsent"] = kinds.get("unsent", 0) + r["unsent"]
        agg[p, m] = dict(
            n=len(rs), rps=med([r["rps"] for r in rs]), rps_lo=min(r["rps"] for r in rs),
            rps_hi=max(r["rps"] for r in rs), p50=med([r["p50"] for r in rs]),
            p99=med([r["p99"] for r in rs]), p999=med([r["p999"] for r in rs]),
            mx=med([r["mx"] for r in rs]), mx_all=max(r["mx"] for r in rs),
            bad=sum(r["bad"] for r in rs), sched=sum(r["sched"] for r in rs), kinds=kinds,
            apply=apply, not_applied=not_applied,
            cpu=med([r["proxy_cpu_s"] / r["window_s"] for r in rs]),
            other=med([r["other_cores"] for r in rs]),
            reconnects=med([r["reconnects"] for r in rs]),
            procs=max(s["procs"] for r in rs for s in r["samples"] + [r["after"]]))

print()
print("### Per proxy (median over runs; latency from the scheduled send to the last byte)")
print()
print("| proxy | mode | runs | req/s (2xx/s) [min-max] | p50 ms | p99 ms | p99.9 ms | max ms (median / worst) | non-2xx + errors (of requests) | reload applied: median / max ms | client reconnects | proxy CPU (cores) | max processes | other CPU (cores) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for p in PROX:
    for m, label in MODES:
        g = agg.get((p, m))
        if not g:
            continue
        kinds = ", ".join("%s %d" % kv for kv in sorted(g["kinds"].items()))
        ap = "-" if m == "none" else "%s / %s%s" % (
            fmt(med(g["apply"]), 1) if g["apply"] else "-", fmt(max(g["apply"]), 1) if g["apply"] else "-",
            " (%d not within 0.9 s)" % g["not_applied"] if g["not_applied"] else "")
        print("| %s | %s | %d | %s [%s-%s] | %s | %s | %s | %s / %s | %d of %d%s | %s | %d | %.2f | %d | %.2f |" % (
            p, label, g["n"], fmt(g["rps"]), fmt(g["rps_lo"]), fmt(g["rps_hi"]), fmt(g["p50"], 3),
            fmt(g["p99"]), fmt(g["p999"]), fmt(g["mx"]), fmt(g["mx_all"]), g["bad"], g["sched"],
            " (%s)" % kinds if kinds else "", ap, g["reconnects"], g["cpu"], g["procs"], g["other"]))

print()
print("req/s: 2xx answers per second of the measured window (the offered rate is %d: an open loop, so "
      "a proxy that keeps up shows exactly that). non-2xx + errors: summed over the runs, by kind "
      "(HTTP status, or loadgen's connect/reset/timeout/parse, or unsent). reload applied: from the "
      "signal or POST to the first fresh connection answered by the new config. client reconnects: "
      "connections loadgen had to open again because the proxy closed them (median per run). proxy "
      "CPU: all its processes, reaped workers included, over the window. other CPU: the rest of the "
      "machine (everything but the proxy, the stubs, loadgen and the driver)." % rate)
print()
print("### Reload / no reload, per proxy (ratio of the medians)")
print()
print("| proxy | req/s | p50 | p99 | p99.9 | max | proxy CPU |")
print("|---|---|---|---|---|---|---|")
for p in PROX:
    a, b = agg.get((p, "reload")), agg.get((p, "none"))
    if a and b:
        print("| %s | %s | %s | %s | %s | %s | %s |" % (p, ratio(a["rps"], b["rps"]), ratio(a["p50"], b["p50"]),
              ratio(a["p99"], b["p99"]), ratio(a["p999"], b["p999"]), ratio(a["mx"], b["mx"]),
              ratio(a["cpu"], b["cpu"])))

if "gateway" in PROX:
    print()
    print("### Gateway vs nginx and HAProxy (ratio of the medians; latency < 1 = the gateway is faster)")
    print()
    print("| mode | vs | req/s | p99 | p99.9 | max | proxy CPU |")
    print("|---|---|---|---|---|---|---|")
    for m, label in MODES:
        g = agg.get(("gateway", m))
        for o in ("nginx", "haproxy"):
            x = agg.get((o, m))
            if g and x:
                print("| %s | %s | %s | %s | %s | %s | %s |" % (label, o, ratio(g["rps"], x["rps"]),
                      ratio(g["p99"], x["p99"]), ratio(g["p999"], x["p999"]), ratio(g["mx"], x["mx"]),
                      ratio(g["cpu"], x["cpu"])))

print()
print("### Processes, fds and RSS per run (summed over the proxy's process tree; before the load, max during it, 1 s after it)")
print()
print("| run | proxy | mode | failed requests | reloads (gateway: status reloads / failed) | procs before / max / after | fds before / max / after | fds after: upstream / client / listen / other | RSS KiB before / max / after | p99 / max ms | loadgen max tick gap ms | other CPU |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
problems = []
for r in runs:
    S = r["samples"] + [r["after"]]
    rl = ""
    if r["mode"] == "reload":
        sent = len(r["reloads"])
        rl = "%d sent" % sent
    if r["proxy"] == "gateway":
        sc = r.get("status_config", {})
        rl += "%s%s / %s" % ("; " if rl else "", sc.get("reloads", "?"), sc.get("reloads_failed", "?"))
        exp = len(r["reloads"]) if r["mode"] == "reload" else 0
        fails = [x for x in r["reloads"] if r["mode"] == "reload" and x.get("ok") is False]
        if r["bad"]:
            problems.append("gateway run %s: %d failed requests (%s)" % (r["dir"], r["bad"], r["errs"] or r["non2xx"]))
        if not r.get("proxy_alive"):
            problems.append("gateway run %s: the gateway died" % r["dir"])
        if sc.get("reloads") != exp or sc.get("reloads_failed"):
            problems.append("gateway run %s: status says reloads=%s failed=%s, expected %d / 0" % (
                r["dir"], sc.get("reloads"), sc.get("reloads_failed"), exp))
        if fails:
            problems.append("gateway run %s: %d POST /reload not ok: %s" % (r["dir"], len(fails), fails[0]))
        fb, fa = r["before"]["fd_kinds"], r["after"]["fd_kinds"]
        if fa["other"] + fa["listen"] != fb["other"] + fb["listen"] or fa["client"]:
            problems.append("gateway run %s: fds other than connections %d before, %d after; "
                            "client connections after %d" % (r["dir"], fb["other"] + fb["listen"],
                            fa["other"] + fa["listen"], fa["client"]))
        if fa["upstream"] > 2 * 64 * workers_of(r):
            problems.append("gateway run %s: %d upstream connections after the load" % (r["dir"], fa["upstream"]))
        if r["warn"]:
            problems.append("gateway run %s: log: %s" % (r["dir"], r["warn"][:3]))
    fa = r["after"]["fd_kinds"]
    print("| %s | %s | %s | %d | %s | %d / %d / %d | %d / %d / %d | %d / %d / %d / %d | %d / %d / %d | %s / %s | %.0f | %.2f |" % (
        r["dir"], r["proxy"], r["mode"], r["bad"], rl or "-",
        r["before"]["procs"], max(s["procs"] for s in S), r["after"]["procs"],
        r["before"]["fds"], max(s["fds"] for s in S), r["after"]["fds"],
        fa["upstream"], fa["client"], fa["listen"], fa["other"],
        r["before"]["rss_kib"], max(s["rss_kib"] for s in S), r["after"]["rss_kib"],
        fmt(r["p99"]), fmt(r["mx"], 1), r["tick_gap"], r["other_cores"]))
print()
for r in sorted(runs, key=lambda r: r["mode"] != "reload"):
    if r["proxy"] == "gateway" and r.get("reloads_total"):
        print("%s: %s" % (r["dir"], "; ".join(r["reloads_total"])))
        break
g_r = [r for r in runs if r["proxy"] == "gateway" and r["mode"] == "reload"]
if g_r and any("post_ms" in x for r in g_r for x in r["reloads"]):
    pm = [x["post_ms"] for r in g_r for x in r["reloads"] if "post_ms" in x]
    print("gateway POST /reload answered in %.2f ms median, %.2f ms max (%d reloads)" % (med(pm), max(pm), len(pm)))
print("gateway failed requests (non-2xx + errors + unsent), all runs: %d" % sum(
    r["bad"] for r in runs if r["proxy"] == "gateway"))
for p in PROX:
    w = sorted({l.split("] ", 1)[-1][:160] for r in runs if r["proxy"] == p for l in r["warn"]})
    if w:
        print("%s log warnings/errors (%d distinct): %s" % (p, len(w), " | ".join(w[:4])))
if problems:
    print()
    print("PROBLEMS:")
    for x in problems:
        print("- " + x)
else:
    print("no gateway problem: 0 failed requests, every reload ok, no fd other than connections "
          "gained, no client connection left, no log warning")
PY
}

if [ -n "$report" ]; then
	[ -d "$report/runs" ] || { echo "reload: no runs/ in $report" >&2; exit 2; }
	report "$report"
	exit 0
fi

bench=$root/build-bench/bench
if [ -z "$gateway" ]; then
	[ -f build-bench/build.ninja ] || meson setup build-bench -Dbuildtype=release >/dev/null
	if ! log=$(ninja -C build-bench gateway bench/loadgen bench/upstream_stub 2>&1); then
		echo "$log" | tail -n 20 >&2
		echo "reload: build failed (above); pass --gateway BIN to use another binary" >&2
		exit 1
	fi
	gateway=$root/build-bench/gateway
else
	ninja -C build-bench bench/loadgen bench/upstream_stub >/dev/null
fi
[ -x "$gateway" ] || { echo "reload: $gateway is not executable" >&2; exit 2; }
gateway=$(realpath "$gateway")
stub=$bench/upstream_stub loadgen=$bench/loadgen
command -v curl >/dev/null || { echo "reload: needs curl" >&2; exit 1; }

if [ -n "$out" ]; then mkdir -p "$out"; work=$(realpath "$out"); else work=$(mktemp -d); fi
chmod 755 "$work"
pgids=() # every process we start runs in its own process group (setsid)
cleanup() {
	local g
	for g in "${pgids[@]}"; do kill -9 -- "-$g" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "$out" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_line() { # file pattern: up to 5 s
	local i
	for i in $(seq 1 500); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.01
	done
	echo "reload: no '$2' in $1" >&2
	return 1
}

# ------------------------------------------------------------ the run driver
# Waits for loadgen's clock, sends the reloads (or the probes only), samples
# /proc every second, and writes the run record (JSON).
cat >"$work/driver.py" <<'PY'
import http.client, json, os, signal, sys, time

a = json.loads(sys.argv[1])
CLK = os.sysconf("SC_CLK_TCK")

def stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    return s[s.rfind(")") + 2:].split()

def tree(root):
    kids = {}
    for n in os.listdir("/proc"):
        if n.isdigit():
            try:
                kids.setdefault(int(stat_fields(int(n))[1]), []).append(int(n))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if os.path.exists("/proc/%d" % p):
            out.append(p)
        todo.extend(kids.get(p, []))
    return out

def cpu(pids, children=False):
    t = 0
    for p in pids:
        try:
            f = stat_fields(p)
            t += int(f[11]) + int(f[12]) + ((int(f[13]) + int(f[14])) if children else 0)
        except (OSError, IndexError, ValueError):
            pass
    return t / CLK

def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4] - v[7]) / CLK

def tcp_sockets():
    """inode -> (local port, remote port, state) of every TCP socket."""
    out = {}
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(fn).read().splitlines()[1:]
        except OSError:
            continue
        for l in lines:
            f = l.split()
            out[f[9]] = (int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16), f[3])
    return out

def sample(t0):
    """Processes, RSS and fds of the proxy's tree; fds by kind: client connections (to the
    proxy's port), upstream connections (to a stub), listening sockets, the rest."""
    pids = tree(a["proxy_pid"])
    fds = rss = 0
    kinds = {"client": 0, "upstream": 0, "listen": 0, "other": 0}
    socks = tcp_sockets()
    stubs = set(a["stub_ports"])
    for p in pids:
        try:
            names = os.listdir("/proc/%d/fd" % p)
            fds += len(names)
            for n in names:
                try:
                    t = os.readlink("/proc/%d/fd/%s" % (p, n))
                except OSError:
                    continue
                k = "other"
                if t.startswith("socket:["):
                    s = socks.get(t[8:-1])
                    if s and s[2] == "0A":
                        k = "listen"
                    elif s and s[1] in stubs:
                        k = "upstream"
                    elif s and s[0] == a["port"]:
                        k = "client"
                kinds[k] += 1
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
        except OSError:
            pass
    return {"t": round(time.time() - t0, 3), "procs": len(pids), "fds": fds, "rss_kib": rss,
            "fd_kinds": kinds}

def req(port, method, path, timeout):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()

def probe(path, deadline):
    """A fresh connection each time, until `path` answers 200 or the deadline passes."""
    tries = 0
    while True:
        tries += 1
        try:
            st, _ = req(a["port"], "GET", path, 0.5)
            if st == 200:
                return time.time(), tries
        except OSError:
            pass
        if time.time() >= deadline:
            return None, tries
        time.sleep(0.005)

def alive(pid):
    try:
        return stat_fields(pid)[0] != "Z"
    except OSError:
        return False

if len(sys.argv) > 2 and sys.argv[2] == "before":  # before loadgen starts
    with open(a["record"] + ".before", "w") as f:
        json.dump(sample(time.time()), f)
    sys.exit(0)
rec = {"proxy": a["proxy"], "mode": a["mode"], "run": a["run"], "reloads": [], "samples": []}
t_start = time.time()
rec["before"] = json.load(open(a["record"] + ".before"))
# the clock of loadgen (--connect-first): its line on stderr
while True:
    if os.path.exists(a["lg_err"]) and "clock started" in open(a["lg_err"]).read():
        break
    if not alive(a["lg_pid"]) or time.time() - t_start > 15:
        rec["error"] = "loadgen clock never started"
        break
    time.sleep(0.002)
t0 = time.time()  # loadgen's time zero (a few ms late at most)
ours = [a["proxy_pid"], a["lg_pid"], os.getpid()] + a["stub_pids"]
busy0, cpu0, pcpu0 = machine_busy(), cpu([q for p in ours for q in tree(p)], True), None
cur = "a"
for i in range(a["duration"]):
    due = t0 + a["warmup"] + 0.5 + i
    now = time.time()
    if due > now:
        time.sleep(due - now)
    if i == 0:
        pcpu0 = cpu(tree(a["proxy_pid"]), True)
        busy0, cpu0 = machine_busy(), cpu([q for p in ours for q in tree(p)], True)
        rec["window_start"] = round(time.time() - t0, 3)
    r = {"i": i, "t": round(time.time() - t0, 3)}
    if a["mode"] == "reload":
        new = "b" if cur == "a" else "a"
        with open(a["conf_" + new]) as f:
            body = f.read()
        with open(a["conf_live"] + ".tmp", "w") as f:
            f.write(body)
        os.rename(a["conf_live"] + ".tmp", a["conf_live"])  # atomic: never a half-written file
        ts = time.time()
        if a["proxy"] == "gateway" and a["gw_reload"] == "post":
            try:
                st, body = req(a["admin_port"], "POST", "/reload", 5.0)
                r["http"] = st
                r["ok"] = st == 200 and json.loads(body).get("ok") is True
                if not r["ok"]:
                    r["answer"] = body.decode(errors="replace")[:500]
            except (OSError, ValueError) as e:
                r["http"], r["ok"], r["answer"] = None, False, str(e)
            r["post_ms"] = round((time.time() - ts) * 1000, 3)
        else:
            os.kill(a["proxy_pid"], getattr(signal, a["signal"]))
        t_ok, tries = probe("/only-" + new, ts + 0.9)
        r["apply_ms"] = round((t_ok - ts) * 1000, 3) if t_ok else None
        r["probes"] = tries
        cur = new
    else:
        t_ok, tries = probe("/only-a", time.time() + 0.9)
        r["probe_ok"] = t_ok is not None
    rec["reloads"].append(r)
    rec["samples"].append(sample(t0))
# wait for loadgen to end (its drain), then 1 s more
while alive(a["lg_pid"]):
    time.sleep(0.05)
t1 = time.time()
rec["proxy_cpu_s"] = cpu(tree(a["proxy_pid"]), True) - (pcpu0 or 0)
busy1, cpu1 = machine_busy(), cpu([q for p in ours for q in tree(p)], True)
rec["window_s"] = t1 - t0 - rec.get("window_start", 0)
rec["other_cores"] = max(0.0, (busy1 - busy0) - (cpu1 - cpu0)) / rec["window_s"]
time.sleep(1.0)
rec["after"] = sample(t0)
rec["proxy_alive"] = alive(a["proxy_pid"])
if a["proxy"] == "gateway" and rec["proxy_alive"]:
    try:
        st, body = req(a["admin_port"], "GET", "/status", 2.0)
        rec["status_config"] = json.loads(body)["config"]
        st, body = req(a["admin_port"], "GET", "/metrics", 2.0)
        rec["reloads_total"] = [l for l in body.decode().splitlines()
                                if l.startswith("gateway_reloads_total")]
    except (OSError, ValueError, KeyError) as e:
        rec["admin_error"] = str(e)
with open(a["record"], "w") as f:
    json.dump(rec, f, indent=1)
PY

# --------------------------------------------------------------- configs
# $1 variant (a|b), $2 run dir, $3 port, $4 admin port
gateway_conf() {
	cat <<EOF
listen: ["127.0.0.1:$3"]
workers: $workers
access_log: "off"
drain_timeout: 1s
admin: {listen: "127.0.0.1:$4"}
limits: {idle_timeout: 120s}
upstreams:
  app: {servers: ["127.0.0.1:${sport[0]}", "127.0.0.1:${sport[1]}"], keepalive: 64}
routes:
  - {name: small, match: {path_prefix: /small}, upstream: app, timeout: 5s}
  - {name: only_$1, match: {path_prefix: /only-$1}, upstream: app, timeout: 5s}
EOF
}
nginx_conf() {
	cat <<EOF
worker_processes $workers;
daemon off;
pid $2/nginx.pid;
error_log $2/nginx.log notice;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_timeout 120s;
  keepalive_requests 1000000;
  client_body_temp_path $2/tmp/body;
  proxy_temp_path $2/tmp/proxy;
  fastcgi_temp_path $2/tmp/fastcgi;
  uwsgi_temp_path $2/tmp/uwsgi;
  scgi_temp_path $2/tmp/scgi;
  upstream app {
    server 127.0.0.1:${sport[0]} max_fails=0;
    server 127.0.0.1:${sport[1]} max_fails=0;
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
  }
  server {
    listen 127.0.0.1:$3;
    root $2/empty;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_read_timeout 5s;
    proxy_next_upstream off;
    location /small { proxy_pass http://app; }
    location /only-$1 { proxy_pass http://app; }
    location / { return 404; }
  }
}
EOF
}
haproxy_conf() {
	cat <<EOF
global
  nbthread $workers
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 5s
  timeout http-request 10s
  timeout http-keep-alive 120s
  http-reuse always
frontend fe
  bind 127.0.0.1:$3
  use_backend app if { path_beg /small }
  use_backend app_$1 if { path_beg /only-$1 }
backend app
  server s1 127.0.0.1:${sport[0]}
  server s2 127.0.0.1:${sport[1]}
backend app_$1
  server s1 127.0.0.1:${sport[0]}
  server s2 127.0.0.1:${sport[1]}
EOF
}

# ------------------------------------------------------------------ one run
run_one() { # proxy mode round index
	local name=$1 mode=$2 round=$3 idx=$4 d port aport=0 ppid sig="" live a b
	d=$work/runs/$(printf '%02d' "$idx")-$name-$mode
	mkdir -p "$d/tmp" "$d/empty"
	port=$(free_port)
	case $name in
	gateway)
		aport=$(free_port)
		a=$d/gateway-a.yaml b=$d/gateway-b.yaml live=$d/gateway.yaml
		gateway_conf a "$d" "$port" "$aport" >"$a"
		gateway_conf b "$d" "$port" "$aport" >"$b"
		"$gateway" -t -c "$b" >/dev/null 2>&1 || { "$gateway" -t -c "$b"; return 1; }
		cp "$a" "$live"
		[ "$gw_reload" = hup ] && sig=SIGHUP
		setsid "$gateway" -c "$live" >"$d/proxy.log" 2>&1 &
		;;
	nginx)
		a=$d/nginx-a.conf b=$d/nginx-b.conf live=$d/nginx.conf
		nginx_conf a "$d" "$port" >"$a"
		nginx_conf b "$d" "$port" >"$b"
		cp "$a" "$live"
		sig=SIGHUP
		setsid nginx -p "$d/" -c "$live" >"$d/proxy.log" 2>&1 &
		;;
	haproxy)
		a=$d/haproxy-a.cfg b=$d/haproxy-b.cfg live=$d/haproxy.cfg
		haproxy_conf a "$d" "$port" >"$a"
		haproxy_conf b "$d" "$port" >"$b"
		haproxy -c -f "$b" >/dev/null 2>&1 || { haproxy -c -f "$b"; return 1; }
		cp "$a" "$live"
		sig=SIGUSR2
		setsid haproxy -W -db -f "$live" >"$d/proxy.log" 2>&1 &
		;;
	esac
	ppid=$!; pgids+=("$ppid")
	local i
	for i in $(seq 1 200); do
		curl -sf -o /dev/null "http://127.0.0.1:$port/only-a" && break
		kill -0 "$ppid" 2>/dev/null || { echo "reload: $name died at start:" >&2; cat "$d/proxy.log" >&2; return 1; }
		sleep 0.025
	done
	curl -sf -o /dev/null "http://127.0.0.1:$port/small" || { echo "reload: $name does not serve /small" >&2; cat "$d/proxy.log" >&2; return 1; }

	local dargs
	dargs=$(printf '{"proxy":"%s","mode":"%s","run":%d,"proxy_pid":%d,"lg_pid":%s,"lg_err":"%s","stub_pids":[%d,%d],"stub_ports":[%d,%d],"port":%d,"admin_port":%d,"duration":%d,"warmup":%d,"gw_reload":"%s","signal":"%s","conf_a":"%s","conf_b":"%s","conf_live":"%s","record":"%s"}' \
		"$name" "$mode" "$round" "$ppid" LGPID "$d/loadgen.err" "${spid[0]}" "${spid[1]}" "${sport[0]}" "${sport[1]}" "$port" "$aport" \
		"$duration" "$warmup" "$gw_reload" "$sig" "$a" "$b" "$live" "$d/run.json")
	sleep 0.5
	python3 "$work/driver.py" "${dargs/LGPID/0}" before
	setsid "$loadgen" --url "http://127.0.0.1:$port/small" --rate "$rate" \
		--connections "$conns" --max-connections $((conns * 4)) --duration "$duration" \
		--warmup "$warmup" --connect-first 5 --timeout 5 --json "$d/loadgen.json" \
		>"$d/loadgen.out" 2>"$d/loadgen.err" &
	local lpid=$!; pgids+=("$lpid")
	python3 "$work/driver.py" "${dargs/LGPID/$lpid}"
	wait "$lpid" || echo "reload: loadgen exited $? ($name $mode)" >&2
	# stop the proxy: SIGTERM to the master (nginx: fast shutdown; HAProxy -W: stops its
	# workers; gateway: drain 1 s), then the whole group, workers included
	kill -TERM "$ppid" 2>/dev/null || true
	for i in $(seq 1 60); do kill -0 "$ppid" 2>/dev/null || break; sleep 0.05; done
	kill -9 -- "-$ppid" 2>/dev/null || true
	wait "$ppid" 2>/dev/null || true
}

# ----------------------------------------------------------------- main
spid=() sport=()
for i in 0 1; do
	setsid "$stub" >"$work/stub$i.out" 2>&1 &
	spid[$i]=$!; pgids+=($!)
done
for i in 0 1; do
	wait_line "$work/stub$i.out" listening
	sport[$i]=$(awk -F: '/listening/ {print $2; exit}' "$work/stub$i.out")
done

n_prox=$(echo $proxy_list | wc -w)
echo "gateway: $gateway ($(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$root" diff --quiet 2>/dev/null || echo ', working tree modified'))"
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "versions: $(nginx -v 2>&1 | head -1); $(haproxy -v 2>/dev/null | head -1 | cut -d' ' -f1-3)"
echo "load: $rate req/s open loop, $conns keep-alive connections (up to $((conns * 4))), ${warmup}s warm-up + ${duration}s measured; $workers worker(s); $runs round(s) x $n_prox proxies x 2 modes, about $((runs * n_prox * 2 * (duration + warmup + 3) / 60 + 1)) min"
echo "command: bench/reload.sh $args"
idx=0
for round in $(seq 1 "$runs"); do
	# rotate the proxies' order every round; alternate the two modes' order
	set -- $proxy_list
	shift_by=$(( (round - 1) % n_prox ))
	order=("${@:shift_by+1}" "${@:1:shift_by}")
	if [ $((round % 2)) = 1 ]; then modes="none reload"; else modes="reload none"; fi
	for p in "${order[@]}"; do
		for m in $modes; do
			idx=$((idx + 1))
			echo "round $round: $p, $m ..." >&2
			run_one "$p" "$m" "$round" "$idx"
		done
	done
done
for i in 0 1; do kill -TERM "${spid[$i]}" 2>/dev/null || true; wait "${spid[$i]}" 2>/dev/null || true; done


report "$work"
[ -n "$out" ] && echo "logs, configs and run records: $work"
exit 0

#!/usr/bin/env python3
"""bench/metrics_scrape.py: the cost of GET /metrics and GET /status on a large config.

Generates a gateway config with --routes routes (200) over --upstreams upstreams (50) of
--servers servers each (3), with a mix of the features that add series: circuit_breaker,
retry, rate_limit, concurrency_limit (adaptive and fixed), health_check, outlier_detection,
route flags (and flags with every kind of default), priorities; a few upstreams have one
dead server (nothing listens on its port) so that connect failures, ejections and down
servers appear. Starts --stubs upstream stubs (8; each upstream takes --servers of them),
the gateway (--workers 2) with an admin section, sends --per-route requests (10) to every
route plus a few that match no route, 429s and flag_off answers, so that the series exist,
then:

  1. idle: GET /metrics --scrapes times (50), then GET /status as many times, each on a
     fresh connection (as a scraper without keep-alive), timed from connect to the last
     byte of the body; the gateway's CPU per scrape (its utime+stime over the scrapes);
     then --scrapes GET /metrics on one keep-alive connection (as Prometheus scrapes);
  2. under load (--load-seconds 10, 0 to skip): loadgen at --rate (1000) req/s over 60
     routes while GET /metrics is scraped back to back (at most 5 per second),
     the scrape times then.

Reports the body sizes (bytes, lines, series, metric families, the families with the most
series), the scrape times (median, p90, max), the gateway's RSS before and after the
scrapes, and `promtool check metrics` on one body when promtool is installed. Loopback
only; every process it starts is stopped on exit (its own process group).

  bench/metrics_scrape.py [--routes 200] [--upstreams 50] [--servers 3] [--scrapes 50]
                          [--workers 2] [--per-route 10] [--load-seconds 10] [--rate 1000]
                          [--gateway BIN] [--no-build] [--out DIR]
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK = os.sysconf("SC_CLK_TCK")
CHILDREN = []


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def spawn(argv, out):
    p = subprocess.Popen(argv, stdout=open(out, "w"), stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True, cwd=ROOT)
    CHILDREN.append(p)
    return p


def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
            p.wait(3)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def stop_all(*_):
    for p in CHILDREN:
        stop(p)


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    f = s[s.rfind(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / CLK


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def get(port, path, method="GET", timeout=5.0):
    """One request on a fresh connection: (status, headers, body, seconds)."""
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path)
        r = c.getresponse()
        body = r.read()
        return r.status, dict(r.getheaders()), body, time.perf_counter() - t0
    finally:
        c.close()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


# ------------------------------------------------------------------ config


def make_config(a, port, admin_port, stub_ports, dead_port):
    prios = ["critical", "normal", "sheddable"]
    nflags = 10
    L = ['listen: ["127.0.0.1:%d"]' % port,
         "workers: %d" % a.workers,
         'access_log: "off"',
         "drain_timeout: 1s",
         'admin: {listen: "127.0.0.1:%d"}' % admin_port,
         "shedding: {max_inflight: 5000}",
         "flags:"]
    for k in range(nflags):
        L.append('  flag_%02d: %s' % (k, ["on", "off", '"25%"', "on", '"100%"'][k % 5]))
    L.append("upstreams:")
    ns = len(stub_ports)
    dead_ups = set(range(a.upstreams - max(1, a.upstreams // 10), a.upstreams))  # last 10%
    for u in range(a.upstreams):
        servers = ["127.0.0.1:%d" % stub_ports[(u + j * 3) % ns] for j in range(a.servers)]
        if u in dead_ups:
            servers[-1] = "127.0.0.1:%d" % dead_port
        opts = ["servers: [%s]" % ", ".join('"%s"' % s for s in servers),
                "balance: %s" % ["round_robin", "least_request", "random"][u % 3],
                "keepalive: 8"]
        if u % 5 == 0:
            opts.append("concurrency_limit: adaptive")
        elif u % 7 == 0:
            opts.append("concurrency_limit: 200")
        if u % 4 == 0 or u in dead_ups:
            opts.append("health_check: {path: /healthz, interval: 2s, timeout: 500ms}")
        if u % 3 == 0 or u in dead_ups:
            opts.append("outlier_detection: {consecutive_failures: 3, base_ejection_time: 30s, "
                        "max_ejection_percent: 50}")
        L.append("  u%02d: {%s}" % (u, ", ".join(opts)))
    L.append("routes:")
    for r in range(a.routes):
        u = r % a.upstreams
        opts = ["name: r%03d" % r, "match: {path_prefix: /r%03d}" % r, "upstream: u%02d" % u,
                "priority: %s" % prios[r % 3], "timeout: 5s"]
        if r % 3 == 0 or u in dead_ups:
            opts.append("retry: {attempts: 3, per_try_timeout: 1s}")
        if r % 4 == 0:
            opts.append("circuit_breaker: {min_requests: 50}")
        if r % 10 == 0:
            # a small bucket on some, so that 429s (and their series) appear
            opts.append("rate_limit: {rate: %s, burst: %d, by: route}" % (
                "2" if r % 20 == 0 else "1000", 3 if r % 20 == 0 else 2000))
        if r % 8 == 1:
            opts.append("flag: {name: flag_%02d, when_off: {status: 404}}" % ((r // 8) % nflags))
        if r % 6 == 5:
            opts.append("strip_prefix: true")
        L.append("  - {%s}" % ", ".join(opts))
    return "\n".join(L) + "\n"


# ------------------------------------------------------------------ analysis


def analyse_metrics(body):
    text = body.decode()
    lines = text.splitlines()
    series = [l for l in lines if l and not l.startswith("#")]
    fams = {}
    types = {}
    for l in lines:
        m = re.match(r"# TYPE (\S+) (\S+)", l)
        if m:
            types[m.group(1)] = m.group(2)
    for l in series:
        name = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", l).group(0)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        fam = base if base in types else name
        fams[fam] = fams.get(fam, 0) + 1
    return {"bytes": len(body), "lines": len(lines), "series": len(series),
            "families": len(types), "by_family": fams, "types": types}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--routes", type=int, default=200)
    ap.add_argument("--upstreams", type=int, default=50)
    ap.add_argument("--servers", type=int, default=3)
    ap.add_argument("--stubs", type=int, default=8)
    ap.add_argument("--scrapes", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--per-route", type=int, default=10)
    ap.add_argument("--load-seconds", type=int, default=10)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--gateway")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.servers > a.stubs:
        ap.error("--servers must be at most --stubs")

    bdir = os.path.join(ROOT, "build-bench")
    if not a.no_build:
        if not os.path.exists(os.path.join(bdir, "build.ninja")):
            subprocess.run(["meson", "setup", bdir, "-Dbuildtype=release"], check=True,
                           stdout=subprocess.DEVNULL)
        targets = ["bench/loadgen", "bench/upstream_stub"] + ([] if a.gateway else ["gateway"])
        r = subprocess.run(["ninja", "-C", bdir] + targets, capture_output=True, text=True)
        if r.returncode:
            log(r.stdout[-3000:] + r.stderr[-3000:])
            sys.exit("metrics_scrape: build failed")
    gateway = os.path.realpath(a.gateway or os.path.join(bdir, "gateway"))
    stub_bin = os.path.join(bdir, "bench", "upstream_stub")
    loadgen = os.path.join(bdir, "bench", "loadgen")

    work = os.path.realpath(a.out) if a.out else tempfile.mkdtemp(prefix="metrics-scrape-")
    os.makedirs(work, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run(a, gateway, stub_bin, loadgen, work)
    finally:
        stop_all()
        if not a.out:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("\nlogs, config and bodies: %s" % work)


def run(a, gateway, stub_bin, loadgen, work):
    # stubs
    stubs = []
    for i in range(a.stubs):
        lf = os.path.join(work, "stub%d.out" % i)
        stubs.append((spawn([stub_bin], lf), lf))
    stub_ports = []
    for p, lf in stubs:
        t_end = time.time() + 5
        while True:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", open(lf).read())
            if m:
                stub_ports.append(int(m.group(1)))
                break
            if time.time() > t_end or p.poll() is not None:
                sys.exit("metrics_scrape: a stub did not start: " + open(lf).read())
            time.sleep(0.02)
    port, admin_port, dead_port = free_ports(3)
    cfg = os.path.join(work, "gateway.yaml")
    with open(cfg, "w") as f:
        f.write(make_config(a, port, admin_port, stub_ports, dead_port))
    chk = subprocess.run([gateway, "-t", "-c", cfg], capture_output=True, text=True)
    if chk.returncode:
        sys.exit("metrics_scrape: the gateway refuses %s:\n%s" % (cfg, chk.stdout + chk.stderr))
    glog = os.path.join(work, "gateway.log")
    gw = spawn([gateway, "-c", cfg], glog)
    t_end = time.time() + 10
    while True:
        try:
            if get(admin_port, "/healthz", timeout=1)[0] == 200 and get(port, "/r001")[0] in (200, 404):
                break
        except OSError:
            pass
        if gw.poll() is not None or time.time() > t_end:
            sys.exit("metrics_scrape: the gateway did not start:\n" + open(glog).read()[-3000:])
        time.sleep(0.05)

    # traffic: every route, a keep-alive connection per route
    t0 = time.time()
    codes = {}
    for r in range(a.routes):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for k in range(a.per_route):
            path = "/r%03d/item/%d?x=%d" % (r, k, k)
            try:
                c.request("GET", path, headers={"X-User-Id": "user-%d" % k})
                resp = c.getresponse()
                resp.read()
                codes[resp.status] = codes.get(resp.status, 0) + 1
                if resp.getheader("Connection", "").lower() == "close":
                    c.close()
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            except (OSError, http.client.HTTPException):
                codes["error"] = codes.get("error", 0) + 1
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.close()
    for k in range(20):  # no route matches: route=""
        st = get(port, "/nomatch/%d" % k)[0]
        codes[st] = codes.get(st, 0) + 1
    t_traffic = time.time() - t0
    time.sleep(0.3)  # per-server figures are at most 100 ms old

    # 1. idle scrapes
    rss0 = proc_status(gw.pid, "VmRSS")
    cpu0 = proc_cpu(gw.pid)
    m_times, m_bodies = [], []
    for i in range(a.scrapes):
        st, hdr, body, dt = get(admin_port, "/metrics")
        if st != 200:
            sys.exit("metrics_scrape: GET /metrics answered %d: %s" % (st, body[:300]))
        m_times.append(dt)
        if i in (0, a.scrapes - 1):
            m_bodies.append((hdr, body))
    cpu_m = proc_cpu(gw.pid) - cpu0
    rss1 = proc_status(gw.pid, "VmRSS")
    cpu0 = proc_cpu(gw.pid)
    s_times = []
    s_body = None
    for i in range(a.scrapes):
        st, hdr, body, dt = get(admin_port, "/status")
        if st != 200:
            sys.exit("metrics_scrape: GET /status answered %d" % st)
        s_times.append(dt)
        s_body = (hdr, body)
    cpu_s = proc_cpu(gw.pid) - cpu0
    rss2 = proc_status(gw.pid, "VmRSS")
    # a keep-alive scraper (one connection): Prometheus reuses its connection
    ka_times = []
    c = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
    ka_ok = True
    for i in range(a.scrapes):
        t = time.perf_counter()
        try:
            c.request("GET", "/metrics")
            r = c.getresponse()
            r.read()
            ka_times.append(time.perf_counter() - t)
            if r.getheader("Connection", "").lower() == "close":
                ka_ok = False
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
        except (OSError, http.client.HTTPException):
            ka_ok = False
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
    c.close()

    # 2. scrapes under load
    load = None
    if a.load_seconds > 0:
        lj = os.path.join(work, "loadgen.json")
        urls = []
        for r in range(0, a.routes, max(1, a.routes // 60))[:60]:
            urls += ["--url", "http://127.0.0.1:%d/r%03d/x" % (port, r)]
        lg = spawn([loadgen] + urls + ["--rate", str(a.rate), "--connections", "50",
                                       "--duration", str(a.load_seconds), "--timeout", "5",
                                       "--json", lj], os.path.join(work, "loadgen.out"))
        time.sleep(1.0)
        l_times = []
        t_end = time.time() + a.load_seconds - 1.5
        while time.time() < t_end:
            t = time.time()
            st, hdr, body, dt = get(admin_port, "/metrics")
            if st == 200:
                l_times.append(dt)
            time.sleep(max(0.0, 0.2 - (time.time() - t)))
        lg.wait(a.load_seconds + 10)
        try:
            j = json.load(open(lj))["total"]
            load = {"times": l_times, "ok": j["answered"]["2xx"], "sched": j["scheduled"],
                    "status": j["status"], "p99": j["latency_us"]["p99"] / 1000,
                    "errors": {k: v for k, v in j["errors"].items() if v}}
        except (OSError, ValueError, KeyError) as e:
            load = {"times": l_times, "error": str(e)}

    # final body, validation
    st, hdr, body_final, _ = get(admin_port, "/metrics")
    with open(os.path.join(work, "metrics.txt"), "wb") as f:
        f.write(body_final)
    with open(os.path.join(work, "status.json"), "wb") as f:
        f.write(s_body[1])
    prom = None
    if shutil.which("promtool"):
        pr = subprocess.run(["promtool", "check", "metrics"], input=body_final,
                            capture_output=True)
        prom = (pr.returncode, (pr.stdout + pr.stderr).decode(errors="replace").strip())
    alive = gw.poll() is None
    stop(gw)
    warn = [l for l in open(glog, errors="replace").read().splitlines()
            if re.match(r"^\S+ (warn|error)", l)]

    # ---------------------------------------------------------------- report
    ma = analyse_metrics(m_bodies[0][1])
    mb = analyse_metrics(body_final)
    sj = json.loads(s_body[1])
    slow = lambda xs: sum(1 for x in xs if x > 0.03)
    ms = lambda xs: "%.2f / %.2f / %.2f; %d over 30 ms" % (
        statistics.median(xs) * 1000, pct(xs, 0.9) * 1000, max(xs) * 1000, slow(xs))
    print("gateway: %s; %d workers; config: %d routes, %d upstreams x %d servers (%d stubs + "
          "a dead port in %d upstreams), 10 flags" % (
              gateway, a.workers, a.routes, a.upstreams, a.servers, a.stubs,
              max(1, a.upstreams // 10)))
    print("machine: %d cores, load average %s" % (os.cpu_count(), open("/proc/loadavg").read().split()[:3]))
    print("traffic before scraping: %d requests in %.1f s, answers %s" % (
        sum(codes.values()), t_traffic,
        ", ".join("%s: %d" % (k, v) for k, v in sorted(codes.items(), key=lambda kv: str(kv[0])))))
    print()
    print("| endpoint | bytes | lines | series | families | time ms median / p90 / max (%d scrapes, fresh connection) | gateway CPU ms per scrape |" % a.scrapes)
    print("|---|---|---|---|---|---|---|")
    print("| GET /metrics (first) | %d | %d | %d | %d | %s | %.2f |" % (
        ma["bytes"], ma["lines"], ma["series"], ma["families"], ms(m_times), cpu_m * 1000 / a.scrapes))
    print("| GET /metrics (after the load) | %d | %d | %d | %d | | |" % (
        mb["bytes"], mb["lines"], mb["series"], mb["families"]))
    print("| GET /status | %d | | %d routes, %d upstreams, %d servers, %d flags | | %s | %.2f |" % (
        len(s_body[1]), len(sj["routes"]), len(sj["upstreams"]),
        sum(len(u["servers"]) for u in sj["upstreams"]), len(sj["flags"]), ms(s_times),
        cpu_s * 1000 / a.scrapes))
    print("| GET /metrics, one keep-alive connection | | | | | %s (%d scrapes)%s | |" % (
        ms(ka_times) if ka_times else "-", len(ka_times),
        "" if ka_ok else "; the admin API closed the connection between scrapes"))
    print()
    if ka_times and slow(ka_times) >= max(3, 0.1 * len(ka_times)):
        print("NOTE: %d of %d keep-alive scrapes took over 30 ms (%d of %d on fresh connections), "
              "~40 ms more than the others: the mark of Nagle's algorithm (no TCP_NODELAY on the "
              "admin connection, an answer written in several pieces) meeting the scraper's "
              "delayed ACK once the connection leaves TCP quick-ACK mode. Prometheus keeps its "
              "connections alive." % (slow(ka_times), len(ka_times), slow(m_times), len(m_times)))
    if load:
        if "error" in load:
            print("under load: %s" % load["error"])
        elif load["times"]:
            print("GET /metrics under load (loadgen %d req/s over 60 routes, %d s, %d scrapes): %s "
                  "(ms: median / p90 / max); the load: %d of %d answered 2xx (others %s, errors %s), p99 %.2f ms" % (
                      a.rate, a.load_seconds, len(load["times"]), ms(load["times"]), load["ok"],
                      load["sched"], {k: v for k, v in load["status"].items() if not k.startswith("2")},
                      load["errors"] or "none", load["p99"]))
    print("gateway RSS: %d KiB before the scrapes, %d after %d /metrics, %d after %d /status" % (
        rss0, rss1, a.scrapes, rss2, a.scrapes))
    print("Content-Type: %s" % m_bodies[0][0].get("Content-Type"))
    top = sorted(mb["by_family"].items(), key=lambda kv: -kv[1])
    print("series by family (after the load): " + ", ".join("%s %d" % kv for kv in top[:8]) +
          (", %d more families with %d series" % (len(top) - 8, sum(v for _, v in top[8:])) if len(top) > 8 else ""))
    if prom is not None:
        print("promtool check metrics: exit %d%s" % (prom[0], (": " + prom[1].replace("\n", "; ")[:1500]) if prom[1] else ""))
    else:
        print("promtool: not installed, not validated")
    print("gateway alive at the end: %s; log warnings/errors: %d%s" % (
        alive, len(warn), (" (first: %s)" % warn[0][:200]) if warn else ""))


if __name__ == "__main__":
    main()

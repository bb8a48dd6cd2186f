#!/usr/bin/env python3
"""Resilience side by side: the same faults against the gateway, nginx and HAProxy.

Run it through bench/resilience_compare.sh (which builds the binaries); see
`bench/resilience_compare.sh --help` and bench/README.md ("resilience_compare").

Per run: three fresh upstream_stub processes (each counts the requests it
receives per 10 ms of their kernel receive time, --timeline), one fresh proxy
from bench/resilience/{gateway.yaml,nginx.conf,haproxy.cfg}, one open-loop
loadgen (--log: how every request ended). The fault hits stub 0 (or all
three) at --fault-at and ends at --recover-at. Everything is read back from
those files: nothing depends on the proxies' own counters.
"""
import argparse
import datetime
import json
import os
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import http.client

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROXIES = ("gateway", "nginx", "haproxy")
FAULTS = ("kill", "blackhole", "slow", "503", "503-post", "all-503")
FAULT_TEXT = {
    "kill": "one server killed (kill -9), restarted at the end",
    "blackhole": "one server black-holed (SIGSTOP: connects succeed, nothing answers), SIGCONT at the end",
    "slow": "one server 2 s slow (its /healthz too)",
    "503": "one server answers 503, its /healthz 200",
    "503-post": "as 503, the load is POST (no Idempotency-Key)",
    "all-503": "all three servers answer 503 (/healthz 200), healthy again at the end",
}
BUCKET = 0.01  # s, the analysis resolution (the stubs' --timeline-ms 10)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def die(msg):
    log("resilience_compare: " + msg)
    sys.exit(1)


# ------------------------------------------------------------- processes

CHILDREN = []


def _stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    return s[s.rfind(")") + 2:].split()


def process_tree(root):
    kids = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                kids.setdefault(int(_stat_fields(int(name))[1]), []).append(int(name))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if os.path.exists("/proc/%d" % p):
            out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_of(pids):
    t = 0
    for p in pids:
        try:
            f = _stat_fields(p)
            t += int(f[11]) + int(f[12])
        except (OSError, IndexError, ValueError):
            pass
    return t / CLK_TCK


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4] - v[7]) / CLK_TCK


def spawn(argv, out, stamp=False):
    """Start argv in its own process group. out: a file path. stamp: prefix every
    output line with the wall-clock time it was read (proxies' logs)."""
    if stamp:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True, cwd=ROOT)
        f = open(out, "w")

        def pump():
            for line in iter(p.stdout.readline, b""):
                f.write("%.3f %s" % (time.time(), line.decode(errors="replace")))
                f.flush()
            f.close()

        th = threading.Thread(target=pump, daemon=True)
        th.start()
        p.pump = th
    else:
        with open(out, "w") as f:
            p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True, cwd=ROOT)
        p.pump = None
    CHILDREN.append(p)
    return p


def stop(p, sig=signal.SIGTERM, wait=3.0):
    """Stop a child we started, with its process group (nginx: master + worker)."""
    if p is None:
        return
    tree = process_tree(p.pid) if p.poll() is None else []
    for s in (signal.SIGCONT, sig):  # a stopped stub must wake up to die
        try:
            os.killpg(p.pid, s)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        p.wait(wait)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        p.wait()
    for q in tree:
        if q != p.pid and os.path.exists("/proc/%d" % q):
            try:
                os.kill(q, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if p.pump:
        p.pump.join(2)
    if p in CHILDREN:
        CHILDREN.remove(p)


def stop_all():
    for p in list(CHILDREN):
        stop(p, wait=2.0)


def on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def http_status(port, path="/small", timeout=1.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def wait_for(path, pattern, timeout=3.0, after=0):
    """Wait until file `path` has more than `after` lines matching `pattern`."""
    t_end = time.time() + timeout
    rx = re.compile(pattern, re.M)
    while time.time() < t_end:
        try:
            txt = open(path, errors="replace").read()
        except OSError:
            txt = ""
        m = rx.findall(txt)
        if len(m) > after:
            return m[-1]
        time.sleep(0.002)
    return None


# -------------------------------------------------------------------- stubs


class Stub:
    def __init__(self, a, d, name, port=0):
        self.a, self.d, self.name = a, d, name
        self.out = os.path.join(d, name + ".out")
        self.timeline = os.path.join(d, name + ".timeline")
        argv = [a.stub, "--slow-ms", "2000", "--timeline", self.timeline, "--timeline-ms",
                str(int(BUCKET * 1000)), "--timeline-max-s", "300"]
        if port:
            argv += ["--port", str(port)]
        self.p = spawn(argv, self.out)
        m = wait_for(self.out, r"^listening on 127\.0\.0\.1:(\d+)", 5.0)
        if not m:
            die("upstream_stub did not start: " + open(self.out).read())
        self.port = int(m)

    def signal(self, sig, expect=None):
        n = len(re.findall(expect, open(self.out).read(), re.M)) if expect else 0
        os.kill(self.p.pid, sig)
        if expect and wait_for(self.out, expect, 2.0, n) is None:
            log("warning: %s did not say '%s' after signal %d" % (self.name, expect, sig))

    def flush_timeline(self):
        """SIGHUP: the stub rewrites its timeline, then prints a stats line."""
        self.signal(signal.SIGHUP, r"^stats ")


# ------------------------------------------------------------------ configs


def fill(template, values):
    """The template with @NAME@ filled in (comment lines are left as they are)."""
    lines = []
    for line in open(os.path.join(HERE, template)).read().splitlines(True):
        if not line.lstrip().startswith("#"):
            for k, v in values.items():
                line = line.replace("@%s@" % k, str(v))
        lines.append(line)
    s = "".join(lines)
    left = re.findall(r"@[A-Z0-9_]+@", "".join(l for l in lines if not l.lstrip().startswith("#")))
    if left:
        die("%s: unfilled placeholders %s" % (template, " ".join(sorted(set(left)))))
    return s


def gateway_conf(a, port, sports, hedge):
    s = fill("gateway.yaml", {"PORT": port, "S0": sports[0], "S1": sports[1], "S2": sports[2],
                              "BALANCE": "least_request" if a.balance == "least" else "round_robin"})
    if not hedge:
        s = "".join(l for l in s.splitlines(True) if not re.search(r"#\s*hedge\s*$", l))
    return s


def nginx_conf(a, port, sports, d):
    return fill("nginx.conf", {"PORT": port, "S0": sports[0], "S1": sports[1], "S2": sports[2],
                               "DIR": d, "BALANCE": "least_conn;" if a.balance == "least" else ""})


def haproxy_cfg(a, port, sports):
    return fill("haproxy.cfg", {"PORT": port, "S0": sports[0], "S1": sports[1], "S2": sports[2],
                                "BALANCE": "leastconn" if a.balance == "least" else "roundrobin"})


def hedge_supported(gateway):
    """Does this gateway accept retry.hedge? (gateway -t on a config with it)"""
    a = argparse.Namespace(balance="least")
    d = "/tmp/resilience-hedge-check-%d" % os.getpid()
    os.makedirs(d, exist_ok=True)
    cfg = os.path.join(d, "gateway.yaml")
    with open(cfg, "w") as f:
        f.write(gateway_conf(a, 1, (2, 3, 4), True))
    r = subprocess.run([gateway, "-t", "-c", cfg], capture_output=True, text=True)
    os.remove(cfg)
    os.rmdir(d)
    return r.returncode == 0, (r.stdout + r.stderr).strip().replace(cfg, "gateway.yaml")


def start_proxy(a, name, d, sports):
    (port,) = free_ports(1)
    logf = os.path.join(d, name + ".log")
    if name == "gateway":
        cfg = os.path.join(d, "gateway.yaml")
        with open(cfg, "w") as f:
            f.write(gateway_conf(a, port, sports, a.hedge))
        chk = subprocess.run([a.gateway, "-t", "-c", cfg], capture_output=True, text=True)
        if chk.returncode != 0:
            die("the gateway refuses %s:\n%s" % (cfg, chk.stdout + chk.stderr))
        argv = [a.gateway, "-c", cfg]
    elif name == "nginx":
        cfg = os.path.join(d, "nginx.conf")
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        with open(cfg, "w") as f:
            f.write(nginx_conf(a, port, sports, d))
        argv = ["nginx", "-e", "stderr", "-p", d + "/", "-c", cfg]
    else:
        cfg = os.path.join(d, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(haproxy_cfg(a, port, sports))
        argv = ["haproxy", "-db", "-f", cfg]
    p = spawn(argv, logf, stamp=True)
    t_end = time.time() + 10
    last = None
    while time.time() < t_end and p.poll() is None:
        try:
            if http_status(port) == 200:
                return p, port
            last = "not 200"
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    time.sleep(0.1)
    die("%s did not answer 200 on 127.0.0.1:%d (%s); its log:\n%s" % (
        name, port, last if p.poll() is None else "exited %s" % p.returncode,
        open(logf, errors="replace").read()[-3000:]))


# ------------------------------------------------------------------ one run


def sleep_until(t):
    dt = t - time.time()
    if dt > 0:
        time.sleep(dt)


def run_one(a, fault, proxy, rnd, d):
    os.makedirs(d, exist_ok=True)
    stubs = [Stub(a, d, "stub%d" % i) for i in range(3)]
    sports = [s.port for s in stubs]
    pp, port = start_proxy(a, proxy, d, sports)
    # keep-alive connections to every server, as a proxy that has been running has them
    for _ in range(30):
        try:
            http_status(port)
        except OSError:
            pass
    time.sleep(1.1)  # two rounds of health checks
    post = fault == "503-post"
    argv = [a.loadgen, "--url", "http://127.0.0.1:%d/small" % port, "--rate", str(a.rate),
            "--connections", str(a.connections), "--max-connections", str(a.max_connections),
            "--duration", str(a.duration), "--timeout", str(a.client_timeout),
            "--connect-first", "5", "--json", os.path.join(d, "loadgen.json"),
            "--log", os.path.join(d, "loadgen.log")]
    if post:
        argv += ["--method", "POST", "--body-size", str(a.post_body)]
    errf = os.path.join(d, "loadgen.err")
    busy0 = machine_busy()
    gen = spawn(argv, errf)
    m = wait_for(errf, r"clock started.*\(realtime (\d+\.\d+)\)", 10.0)
    if not m:
        stop(gen)
        die("loadgen did not start its clock: " + open(errf).read())
    t0 = float(m)
    ptree = process_tree(pp.pid)
    cpu0 = cpu_of(ptree)
    s0 = stubs[0]
    events = []
    restarted = None

    def at(t, what, fn):
        sleep_until(t0 + t)
        t_before = time.time()
        fn()
        events.append({"what": what, "t": t_before - t0, "t_after": time.time() - t0})

    if fault == "kill":
        def kill():
            s0.flush_timeline()  # what it received so far, before it dies
            os.kill(s0.p.pid, signal.SIGKILL)
            s0.p.wait()

        def restart():
            nonlocal restarted
            restarted = Stub(a, d, "stub0b", port=sports[0])

        at(a.fault_at, "kill -9 stub0", kill)
        at(a.recover_at, "stub0 restarted", restart)
    elif fault == "blackhole":
        at(a.fault_at, "SIGSTOP stub0", lambda: os.kill(s0.p.pid, signal.SIGSTOP))
        at(a.recover_at, "SIGCONT stub0", lambda: os.kill(s0.p.pid, signal.SIGCONT))
    elif fault == "slow":
        at(a.fault_at, "stub0 slow", lambda: s0.signal(signal.SIGUSR1, r"^fault slow on"))
        at(a.recover_at, "stub0 fast", lambda: s0.signal(signal.SIGUSR1, r"^fault slow off"))
    elif fault in ("503", "503-post"):
        at(a.fault_at, "stub0 503", lambda: s0.signal(signal.SIGUSR2, r"^fault 503 on"))
        at(a.recover_at, "stub0 200", lambda: s0.signal(signal.SIGUSR2, r"^fault 503 off"))
    elif fault == "all-503":
        def all_sig(on):
            def f():
                for s in stubs:
                    os.kill(s.p.pid, signal.SIGUSR2)
                for s in stubs:
                    if wait_for(s.out, r"^fault 503 %s" % on, 2.0) is None:
                        log("warning: %s did not switch 503 %s" % (s.name, on))
            return f

        at(a.fault_at, "all stubs 503", all_sig("on"))
        at(a.recover_at, "all stubs 200", all_sig("off"))
    try:
        gen.wait(a.duration + a.client_timeout + 20)
    except subprocess.TimeoutExpired:
        log("warning: loadgen still running; interrupting it")
        gen.send_signal(signal.SIGINT)
        gen.wait(10)
    CHILDREN.remove(gen)
    t_end = time.time()
    cpu1 = cpu_of(ptree)
    busy1 = machine_busy()
    try:
        with open(os.path.join(d, "loadgen.json")) as f:
            lgjs = json.load(f)
    except (OSError, ValueError):
        die("loadgen wrote no JSON: " + open(errf).read()[-2000:])
    for s in stubs + [restarted]:
        if s and s.p.poll() is None:
            stop(s.p)  # SIGTERM: the stub rewrites its timeline and exits
    stop(pp)
    wall = t_end - t0
    meta = {
        "fault": fault, "proxy": proxy, "round": rnd, "t0": t0, "t_end": t_end,
        "fault_at": a.fault_at, "recover_at": a.recover_at, "duration": a.duration,
        "rate": a.rate, "events": events, "stub_ports": sports, "port": port,
        "post": post, "hedge": a.hedge if proxy == "gateway" else None,
        "loadgen_argv": " ".join(shlex.quote(x) for x in argv),
        "proxy_cores": (cpu1 - cpu0) / wall if wall > 0 else 0,
        "machine_cores": (busy1 - busy0) / wall if wall > 0 else 0,
        "loadavg": open("/proc/loadavg").read().split()[0],
        "max_tick_gap_ms": lgjs.get("max_tick_gap_us", 0) / 1e3,
        "stub_files": ["stub0", "stub1", "stub2"] + (["stub0b"] if restarted else []),
    }
    with open(os.path.join(d, "run.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


# ----------------------------------------------------------------- analysis


def read_loadgen_log(path):
    """[(due_s, end_s, outcome)] with outcome an int status or an error name."""
    out = []
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                continue
            due, end, oc, _url = line.split()
            out.append((int(due) / 1e6, int(end) / 1e6, int(oc) if oc.isdigit() else oc))
    return out


def read_timeline(path, t0):
    """{bucket index (BUCKET s from t0): [requests, healthz, answered_503]}."""
    out = {}
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                continue
            t_ms, r, h, x = (int(v) for v in line.split())
            i = int(round((t_ms / 1000.0 - t0) / BUCKET))
            e = out.setdefault(i, [0, 0, 0])
            e[0] += r
            e[1] += h
            e[2] += x
    return out


class Series:
    """Counts per BUCKET from the loadgen's start, with prefix sums for windows."""

    def __init__(self, n):
        self.n = n
        self.v = [0] * n
        self._pre = None

    def add(self, i, k=1):
        if 0 <= i < self.n:
            self.v[i] += k
            self._pre = None

    def sum(self, t_from, t_to):
        if self._pre is None:
            self._pre = [0]
            for x in self.v:
                self._pre.append(self._pre[-1] + x)
        i = max(0, min(self.n, int(round(t_from / BUCKET))))
        j = max(0, min(self.n, int(round(t_to / BUCKET))))
        return self._pre[j] - self._pre[i] if j > i else 0


def analyse(d):
    m = json.load(open(os.path.join(d, "run.json")))
    t0 = m["t0"]
    reqs = read_loadgen_log(os.path.join(d, "loadgen.log"))
    n_b = int((m["duration"] + 30) / BUCKET)
    fault_t = m["events"][0]["t"] if m["events"] else m["fault_at"]
    rec_t = m["events"][1]["t"] if len(m["events"]) > 1 else m["recover_at"]
    sent = len(reqs)
    ok = sum(1 for r in reqs if isinstance(r[2], int) and 200 <= r[2] < 300)
    lat = sorted(r[1] - r[0] for r in reqs)
    status, errors = {}, {}
    for r in reqs:
        if isinstance(r[2], int):
            status[r[2]] = status.get(r[2], 0) + 1
        else:
            errors[r[2]] = errors.get(r[2], 0) + 1
    delayed = sum(1 for x in lat if x > 0.25)

    def pct(p):
        return lat[min(len(lat) - 1, int(p / 100.0 * len(lat)))] if lat else 0

    due = Series(n_b)
    good, bad, slow = Series(n_b), Series(n_b), Series(n_b)
    for r in reqs:
        i = int(r[0] / BUCKET)
        due.add(i)
        if isinstance(r[2], int) and 200 <= r[2] < 300:
            good.add(i)
        else:
            bad.add(i)
        if r[1] - r[0] > 0.25:
            slow.add(i)
    # the stubs: stub0 (and its restart, stub0b) is the faulty one
    per_stub = {}
    for name in m["stub_files"]:
        per_stub[name] = read_timeline(os.path.join(d, name + ".timeline"), t0)
    srv = {k: Series(n_b) for k in ("stub0", "stub1", "stub2")}
    hz = Series(n_b)
    total_up = 0
    for name, tl in per_stub.items():
        key = "stub0" if name == "stub0b" else name
        for i, (r, h, _x) in tl.items():
            if i >= 0:
                srv[key].add(i, r)
                hz.add(i, h)
                total_up += r if i < n_b else 0
    allsrv = Series(n_b)
    for s in srv.values():
        for i, x in enumerate(s.v):
            allsrv.add(i, x)
    faulty = allsrv if m["fault"] == "all-503" else srv["stub0"]

    def ratio(s, a, b):
        n = due.sum(a, b)
        return s.sum(a, b) / n if n else 0.0

    # worst 1 s window of upstream load, windows starting from the fault to
    # the recovery (the last one is the first second after it)
    worst, worst_t = 0.0, None
    t = fault_t
    while t <= rec_t + 1e-9:
        x = ratio(allsrv, t, t + 1)
        if x > worst:
            worst, worst_t = x, t
        t += BUCKET
    # eject: the first 1 s window in the fault where the faulty server got at
    # most 1% of the requests due in it (all-503: the three got at most 10%)
    eject = None
    limit = 0.10 if m["fault"] == "all-503" else 0.01
    if m["fault"] != "kill":
        t = fault_t
        while t + 1 <= rec_t + 1e-9:
            if faulty.sum(t, t + 1) <= limit * due.sum(t, t + 1):
                eject = t - fault_t
                break
            t += BUCKET
    # after recovery (single-server faults, when the server was ejected):
    # readmitted = the first 200 ms window in which it gets >= 2% of the
    # requests due (it takes part again); full = the first 1 s window in which
    # it gets >= 30% (90% of its fair third)
    back = full = None if m["fault"] == "kill" or eject is not None else "-"  # "-": not ejected
    if back is None and m["fault"] != "all-503":
        t = rec_t
        while t + 0.2 <= m["duration"]:
            if srv["stub0"].sum(t, t + 0.2) >= 0.02 * due.sum(t, t + 0.2):
                back = t - rec_t
                break
            t += BUCKET
        if back is None:  # not within the run
            back = ">%.1f" % (m["duration"] - 0.2 - rec_t)
        t = rec_t
        while t + 1 <= m["duration"]:
            if srv["stub0"].sum(t, t + 1) >= 0.3 * due.sum(t, t + 1):
                full = t - rec_t
                break
            t += BUCKET
        if full is None:
            full = ">%.1f" % (m["duration"] - 1 - rec_t)
    # first 2xx after recovery (all-503): the first 2xx answer that ended after it
    first_ok = None
    if m["fault"] == "all-503":
        ends = [r[1] for r in reqs if isinstance(r[2], int) and 200 <= r[2] < 300 and r[1] >= rec_t]
        first_ok = min(ends) - rec_t if ends else None
    # faulty server's share of the requests due during the fault
    share = faulty.sum(fault_t, rec_t) / max(1, due.sum(fault_t, rec_t))
    per_s = []
    for s in range(int(m["duration"])):
        per_s.append(round(ratio(allsrv, s, s + 1), 2))
    res = {
        "sent": sent, "ok": ok, "errors": sent - ok, "delayed": delayed,
        "p50_ms": pct(50) * 1e3, "p99_ms": pct(99) * 1e3, "p999_ms": pct(99.9) * 1e3,
        "max_ms": (lat[-1] * 1e3) if lat else 0,
        "upstream": total_up, "load_ratio": total_up / sent if sent else 0,
        "worst_1s": worst, "worst_1s_at": worst_t, "eject_s": eject, "back_s": back, "full_s": full,
        "first_ok_s": first_ok, "faulty_share": share, "fault_t": fault_t, "rec_t": rec_t,
        "status": {str(k): v for k, v in sorted(status.items())}, "transport": errors,
        "load_per_s": per_s,
        "faulty_per_s": [faulty.sum(s, s + 1) for s in range(int(m["duration"]) + 1)],
        "bad_per_s": [bad.sum(s, s + 1) for s in range(int(m["duration"]) + 1)],
        "slow_per_s": [slow.sum(s, s + 1) for s in range(int(m["duration"]) + 1)],
        "healthz": sum(hz.v),
    }
    # a per-100 ms CSV for plots
    with open(os.path.join(d, "timeline.csv"), "w") as f:
        f.write("t_s,due,ok,failed,delayed_250ms,stub0,stub1,stub2,healthz\n")
        step = 0.1
        t = 0.0
        while t < m["duration"] + 2:
            f.write("%.1f,%d,%d,%d,%d,%d,%d,%d,%d\n" % (
                t, due.sum(t, t + step), good.sum(t, t + step), bad.sum(t, t + step),
                slow.sum(t, t + step), srv["stub0"].sum(t, t + step),
                srv["stub1"].sum(t, t + step), srv["stub2"].sum(t, t + step),
                hz.sum(t, t + step)))
            t += step
    res["proxy_events"] = proxy_events(m["proxy"], os.path.join(d, m["proxy"] + ".log"), t0,
                                       m["stub_ports"])
    return m, res


EVENT_RX = {
    "gateway": r"eject|returns after|is down|is up|breaker|not ejected|no healthy",
    "nginx": r"temporarily disabled",
    "haproxy": r"is DOWN|is UP|has no server available|back in|going down",
}
COUNT_RX = {  # per-request messages: counted, not listed
    "gateway": [],
    "nginx": [("upstream timed out", "timed out"), ("no live upstreams", "no live upstreams"),
              ("Connection refused", "connection refused"),
              ("upstream prematurely closed", "premature close")],
    "haproxy": [],
}


def proxy_events(proxy, logf, t0, ports):
    """The proxy's state changes (ejections, health, breaker) with their times
    from the start of the load; the same message repeated within 1.5 s of its
    previous occurrence is one line with a count. Per-request messages
    (COUNT_RX) are only counted."""
    groups, counts = [], {}
    if not os.path.exists(logf):
        return {"events": [], "counts": {}}
    rx = re.compile(EVENT_RX[proxy])
    names = {str(p): "s%d" % i for i, p in enumerate(ports)}
    last = {}
    for line in open(logf, errors="replace"):
        try:
            ts, rest = line.split(" ", 1)
            t = float(ts) - t0
        except ValueError:
            continue
        for pat, name in COUNT_RX[proxy]:
            if pat in rest:
                counts[name] = counts.get(name, 0) + 1
        if not rx.search(rest):
            continue
        msg = rest.strip()
        msg = re.sub(r"^\d{4}[-/]\d\d[-/]\d\d[T ][\d:.]+Z? ", "", msg)  # own timestamps
        up = re.search(r'upstream: "http://127\.0\.0\.1:(\d+)', msg)
        msg = re.sub(r", client: .*", "", msg)
        msg = re.sub(r"\d+#\d+: \*\d+ ", "", msg)  # nginx pid#tid: *conn
        msg = re.sub(r"\s*\(\d+\) :", ":", msg)  # HAProxy (pid)
        msg = re.sub(r"(, check duration: \d+ms)?\. \d+ active and \d+ backup servers.*", "", msg)
        msg = re.sub(r"127\.0\.0\.1:(\d+)", lambda m: names.get(m.group(1), m.group(0)), msg)
        if up:
            msg += " (%s)" % names.get(up.group(1), up.group(1))
        g = last.get(msg)
        if g and t - g["t1"] <= 1.5:
            g["t1"], g["n"] = t, g["n"] + 1
        else:
            g = {"t0": t, "t1": t, "n": 1, "msg": msg[:170]}
            last[msg] = g
            groups.append(g)
    ev = []
    for g in groups:
        if g["n"] == 1:
            ev.append("t=%.2fs %s" % (g["t0"], g["msg"]))
        else:
            ev.append("t=%.2f-%.2fs %s (x%d)" % (g["t0"], g["t1"], g["msg"], g["n"]))
    return {"events": ev, "counts": counts}


# ------------------------------------------------------------------- report


def fnum(x, nd=0):
    if x is None:
        return "-"
    return ("%." + str(nd) + "f") % x


def cell(vals, fmt):
    vals = list(vals)
    if len(vals) <= 3:
        return " / ".join(fmt(v) for v in vals)
    xs = [v for v in vals if isinstance(v, (int, float))]
    if not xs:
        return "-"
    return "%s [%s-%s]" % (fmt(statistics.median(xs)), fmt(min(xs)), fmt(max(xs)))


def secs(x, never):
    if isinstance(x, str):
        return x
    return never if x is None else "%.2f" % x


def report(a, runs, header):
    L = list(header)
    L.append("")
    L.append("Per cell the runs in order (`a / b`). errors: non-2xx answers + transport errors "
             "(of %d requests per run); delayed: requests that ended (answered or failed) more "
             "than 250 ms after they were due; p99: of the same times (ms); load: requests the "
             "three stubs received / requests sent, the whole run, and the worst 1 s window "
             "starting between the fault and the recovery (so the first second after it "
             "counts); faulty share: what the faulty server(s) received during the fault / "
             "requests due then (a third = untouched); eject: seconds from the fault to the "
             "first 1 s window in which the faulty server got <= 1%% of the requests due (all-503: the "
             "three got <= 10%%, i.e. the proxy stopped sending) "
             "(`never`: not within the fault; kill: not measurable, a dead server receives "
             "nothing); back: seconds from the recovery to the first 200 ms window in which "
             "the server got >= 2%% of the requests again (readmitted), and to the first 1 s "
             "window in which it got >= 30%% (its full third, give or take; a slow start "
             "shows here) (`-`: it was never ejected; `>N`: not within the run); first 2xx: seconds from the recovery "
             "to the first 2xx answer (all-503)." % int(a.rate * a.duration))
    L.append("")
    L.append("| fault | proxy | errors | delayed > 250 ms | p99 ms | load (run) | load (worst 1 s) "
             "| faulty share | eject s | back s (readmitted) | back s (full share) | first 2xx s |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for f in a.only:
        for px in a.proxies:
            rs = [r for r in runs if r[0]["fault"] == f and r[0]["proxy"] == px]
            if not rs:
                continue
            R = [r[1] for r in rs]
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                f, px + (" (hedge)" if px == "gateway" and rs[0][0].get("hedge") else ""),
                cell((r["errors"] for r in R), lambda v: "%d" % v),
                cell((r["delayed"] for r in R), lambda v: "%d" % v),
                cell((r["p99_ms"] for r in R), lambda v: "%.0f" % v if v >= 10 else "%.1f" % v),
                cell((r["load_ratio"] for r in R), lambda v: "%.2fx" % v),
                cell((r["worst_1s"] for r in R), lambda v: "%.2fx" % v),
                cell((r["faulty_share"] for r in R), lambda v: "%.2f" % v),
                "-" if f == "kill" else cell((r["eject_s"] for r in R),
                                             lambda v: secs(v, "never")),
                "-" if f == "all-503" else cell((r["back_s"] for r in R),
                                                lambda v: secs(v, "not back")),
                "-" if f == "all-503" else cell((r.get("full_s") for r in R),
                                                lambda v: secs(v, "not back")),
                cell((r["first_ok_s"] for r in R), lambda v: secs(v, "none"))
                if f == "all-503" else "-"))
    L.append("")
    L.append("### Details per run")
    L.append("")
    for m, r in runs:
        st = " ".join("%s=%s" % kv for kv in r["status"].items())
        tr = " ".join("%s=%d" % kv for kv in r["transport"].items() if kv[1])
        L.append("- **%s / %s / run %d**: %d sent, %s%s; p50 %.1f ms, p99.9 %.0f ms, max %.0f ms; "
                 "stubs got %d (+%d health checks); proxy %.2f cores, machine %.2f cores "
                 "(load avg %s), loadgen max tick gap %.1f ms; fault at %.3f s, recovery at "
                 "%.3f s; worst 1 s load from t=%s s" % (
                     m["fault"], m["proxy"], m["round"], r["sent"], st,
                     (", transport errors " + tr) if tr else "", r["p50_ms"], r["p999_ms"],
                     r["max_ms"], r["upstream"], r["healthz"], m["proxy_cores"],
                     m["machine_cores"], m["loadavg"], m["max_tick_gap_ms"], r["fault_t"],
                     r["rec_t"], fnum(r["worst_1s_at"], 2)))
        L.append("  - load per second (stubs / sent): " + " ".join("%g" % x for x in r["load_per_s"]))
        L.append("  - %s received per second: " % ("the stubs" if m["fault"] == "all-503" else "s0")
                 + " ".join(str(x) for x in r.get("faulty_per_s", [])))
        if any(r["bad_per_s"]):
            L.append("  - failed per second: " + " ".join(str(x) for x in r["bad_per_s"]))
        if any(r["slow_per_s"]):
            L.append("  - delayed > 250 ms per second: " + " ".join(str(x) for x in r["slow_per_s"]))
        pe = r["proxy_events"]
        if pe["counts"]:
            L.append("  - %s log: %s" % (m["proxy"], ", ".join(
                "%s x%d" % kv for kv in sorted(pe["counts"].items()))))
        evs = pe["events"]
        for e in evs[:10]:
            L.append("  - " + e)
        if len(evs) > 10:
            L.append("  - ... %d more events" % (len(evs) - 10))
    return "\n".join(L) + "\n"


# --------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(prog="bench/resilience_compare.sh",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--proxies", default=",".join(PROXIES))
    ap.add_argument("--only", default=",".join(FAULTS), help="faults: " + ",".join(FAULTS))
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--out", default=None, help="keep every log, config and result here")
    ap.add_argument("--report", default=None, metavar="DIR",
                    help="print the tables again from a kept --out DIR and exit")
    ap.add_argument("--no-hedge", action="store_true", help="the gateway without retry.hedge")
    ap.add_argument("--balance", choices=("rr", "least"), default="least",
                    help="least (default): gateway least_request, nginx least_conn, HAProxy "
                         "leastconn; rr: round robin everywhere")
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=25)
    ap.add_argument("--fault-at", type=float, default=5)
    ap.add_argument("--recover-at", type=float, default=20)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--max-connections", type=int, default=2000)
    ap.add_argument("--client-timeout", type=float, default=5)
    ap.add_argument("--post-body", type=int, default=128)
    ap.add_argument("--gateway", required=False)
    ap.add_argument("--stub", required=False)
    ap.add_argument("--loadgen", required=False)
    a = ap.parse_args()

    if a.report:
        raw = json.load(open(os.path.join(a.report, "raw.json")))
        a.only, a.proxies = raw["faults"], raw["proxies"]
        a.rate, a.duration = raw["rate"], raw["duration"]
        runs = []
        for d in raw["runs"]:
            runs.append(analyse(os.path.join(a.report, d)))
        sys.stdout.write(report(a, runs, raw["header"]))
        return

    a.proxies = [p for p in a.proxies.split(",") if p]
    a.only = [f for f in a.only.split(",") if f]
    for p in a.proxies:
        if p not in PROXIES:
            die("unknown proxy %s (%s)" % (p, ",".join(PROXIES)))
    for f in a.only:
        if f not in FAULTS:
            die("unknown fault %s (%s)" % (f, ",".join(FAULTS)))
    if not 0 < a.fault_at < a.recover_at < a.duration:
        die("need 0 < --fault-at < --recover-at < --duration")
    for b in ("gateway", "stub", "loadgen"):
        v = getattr(a, b)
        if b == "gateway" and "gateway" not in a.proxies:
            continue
        if not v or not os.access(v, os.X_OK):
            die("--%s: not an executable: %s" % (b, v))
    for t in ("nginx", "haproxy"):
        if t in a.proxies and subprocess.run(["which", t], capture_output=True).returncode:
            die("%s is not installed (apt-get install nginx haproxy; or --proxies without it)" % t)

    hedge_note = "off (--no-hedge)"
    a.hedge = False
    if "gateway" in a.proxies and not a.no_hedge:
        ok, msg = hedge_supported(a.gateway)
        a.hedge = ok
        hedge_note = "on (`retry.hedge: {after: 50ms}`)" if ok else \
            "OFF: this gateway refuses the key (`gateway -t`: %s); run with --no-hedge to silence" % msg
        if not ok:
            log("WARNING: the gateway does not accept retry.hedge; running without it: " + msg)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    import tempfile
    keep = a.out is not None
    out = os.path.abspath(a.out) if keep else tempfile.mkdtemp(prefix="resilience-compare.")
    os.makedirs(out, exist_ok=True)
    plan = []
    for rnd in range(1, a.runs + 1):
        for fi, f in enumerate(a.only):
            k = (rnd - 1 + fi) % len(a.proxies)
            for px in a.proxies[k:] + a.proxies[:k]:
                plan.append((rnd, f, px))
    per_run = a.duration + 2.0  # measured: start-up, warm-up, drain and stop take ~1.5 s
    est = len(plan) * per_run
    started = datetime.datetime.now()
    cmd = "bench/resilience_compare.sh" + "".join(" " + shlex.quote(x) for x in sys.argv[1:])

    def first_line(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    header = [
        "# Resilience side by side: %s" % ", ".join(a.proxies),
        "",
        "- command: `%s`, started %s" % (cmd, started.strftime("%Y-%m-%d %H:%M:%S")),
        "- load: %d req/s open loop (`loadgen`, %d connections, up to %d), %g s per run, "
        "fault from %g s to %g s on server 0 of 3 (all three for all-503); %d run(s) per cell, "
        "proxies interleaved (order rotated)" % (a.rate, a.connections, a.max_connections,
                                               a.duration, a.fault_at, a.recover_at, a.runs),
        "- loads: GET /small; 503-post: POST /small with a %d-byte body and no "
        "Idempotency-Key (so the gateway may not retry or hedge it once sent; nginx does not "
        "pass a sent POST to another server; HAProxy has `disable-l7-retry if METH_POST`)" % (
            a.post_body),
        "- configs: bench/resilience/gateway.yaml (hedge %s, balance %s), nginx.conf, "
        "haproxy.cfg" % (hedge_note, a.balance),
        "- versions: gateway `%s`; %s; %s" % (
            first_line([a.gateway, "-v"]) if "gateway" in a.proxies else "-",
            first_line(["nginx", "-v"]) if "nginx" in a.proxies else "-",
            first_line(["haproxy", "-v"]) if "haproxy" in a.proxies else "-"),
        "- machine: %d cores, %s; load average at the start %s" % (
            os.cpu_count(), first_line(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo"]).split(
                ": ")[-1], open("/proc/loadavg").read().split()[0]),
    ]
    log("%d runs (%s x %s x %d), about %.0f s each: about %.1f min in all%s" % (
        len(plan), ",".join(a.only), ",".join(a.proxies), a.runs, per_run, est / 60,
        "; logs in " + out if keep else ""))
    log("gateway hedge: " + hedge_note)
    names, runs = [], []
    try:
        for i, (rnd, f, px) in enumerate(plan):
            name = "run/%s-%s-r%d" % (f, px, rnd)
            log("[%d/%d] %s %s run %d ..." % (i + 1, len(plan), f, px, rnd))
            run_one(a, f, px, rnd, os.path.join(out, name))
            m, r = analyse(os.path.join(out, name))
            log("        errors %d, delayed %d, p99 %.0f ms, load %.2fx (worst 1 s %.2fx), eject %s, "
                "back %s / %s, first 2xx %s" % (
                    r["errors"], r["delayed"], r["p99_ms"], r["load_ratio"], r["worst_1s"],
                    secs(r["eject_s"], "never") if f != "kill" else "-",
                    secs(r["back_s"], "not back") if f != "all-503" else "-",
                    secs(r["full_s"], "not back") if f != "all-503" else "-",
                    secs(r["first_ok_s"], "none") if f == "all-503" else "-"))
            names.append(name)
            runs.append((m, r))
            with open(os.path.join(out, "raw.json"), "w") as fh:
                json.dump({"header": header, "faults": a.only, "proxies": a.proxies,
                           "rate": a.rate, "duration": a.duration, "runs": names,
                           "results": [{"meta": m, "result": r} for m, r in runs]}, fh, indent=1)
    finally:
        stop_all()
    took = (datetime.datetime.now() - started).total_seconds()
    header.append("- took %.1f min" % (took / 60))
    txt = report(a, runs, header)
    sys.stdout.write("\n" + txt)
    if keep:
        with open(os.path.join(out, "report.md"), "w") as fh:
            fh.write(txt)
        with open(os.path.join(out, "raw.json"), "w") as fh:
            json.dump({"header": header, "faults": a.only, "proxies": a.proxies,
                       "rate": a.rate, "duration": a.duration, "runs": names,
                       "results": [{"meta": m, "result": r} for m, r in runs]}, fh, indent=1)
        log("report: %s/report.md" % out)
    else:
        import shutil
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()

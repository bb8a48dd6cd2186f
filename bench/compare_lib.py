#!/usr/bin/env python3
"""Measurement half of bench/compare (standard library only).

bench/compare starts the processes; this module measures them:

    compare_lib.py ports K             print K free loopback TCP ports
    compare_lib.py check URL LENGTH    GET URL, exit 0 if 200 with LENGTH body bytes
    compare_lib.py load [options]      interleaved wrk runs with /proc sampling -> JSON
    compare_lib.py idle [options]      RSS while N idle keep-alive connections are held -> JSON
    compare_lib.py report [options]    medians, ratios, markdown (stdout and a file)

The load and idle phases run against separately started (fresh) proxies, so
that memory kept from the load runs does not hide the cost of idle
connections.

Proxy processes are named by their root PID; CPU and memory are summed over
the root and all its descendants (nginx: master + workers). CPU time of a
process (utime+stime in /proc/PID/stat) already includes all its threads.
"""
import argparse
import datetime
import json
import os
import platform
import re
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
HERE = os.path.dirname(os.path.abspath(__file__))

# --------------------------------------------------------------------- /proc


def _stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    return s[s.rfind(")") + 2:].split()  # [0]=state [1]=ppid ... [11]=utime [12]=stime


def alive(pid):
    try:
        return _stat_fields(pid)[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def process_tree(root):
    """root PID and all its live descendants."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(name))[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if os.path.exists("/proc/%d" % p):
            out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids):
    total = 0
    for p in pids:
        try:
            f = _stat_fields(p)
            total += int(f[11]) + int(f[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def status_kib(pids, key):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def reset_hwm(pids):
    """Reset VmHWM to the current RSS (Linux >= 4.0, writing 5 to clear_refs)."""
    ok = True
    for p in pids:
        try:
            with open("/proc/%d/clear_refs" % p, "w") as f:
                f.write("5")
        except OSError:
            ok = False
    return ok


def system_jiffies():
    """(busy, steal) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    v += [0] * (10 - len(v))
    user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
    return user + nice + system + irq + softirq, steal


def established_on_port(port, pids):
    """ESTABLISHED sockets with local port `port` that belong to `pids`
    (so a client socket elsewhere that happens to use the same port number
    is not counted)."""
    inodes = set()
    for p in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % p)
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink("/proc/%d/fd/%s" % (p, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    n = 0
    hexport = ":%04X" % port
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1].endswith(hexport) and parts[3] == "01" and parts[9] in inodes:
                        n += 1
        except OSError:
            pass
    return n


# ---------------------------------------------------------------------- misc


def free_ports(k):
    socks, ports = [], []
    for _ in range(k):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def check(url, length):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read()
            return r.status == 200 and len(body) == length
    except Exception:
        return False


def run_cmd(argv, timeout=10):
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout)
        return p.stdout.decode("utf-8", "replace").strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return "(%s)" % e


def source_tree():
    """Commit of the checkout and whether tracked files differ from it (read-only git)."""
    head = run_cmd(["git", "-C", os.path.dirname(HERE), "rev-parse", "--short", "HEAD"])
    if not re.match(r"^[0-9a-f]{4,}$", head):
        return "unknown"
    dirty = run_cmd(["git", "--no-optional-locks", "-C", os.path.dirname(HERE), "status",
                     "--porcelain", "--untracked-files=no"])
    n = len([l for l in dirty.splitlines() if l.strip()])
    return "commit %s%s" % (head, " + %d modified tracked file(s)" % n if n else ", clean")


def first_line(s):
    return s.splitlines()[0].strip() if s else ""

# ----------------------------------------------------------------------- wrk

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def _ms(tok):
    m = re.match(r"^([0-9.]+)(us|ms|s|m|h)$", tok)
    if not m:
        return None
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(text):
    r = {"rps": None, "p50": None, "p99": None, "requests": 0, "errors": 0,
         "non2xx": 0, "socket_errors": ""}
    for line in text.splitlines():
        t = line.split()
        if not t:
            continue
        if t[0] == "Requests/sec:":
            r["rps"] = float(t[1])
        elif t[0] == "50%":
            r["p50"] = _ms(t[1])
        elif t[0] == "99%":
            r["p99"] = _ms(t[1])
        elif len(t) >= 3 and t[1] == "requests" and t[2] == "in":
            r["requests"] = int(t[0])
        elif line.strip().startswith("Socket errors:"):
            nums = [int(x) for x in re.findall(r"\d+", line)]
            r["errors"] += sum(nums)
            r["socket_errors"] = line.strip()[len("Socket errors: "):]
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            r["non2xx"] = int(t[-1])
    return r


class Runner:
    """Starts wrk / idle_conns children and makes sure they die with us."""

    def __init__(self):
        self.children = []
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_signal)

    def _on_signal(self, signum, frame):
        self.kill_all()
        sys.exit(128 + signum)

    def kill_all(self):
        for p in self.children:
            if p.poll() is None:
                try:
                    p.kill()
                except OSError:
                    pass
        for p in self.children:
            try:
                p.wait(timeout=5)
            except Exception:
                pass
        self.children = []

    def wrk(self, url, conns, duration):
        argv = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % duration, "--latency", url]
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.children.append(p)
        deadline = time.monotonic() + duration + 30
        out = b""
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                p.kill()
                break
            if sel.select(timeout=min(left, 1.0)):
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    break
                out += chunk
        sel.close()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        p.stdout.close()
        self.children.remove(p)
        text = out.decode("utf-8", "replace")
        r = parse_wrk(text)
        r["wrk_cpu"] = ru.ru_utime + ru.ru_stime
        r["wrk_rc"] = p.returncode
        if r["rps"] is None:
            r["raw"] = text[-2000:]
        return r

# --------------------------------------------------------------- measuring

BODY_PATH = {"small": "/small", "16k": "/16k", "1m": "/1m"}
BODY_LEN = {"small": 12, "16k": 16384, "1m": 1048576}


def parse_targets(specs):
    out = []
    for t in specs:
        name, rest = t.split("=", 1)
        pid, port = rest.split(":")
        out.append({"name": name, "pid": int(pid), "port": int(port)})
    return out


def measure_run(runner, target, body, conns, duration, upstream_pid):
    url = "http://127.0.0.1:%d%s" % (target["port"], BODY_PATH[body])
    ppids = process_tree(target["pid"])
    upids = process_tree(upstream_pid) if upstream_pid != target["pid"] else []
    hwm_ok = reset_hwm(ppids)
    c0, u0 = cpu_seconds(ppids), cpu_seconds(upids)
    b0, s0 = system_jiffies()
    t0 = time.monotonic()
    r = runner.wrk(url, conns, duration)
    wall = time.monotonic() - t0
    c1, u1 = cpu_seconds(ppids), cpu_seconds(upids)
    b1, s1 = system_jiffies()
    same = process_tree(target["pid"]) == ppids
    r["peak_rss"] = status_kib(ppids, "VmHWM") if same else None
    r["peak_rss_reset"] = hwm_ok
    r["proxy_cpu"] = (c1 - c0) if same else 0.0
    r["upstream_cpu"] = u1 - u0
    r["wall"] = wall
    busy = (b1 - b0) / CLK_TCK
    # CPU the machine spent on things that are not this benchmark, in cores
    r["other_cores"] = max(0.0, busy - r["proxy_cpu"] - r["upstream_cpu"] - r["wrk_cpu"]) / wall
    r["steal_cores"] = (s1 - s0) / CLK_TCK / wall
    # a process came or went during the run: no CPU figure for it
    r["cpu_per_100k"] = (r["proxy_cpu"] / r["requests"] * 100000) if (same and r["requests"]) else None
    r.update(target=target["name"], body=body, conns=conns)
    return r


def read_line(proc, timeout):
    """One stdout line of proc, or None on timeout/EOF."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
                continue
            ch = os.read(proc.stdout.fileno(), 1)
            if not ch:
                return buf.decode() or None
            if ch == b"\n":
                return buf.decode()
            buf += ch
        return None
    finally:
        sel.close()


def idle_test(runner, target, n, log):
    pids = process_tree(target["pid"])
    before = status_kib(pids, "VmRSS")
    url = "http://127.0.0.1:%d/small" % target["port"]
    argv = [sys.executable, os.path.join(HERE, "idle_conns.py"), "-n", str(n),
            "--timeout", "150", "--hold", "120", url]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
    runner.children.append(p)
    res = {"target": target["name"], "n": n, "rss_before": before}
    t0 = time.monotonic()
    line = read_line(p, 170)
    res["setup_s"] = time.monotonic() - t0
    if not line or not line.startswith("ready"):
        res["error"] = line or "no answer from idle_conns.py"
    else:
        # two samples 2 s apart; the later one is reported
        time.sleep(2)
        res["rss_held_2s"] = status_kib(process_tree(target["pid"]), "VmRSS")
        time.sleep(2)
        pids = process_tree(target["pid"])
        res["rss_held"] = status_kib(pids, "VmRSS")
        res["established"] = established_on_port(target["port"], pids)
    try:
        p.stdin.close()
    except OSError:
        pass
    done = read_line(p, 30)
    if done and done.startswith("done"):
        m = re.search(r"closed_by_peer=(\d+)", done)
        res["closed_by_peer"] = int(m.group(1)) if m else None
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    runner.children.remove(p)
    p.stdout.close()
    time.sleep(1)
    res["rss_after"] = status_kib(process_tree(target["pid"]), "VmRSS")
    return res


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cmd_load(a):
    targets = parse_targets(a.target)
    bodies = a.bodies.split(",")
    conns_list = [int(c) for c in a.conns.split(",")]
    runner = Runner()
    load_before = loadavg()
    total = a.rounds * len(bodies) * len(conns_list) * len(targets)
    print("load phase: %d runs of %d s (%d round(s) x %d bodies x %d connection counts x %d targets)"
          % (total, a.duration, a.rounds, len(bodies), len(conns_list), len(targets)), flush=True)
    # warm-up: 1 s per target and body, not recorded
    for t in targets:
        for body in bodies:
            runner.wrk("http://127.0.0.1:%d%s" % (t["port"], BODY_PATH[body]), 50, 1)

    runs = []
    done = 0
    aborted = None
    watched = [(t["name"], t["pid"]) for t in targets] + [("upstream", a.upstream_pid)]

    def check_alive():
        dead = ["%s (pid %d)" % (n, p) for n, p in watched if not alive(p)]
        return ", ".join(dead) if dead else None

    for rnd in range(a.rounds):
        # rotate the order every round: no proxy always runs first
        order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
        for body in bodies:
            for c in conns_list:
                for t in order:
                    aborted = aborted or check_alive()
                    if aborted:
                        break
                    r = measure_run(runner, t, body, c, a.duration, a.upstream_pid)
                    r["round"] = rnd + 1
                    runs.append(r)
                    done += 1
                    print("  [%3d/%d] round %d %-7s %-5s c=%-3d %9s req/s  p50 %7s ms  p99 %7s ms"
                          "  cpu/100k %6s s  peak RSS %6s KiB  other load %.2f%s"
                          % (done, total, rnd + 1, t["name"], body, c, fmt_num(r["rps"]),
                             fmt_ms(r["p50"]), fmt_ms(r["p99"]), fmt_num(r["cpu_per_100k"], 2),
                             fmt_num(r["peak_rss"]), r["other_cores"],
                             "  ERRORS %s non2xx %d" % (r["socket_errors"], r["non2xx"])
                             if (r["errors"] or r["non2xx"]) else ""), flush=True)
                    time.sleep(0.3)
                if aborted:
                    break
            if aborted:
                break
        if aborted:
            break
    aborted = aborted or check_alive()
    if aborted:
        print("ABORTED: %s exited during the load phase (killed from outside?)" % aborted, flush=True)
    res = {"runs": runs, "aborted": aborted, "rounds": a.rounds, "duration": a.duration,
           "bodies": bodies, "conns": conns_list, "names": [t["name"] for t in targets],
           "load_before": load_before, "load_after": loadavg()}
    with open(a.out_json, "w") as f:
        json.dump(res, f)
    return 1 if aborted else 0


def cmd_idle(a):
    targets = parse_targets(a.target)
    runner = Runner()
    log = open(a.idle_log, "a") if a.idle_log else subprocess.DEVNULL
    idle = []
    for t in targets:
        print("idle phase: %d keep-alive connections to a fresh %s ..." % (a.n, t["name"]), flush=True)
        if not alive(t["pid"]):
            idle.append({"target": t["name"], "n": a.n, "rss_before": 0, "error": "process is gone"})
            continue
        res = idle_test(runner, t, a.n, log)
        idle.append(res)
        if "error" in res:
            print("  %s: FAILED (%s)" % (t["name"], res["error"]), flush=True)
        else:
            print("  %s: RSS %d KiB idle -> %d KiB held (%.2f KiB/conn; %d KiB 2 s earlier), "
                  "%d established proxy-side, %s closed by the proxy, RSS %d KiB after release, "
                  "set-up %.1f s"
                  % (t["name"], res["rss_before"], res["rss_held"],
                     (res["rss_held"] - res["rss_before"]) / a.n, res["rss_held_2s"],
                     res["established"], res.get("closed_by_peer"), res["rss_after"],
                     res["setup_s"]), flush=True)
    with open(a.out_json, "w") as f:
        json.dump(idle, f)
    return 0 if all("error" not in i for i in idle) else 1

# ----------------------------------------------------------------- report


def fmt_num(v, digits=0):
    if v is None:
        return "n/a"
    if digits == 0:
        return "{:,.0f}".format(v).replace(",", " ")
    return "%.*f" % (digits, v)


def fmt_ms(v):
    if v is None:
        return "n/a"
    if v < 1:
        return "%.3f" % v
    if v < 10:
        return "%.2f" % v
    return "%.1f" % v


def ratio(a, b):
    if a is None or b in (None, 0):
        return "n/a"
    return "%.2fx" % (a / b)


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def spread(vals):
    vals = [v for v in vals if v is not None]
    if len(vals) < 2:
        return ""
    m = statistics.median(vals)
    if not m:
        return ""
    return " ±%.0f%%" % ((max(vals) - min(vals)) / 2 / m * 100)


def table(L, hdr, rows):
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for row in rows:
        L.append("| " + " | ".join(row) + " |")
    L.append("")


def build_report(meta, load, idle):
    runs = load["runs"] if load else []
    names = load["names"] if load else [i["target"] for i in idle]
    bodies = load["bodies"] if load else []
    conns_list = load["conns"] if load else []
    L = []
    L.append("# Gateway vs nginx vs HAProxy — %s" % meta["date"])
    L.append("")
    L.append("- command: `%s` (gateway source: %s)" % (meta["cmdline"], meta.get("tree", "?")))
    L.append("- machine: %s cores, %s; kernel %s" % (meta["nproc"], meta["cpu_model"], meta["kernel"]))
    L.append("- versions: gateway `%s`; nginx `%s`; HAProxy `%s`; wrk `%s`" %
             (meta["v_gateway"], meta["v_nginx"], meta["v_haproxy"], meta["v_wrk"]))
    if load:
        L.append("- upstream: %s; proxies: %s worker(s)/thread(s) each; wrk -t1, %d s per run, "
                 "%d round(s) interleaved (%s, order rotated each round), median per cell" %
                 (meta["upstream"], meta["workers"], load["duration"], load["rounds"],
                  " ".join(names)))
    other = [r["other_cores"] for r in runs]
    steal = [r["steal_cores"] for r in runs]
    if other:
        busy = sum(1 for o in other if o > 0.5)
        L.append("- background load (CPU used by other processes during each run, in cores of %s): "
                 "median %.2f, max %.2f, > 0.5 core in %d of %d runs; steal median %.2f; "
                 "loadavg before %s, after %s" %
                 (meta["nproc"], statistics.median(other), max(other), busy, len(other),
                  statistics.median(steal), load["load_before"], load["load_after"]))
    if load and load.get("aborted"):
        L.append("- **ABORTED: %s exited during the load phase; this report is partial and "
                 "the runs just before it may be wrong.**" % load["aborted"])
    for n in meta.get("notes", []):
        L.append("- note: " + n)
    L.append("")

    def cell(name, body, c, key):
        return [r[key] for r in runs if r["target"] == name and r["body"] == body and r["conns"] == c]

    cmp_names = [n for n in ("nginx", "haproxy") if n in names]
    if runs:
        L.append("## Throughput (requests/s, median; ± = half the range over rounds)")
        L.append("")
        rows = []
        for body in bodies:
            for c in conns_list:
                m = {n: med(cell(n, body, c, "rps")) for n in names}
                rows.append([body, str(c)] +
                            [fmt_num(m[n]) + spread(cell(n, body, c, "rps")) for n in names] +
                            [ratio(m.get("gateway"), m[n]) for n in cmp_names])
        table(L, ["body", "conns"] + names + ["gateway/%s" % n for n in cmp_names], rows)

        L.append("## Latency (ms, median of the per-run p50 and p99)")
        L.append("")
        rows = []
        for body in bodies:
            for c in conns_list:
                p50 = {n: med(cell(n, body, c, "p50")) for n in names}
                p99 = {n: med(cell(n, body, c, "p99")) for n in names}
                rows.append([body, str(c)] +
                            ["%s / %s" % (fmt_ms(p50[n]), fmt_ms(p99[n])) for n in names] +
                            [ratio(p99.get("gateway"), p99[n]) for n in cmp_names])
        table(L, ["body", "conns"] + ["%s p50 / p99" % n for n in names] +
              ["p99 gateway/%s" % n for n in cmp_names], rows)

        L.append("## CPU seconds per 100k requests (proxy processes, all threads; median)")
        L.append("")
        rows = []
        for body in bodies:
            for c in conns_list:
                m = {n: med(cell(n, body, c, "cpu_per_100k")) for n in names}
                rows.append([body, str(c)] + [fmt_num(m[n], 2) for n in names] +
                            [ratio(m.get("gateway"), m[n]) for n in cmp_names])
        table(L, ["body", "conns"] + names + ["gateway/%s" % n for n in cmp_names], rows)

        L.append("## Peak RSS per cell (KiB, VmHWM reset before each run, summed over the "
                 "proxy's processes; max over rounds)")
        L.append("")
        rows = []
        for body in bodies:
            for c in conns_list:
                m = {n: max([v for v in cell(n, body, c, "peak_rss") if v] or [0]) or None
                     for n in names}
                rows.append([body, str(c)] + [fmt_num(m[n]) for n in names] +
                            [ratio(m.get("gateway"), m[n]) for n in cmp_names])
        table(L, ["body", "conns"] + names + ["gateway/%s" % n for n in cmp_names], rows)
        if not all(r.get("peak_rss_reset", True) for r in runs):
            L.append("(VmHWM could not be reset for some runs: their peak includes earlier runs.)")
            L.append("")

    peaks = {n: max([r["peak_rss"] or 0 for r in runs if r["target"] == n] or [0]) or None
             for n in names}
    L.append("## Memory summary (KiB, summed over each proxy's processes)")
    L.append("")
    idle_by = {i["target"]: i for i in idle}
    hdr = ["proxy"]
    if runs:
        hdr.append("peak RSS under load (max of all cells)")
    if idle:
        n_idle = idle[0]["n"]
        hdr += ["fresh RSS", "RSS holding %d idle keep-alive conns" % n_idle, "KiB per idle conn",
                "ESTABLISHED proxy-side", "closed by the proxy while held",
                "RSS after the conns closed"]
    rows = []
    for n in names:
        if n == "direct":
            continue
        row = [n]
        if runs:
            row.append(fmt_num(peaks.get(n)))
        if idle:
            i = idle_by.get(n)
            if i is None:
                row += ["n/a"] * 6
            elif "error" in i:
                row += [fmt_num(i["rss_before"]), "FAILED: %s" % i["error"], "", "", "", ""]
            else:
                per = (i["rss_held"] - i["rss_before"]) / i["n"]
                row += [fmt_num(i["rss_before"]), fmt_num(i["rss_held"]), "%.2f" % per,
                        str(i.get("established")), str(i.get("closed_by_peer")),
                        fmt_num(i.get("rss_after"))]
        rows.append(row)
    table(L, hdr, rows)
    bits = []
    for n in cmp_names:
        if runs and peaks.get(n) and peaks.get("gateway"):
            bits.append("gateway/%s peak RSS under load %s" % (n, ratio(peaks["gateway"], peaks[n])))
        gi, oi = idle_by.get("gateway", {}), idle_by.get(n, {})
        if gi.get("rss_held") and oi.get("rss_held"):
            bits.append("gateway/%s RSS holding the idle conns %s" %
                        (n, ratio(gi["rss_held"], oi["rss_held"])))
            gper = (gi["rss_held"] - gi["rss_before"]) / gi["n"]
            oper = (oi["rss_held"] - oi["rss_before"]) / oi["n"]
            if oper > 0:
                bits.append("gateway/%s KiB per idle conn %.2fx" % (n, gper / oper))
    if bits:
        L.append("Ratios: " + "; ".join(bits) + ".")
        L.append("")

    if runs:
        bad = [r for r in runs if r["errors"] or r["non2xx"] or r["rps"] is None or r["wrk_rc"]]
        L.append("## Errors")
        L.append("")
        if not bad:
            L.append("None: every run had 0 socket errors and 0 non-2xx responses.")
        else:
            for r in bad:
                L.append("- round %d %s %s c=%d: socket errors [%s], non-2xx %d%s" %
                         (r["round"], r["target"], r["body"], r["conns"], r["socket_errors"] or "-",
                          r["non2xx"], "" if r["rps"] is not None
                          else ", wrk output unreadable (rc %s)" % r["wrk_rc"]))
        L.append("")
    L.append("Notes: ratios are gateway/other (throughput: >1 is better for the gateway; p99, CPU "
             "and memory: <1 is better). CPU s/100k = proxy utime+stime during the run / requests "
             "completed x 100000. The idle-connection measure uses proxies started afresh after "
             "the load phase. wrk, the upstream and the proxies share the same machine.")
    L.append("")
    return "\n".join(L)


def cmd_report(a):
    load = json.load(open(a.load)) if a.load and os.path.exists(a.load) else None
    idle = json.load(open(a.idle)) if a.idle and os.path.exists(a.idle) else []
    meta = {
        "date": a.started or datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "tree": source_tree(),
        "cmdline": a.cmdline,
        "nproc": os.cpu_count(),
        "cpu_model": "unknown",
        "kernel": platform.release(),
        "workers": a.workers,
        "upstream": a.upstream_desc,
        "v_gateway": first_line(run_cmd([a.gateway_bin, "-v"])),
        "v_nginx": first_line(run_cmd(["nginx", "-v"])),
        "v_haproxy": first_line(run_cmd(["haproxy", "-v"])),
        "v_wrk": first_line(run_cmd(["wrk", "-v"])).split("Copyright")[0].strip(),
        "notes": a.note,
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    meta["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    report = build_report(meta, load, idle)
    print()
    print(report)
    with open(a.out, "w") as f:
        f.write(report)
    with open(re.sub(r"\.md$", "", a.out) + ".raw.json", "w") as f:
        json.dump({"meta": meta, "load": load, "idle": idle}, f, indent=1)
    print("written: %s (raw data: %s)" % (a.out, re.sub(r"\.md$", "", a.out) + ".raw.json"))
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ports")
    p.add_argument("k", type=int)
    p = sub.add_parser("check")
    p.add_argument("url")
    p.add_argument("length", type=int)
    p = sub.add_parser("load")
    p.add_argument("--target", action="append", required=True, help="NAME=PID:PORT")
    p.add_argument("--upstream-pid", type=int, required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--conns", default="10,50,200")
    p.add_argument("--bodies", default="small,16k,1m")
    p.add_argument("--out-json", required=True)
    p = sub.add_parser("idle")
    p.add_argument("--target", action="append", required=True, help="NAME=PID:PORT")
    p.add_argument("-n", type=int, default=10000)
    p.add_argument("--idle-log", default="")
    p.add_argument("--out-json", required=True)
    p = sub.add_parser("report")
    p.add_argument("--load", default="")
    p.add_argument("--idle", default="")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--upstream-desc", default="")
    p.add_argument("--gateway-bin", required=True)
    p.add_argument("--cmdline", default="")
    p.add_argument("--note", action="append", default=[])
    p.add_argument("--started", default="")
    p.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.cmd == "ports":
        print(" ".join(str(x) for x in free_ports(a.k)))
        return 0
    if a.cmd == "check":
        return 0 if check(a.url, a.length) else 1
    return {"load": cmd_load, "idle": cmd_idle, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())

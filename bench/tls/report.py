#!/usr/bin/env python3
"""Tables for bench/tls_compare.sh (standard library only).

    report.py DIR        reads DIR/meta.tsv, DIR/status/*, DIR/runs/*.json,
                         prints markdown and writes it to DIR/report.md

Per cell (key type x mode) and proxy: the median over the runs of
  - rate: operations per second measured by tls_loadgen (handshakes/s with
    one request each for full and resumed, requests/s for keepalive);
  - capacity: operations per second of the proxy's own CPU time (ops / proxy
    CPU seconds in the same window): what one fully busy core would do; it
    does not depend on whether the proxy was saturated, so it still compares
    the proxies when the client or the machine was the limit;
  - proxy util (CPU seconds / window), client util, the busy share of the
    proxy's core (all processes), errors, p50/p99 latency;
and the ratios gateway/nginx, gateway/haproxy of the medians. "+-" is half
the range over the runs, in percent of the median.
"""
import glob
import json
import os
import statistics
import sys

PROXIES = ["gateway", "nginx", "haproxy"]
MODES = ["full", "resumed", "keepalive"]
KEYS = ["ecdsa", "rsa"]
KEY_NAMES = {"ecdsa": "ECDSA P-256", "rsa": "RSA 2048"}
MODE_NAMES = {
    "full": "full handshakes/s",
    "resumed": "resumed handshakes/s",
    "keepalive": "keep-alive requests/s",
}


def read_meta(d):
    meta = {}
    try:
        with open(os.path.join(d, "meta.tsv")) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("\t")
                if k:
                    meta[k] = v
    except OSError:
        pass
    return meta


def read_status(d):
    st = {}
    for p in glob.glob(os.path.join(d, "status", "*")):
        key, _, proxy = os.path.basename(p).partition(".")
        with open(p) as f:
            st[(key, proxy)] = f.read().strip()
    return st


def read_runs(d):
    runs = {}
    pre = {}
    for p in glob.glob(os.path.join(d, "runs", "*.pre")):
        try:
            with open(p) as f:
                v = f.read().split()
            pre[p[: -len(".pre")]] = (float(v[0]), int(v[1]),
                                      int(v[2]) if len(v) > 2 else 0,
                                      float(v[3]) if len(v) > 3 else 0.0)
        except (OSError, ValueError):
            pass
    for p in sorted(glob.glob(os.path.join(d, "runs", "*.json"))):
        parts = os.path.basename(p)[: -len(".json")].split(".")
        if len(parts) != 4:
            continue
        key, mode, proxy, run = parts
        try:
            with open(p) as f:
                j = json.load(f)
        except (OSError, ValueError) as e:
            j = {"broken": str(e)}
        j["_pre"] = pre.get(p[: -len(".json")])
        runs.setdefault((key, mode, proxy), []).append(j)
    return runs


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    xs = [x for x in xs if x is not None]
    m = med(xs)
    if not xs or not m:
        return None
    return (max(xs) - min(xs)) / 2 / m * 100


def fmt_num(v, digits=0):
    if v is None:
        return "-"
    if digits == 0:
        return "{:,}".format(int(round(v))).replace(",", " ")
    return "{:.{}f}".format(v, digits)


def fmt_med(xs, digits=0):
    m = med(xs)
    if m is None:
        return "-"
    s = spread(xs)
    return fmt_num(m, digits) + (" ±{:.0f}%".format(s) if s is not None and len(xs) > 1 else "")


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return "{:.2f}x".format(a / b)


def metric(j, name):
    if "broken" in j:
        return None
    if name == "rate":
        return j.get("rate")
    if name == "capacity":
        sc = j.get("server_cpu") or {}
        s = sc.get("seconds")
        return j["ops"] / s if s and j.get("ops") else None
    if name == "server_util":
        return (j.get("server_cpu") or {}).get("util")
    if name == "client_util":
        return (j.get("client_cpu") or {}).get("util")
    if name == "errors":
        return j["errors"]["total"] + j.get("errors_outside_window", 0)
    if name in ("p50", "p99"):
        return j["latency_ms"][name]
    raise KeyError(name)


def limit_of(j):
    """The proxy's CPU limit in that run, in CPUs (1.0: a whole core)."""
    pre = j.get("_pre")
    return pre[2] / 100.0 if pre and pre[2] > 0 else 1.0


def saturated(j):
    u = metric(j, "server_util")
    return u is not None and u >= 0.9 * limit_of(j)


def server_core_busy(j, meta):
    cpus = meta.get("server_cpus", "")
    busy = j.get("cpu_busy") or []
    try:
        idx = [int(c) for c in cpus.split(",") if c != ""]
    except ValueError:
        idx = []
    vals = [busy[i] for i in idx if i < len(busy)]
    return sum(vals) if vals else None


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    d = sys.argv[1]
    meta = read_meta(d)
    status = read_status(d)
    runs = read_runs(d)
    keys = [k for k in KEYS if any(r[0] == k for r in runs) or any(s[0] == k for s in status)]
    modes = [m for m in MODES if any(r[1] == m for r in runs)]
    proxies = [p for p in PROXIES if any(r[2] == p for r in runs) or any(s[1] == p for s in status)]
    out = []
    w = out.append

    w("# TLS: the gateway, nginx and HAProxy side by side")
    w("")
    for k in ("date", "command", "machine", "pinning", "settings", "versions", "load"):
        if k in meta:
            w("- {}: {}".format(k, meta[k]))
    w("")

    def cell_status(key, proxy):
        s = status.get((key, proxy), "")
        return None if s in ("", "ok") else s

    quiet = meta.get("quiet", "").split()
    quota = int(meta.get("quota", "0") or 0)
    notes_ns = set()

    for title, name, digits in (
        ("Rate (median of the runs)", "rate", 0),
        ("Capacity: operations per second of proxy CPU (ops / proxy CPU seconds), "
         "median of the runs", "capacity", 0),
        ("Capacity, best run (the highest of the runs)", "capacity_best", 0),
    ):
        w("## " + title)
        w("")
        hdr = ["key", "measure"] + proxies
        if "gateway" in proxies:
            hdr += ["gateway/" + p for p in proxies if p != "gateway"]
        w("| " + " | ".join(hdr) + " |")
        w("|" + "---|" * len(hdr))
        for key in keys:
            for mode in modes:
                row = [KEY_NAMES.get(key, key), MODE_NAMES.get(mode, mode)]
                meds = {}
                for p in proxies:
                    st = cell_status(key, p)
                    rs = runs.get((key, mode, p), [])
                    if st and not rs:
                        row.append(st if name == "rate" else "n/a")
                        meds[p] = None
                        continue
                    if name == "capacity_best":
                        xs = [metric(j, "capacity") for j in rs]
                        xs = [x for x in xs if x is not None]
                        meds[p] = max(xs) if xs else None
                        row.append(fmt_num(meds[p], digits))
                        continue
                    xs = [metric(j, name) for j in rs]
                    meds[p] = med(xs)
                    mark = ""
                    if name == "rate" and rs:
                        unsat = sum(1 for j in rs if "broken" not in j and not saturated(j))
                        if unsat * 2 > len(rs):
                            mark = " (ns)"
                            notes_ns.add(True)
                    row.append(fmt_med(xs, digits) + mark)
                if "gateway" in proxies:
                    for p in proxies:
                        if p != "gateway":
                            row.append(ratio(meds.get("gateway"), meds.get(p)))
                w("| " + " | ".join(row) + " |")
        w("")
        if name == "capacity_best":
            w("The machine is a shared VM whose CPU speed varies with the host's load "
              "(no steal time is reported): the same proxy's CPU per operation varied "
              "up to 2x between runs minutes apart. Noise only ever slows a run down, "
              "so the best run is the least disturbed estimate of what a proxy costs; "
              "the median shows what the runs had in common.")
            w("")
        if name == "rate":
            if quota:
                w("Full and resumed handshakes: each proxy limited to {}% of one CPU "
                  "(cgroup CPU bandwidth), so that the proxy, not the client, is the "
                  "bottleneck; keep-alive: no limit (a whole core). Rate per proxy "
                  "core: see the capacity table.".format(quota))
                w("")
            if notes_ns:
                notes_ns.clear()
                w("(ns): not saturated in most runs (proxy CPU under 90% of its "
                  "limit): the client or other jobs on the machine set the rate, "
                  "which then understates the difference between proxies; compare "
                  "the capacity table instead.")
                w("")

    if "gateway" in proxies and "nginx" in proxies:
        w("## Target: the gateway within 10% of nginx (gateway/nginx >= 0.90)")
        w("")
        w("| key | measure | rate gateway/nginx | capacity gateway/nginx | "
          "best capacity gateway/nginx | met |")
        w("|---|---|---|---|---|---|")
        for key in keys:
            for mode in modes:
                g = runs.get((key, mode, "gateway"), [])
                n = runs.get((key, mode, "nginx"), [])
                st = cell_status(key, "gateway")
                if not g:
                    w("| {} | {} | {} | - | - | - |".format(KEY_NAMES.get(key, key),
                                                     MODE_NAMES.get(mode, mode),
                                                     st or "no run"))
                    continue
                rr = [med([metric(j, "rate") for j in x]) for x in (g, n)]
                cc = [med([metric(j, "capacity") for j in x]) for x in (g, n)]
                bb = []
                for x in (g, n):
                    v = [metric(j, "capacity") for j in x]
                    v = [y for y in v if y is not None]
                    bb.append(max(v) if v else None)
                oks = []
                for a, b in (rr, cc, bb):
                    oks.append(a is not None and bool(b) and a / b >= 0.90)
                met = "yes" if all(oks) else ("no" if not any(oks) else "partly ({}/3)".format(
                    sum(oks)))
                w("| {} | {} | {} | {} | {} | {} |".format(KEY_NAMES.get(key, key),
                                                          MODE_NAMES.get(mode, mode),
                                                          ratio(*rr), ratio(*cc), ratio(*bb), met))
        w("")

    w("## Diagnostics (medians over the runs)")
    w("")
    w("proxy limit: CPUs the proxy may use (cgroup); proxy util: the proxy's "
      "CPU seconds / window (1.00 = one core busy); throttled: share of the "
      "10 ms cgroup periods in which the proxy used up its limit; client util: tls_loadgen's; server core busy: the busy share of the "
      "proxy's core(s), everything (softirq and other processes included); "
      "others: server core busy - proxy util, what the proxy did not use "
      "there (other jobs, interrupts); busy before: CPUs the machine used "
      "just before the run (our processes idle), and how many runs started "
      "above the --quiet-cpus threshold ({}) after waiting --quiet-max; "
      "errors: summed over the runs, warm-up included.".format(
          quiet[0] if quiet else "?"))
    w("")
    w("| key | mode | proxy | runs | proxy limit | proxy util | throttled | client util | "
      "server core busy | others | busy before (noisy runs) | errors | p50 ms | p99 ms | "
      "cpu us/op proxy | cpu us/op client |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for key in keys:
        for mode in modes:
            for p in proxies:
                rs = [j for j in runs.get((key, mode, p), []) if "broken" not in j]
                if not rs:
                    continue
                errs = sum(metric(j, "errors") for j in rs)
                us_srv = med([(j.get("server_cpu") or {}).get("us_per_op") for j in rs])
                us_cli = med([(j.get("client_cpu") or {}).get("us_per_op") for j in rs])
                others = []
                for j in rs:
                    b, u = server_core_busy(j, meta), metric(j, "server_util")
                    others.append(b - u if b is not None and u is not None else None)
                pres = [j["_pre"] for j in rs if j.get("_pre")]
                noisy = sum(1 for x in pres if quiet and x[0] > float(quiet[0]))
                before = "{} ({})".format(fmt_num(med([x[0] for x in pres]), 2), noisy) \
                    if pres else "-"
                w("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                    KEY_NAMES.get(key, key), mode, p, len(rs),
                    fmt_num(med([limit_of(j) for j in rs]), 2),
                    fmt_num(med([metric(j, "server_util") for j in rs]), 2),
                    fmt_num(med([x[3] for x in pres]), 2) if pres else "-",
                    fmt_num(med([metric(j, "client_util") for j in rs]), 2),
                    fmt_num(med([server_core_busy(j, meta) for j in rs]), 2),
                    fmt_num(med(others), 2), before,
                    errs,
                    fmt_num(med([metric(j, "p50") for j in rs]), 3),
                    fmt_num(med([metric(j, "p99") for j in rs]), 3),
                    fmt_num(us_srv, 1), fmt_num(us_cli, 1)))
    w("")

    # what was negotiated, and the same certificate everywhere
    w("## Negotiated (first handshake of each proxy's first run)")
    w("")
    w("| key | proxy | protocol | cipher | group | signature | ALPN | cert key | "
      "cert SHA-256 (first 8 bytes) | same cert |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for key in keys:
        want = meta.get("fingerprint_" + key, "")
        for p in proxies:
            peer = None
            for mode in modes:
                for j in runs.get((key, mode, p), []):
                    if j.get("peer"):
                        peer = j["peer"]
                        break
                if peer:
                    break
            if not peer:
                continue
            fp = peer.get("cert_sha256", "")
            w("| {} | {} | {} | {} | {} | {} | {} | {} {} | {} | {} |".format(
                KEY_NAMES.get(key, key), p, peer.get("protocol"), peer.get("cipher"),
                peer.get("group"), peer.get("signature"), peer.get("alpn") or "none",
                peer.get("key_type"), peer.get("key_bits"), fp[:23],
                "yes" if want and fp == want else "NO"))
    w("")
    notes = [v for k, v in sorted(status.items()) if v not in ("", "ok")]
    if notes:
        w("## Not measured")
        w("")
        for (key, p), v in sorted(status.items()):
            if v not in ("", "ok"):
                w("- {} {}: {}".format(KEY_NAMES.get(key, key), p, v))
        w("")
    text = "\n".join(out)
    print(text)
    try:
        with open(os.path.join(d, "report.md"), "w") as f:
            f.write(text + "\n")
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Feature flags: how fast a change reaches a running gateway, and what a hung
Redis costs requests.

    bench/flags_propagation.py [--gateway build-flags-release/gateway]
                               [--bench-dir build-flags-release/bench]
                               [--toggles 100] [--rate 2000] [--duration 10]

1. Propagation: toggles one flag --toggles times (HSET PREFIXflags f on|off,
   then PUBLISH PREFIXevents) and, from just before each PUBLISH, polls the
   gateway on one keep-alive connection until its answer changes (flag on:
   proxied 200; off: the gateway's own 404 flag_off). Prints p50/p99/max.
   The poll loop itself takes ~0.1 ms per request, which bounds the
   resolution.
2. Latency with Redis healthy, then hung (SIGSTOP): bench/loadgen, open loop
   at --rate req/s for --duration s, against a route proxied to
   bench/upstream_stub (/small). During the hung phase the gateway keeps
   timing out Redis commands and reconnecting (poll_interval 1s, backoff to
   1s). Prints p50/p99/p99.9/max of both phases.

Everything runs on loopback with its own redis-server, upstream stub and
gateway, all stopped at the end (SIGCONT first for Redis). Benchmarks are not
tests: this prints numbers, it asserts nothing.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import gwtest  # noqa: E402
from gwtest import Conn, Gateway, free_port, make_config, route, to_yaml, upstream  # noqa: E402,I100
from redistest import RedisServer  # noqa: E402

PREFIX = "bench:"


def percentile(values, p):
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def start_stub(path):
    proc = subprocess.Popen([path, "--port", "0"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r"listening on (\S+)", line)
    if not m:
        proc.kill()
        raise SystemExit("upstream_stub did not start: %r" % line)
    return proc, m.group(1)


def answer(c, path):
    c.request("GET", path)
    r = c.read_response()
    return r.status


def propagation(redis, port, toggles):
    c = Conn(port)
    times = []
    try:
        for i in range(toggles):
            value, want = ("on", 200) if i % 2 == 0 else ("off", 404)
            redis.cmd("HSET", PREFIX + "flags", "f", value)
            t0 = time.perf_counter()
            redis.cmd("PUBLISH", PREFIX + "events", "x")
            while answer(c, "/flag") != want:
                if time.perf_counter() - t0 > 5:
                    raise SystemExit("toggle %d not visible after 5 s" % i)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        c.close()
    return times


def loadgen(path, port, rate, duration):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        subprocess.run([path, "--url", "http://127.0.0.1:%d/small" % port, "--rate", str(rate),
                        "--connections", "20", "--duration", str(duration), "--json", out],
                       check=True, stdout=subprocess.DEVNULL)
        with open(out) as f:
            data = json.load(f)
    finally:
        os.unlink(out)
    return data["total"]


def fmt_latency(t):
    lat = t["latency_us"]
    errors = sum(t["errors"].values()) if isinstance(t.get("errors"), dict) else t.get("errors")
    return ("p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms (%d requests, errors %s)"
            % (lat["p50"] / 1000, lat["p99"] / 1000, lat["p99_9"] / 1000, lat["max"] / 1000,
               lat["count"], errors))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gateway", default=os.path.join(ROOT, "build-flags-release", "gateway"))
    ap.add_argument("--bench-dir", default=os.path.join(ROOT, "build-flags-release", "bench"))
    ap.add_argument("--toggles", type=int, default=100)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    gwtest.GATEWAY = os.path.abspath(args.gateway)
    os.environ["GATEWAY_DEBUG"] = "1"  # every Redis timeout and reconnect in the log

    srv = RedisServer().start()
    stub, stub_addr = start_stub(os.path.join(args.bench_dir, "upstream_stub"))
    gw = None
    try:
        port = free_port()
        conf = make_config(
            port, {"up": upstream(stub_addr, keepalive=64)},
            [route("flag", "up", path_prefix="/flag", flag={"name": "f"}), route("all", "up")],
            workers=args.workers, access_log="off",
            flags={"f": "off"},
            redis={"address": srv.address, "prefix": PREFIX, "poll_interval": "1s"})
        gw = Gateway(to_yaml(conf), port, name="bench-flags").start()
        redis = srv.client()

        times = propagation(redis, port, args.toggles)
        print("propagation PUBLISH -> effect, %d toggles: p50 %.2f ms, p99 %.2f ms, "
              "max %.2f ms, mean %.2f ms"
              % (len(times), percentile(times, 50), percentile(times, 99), max(times),
                 statistics.mean(times)))

        loadgen_path = os.path.join(args.bench_dir, "loadgen")
        healthy = loadgen(loadgen_path, port, args.rate, args.duration)
        print("latency, Redis healthy, %d req/s open loop: %s" % (args.rate, fmt_latency(healthy)))

        mark = len(gw._err)
        srv.pause()
        try:
            deadline = time.monotonic() + 5
            while not any("unreachable" in line for line in gw._err[mark:]):
                if time.monotonic() > deadline:
                    raise SystemExit("the gateway never noticed the hung Redis")
                time.sleep(0.01)
            hung = loadgen(loadgen_path, port, args.rate, args.duration)
            timeouts = sum("no answer within" in line for line in gw._err[mark:])
        finally:
            srv.resume()
        print("latency, Redis hung (SIGSTOP), %d req/s open loop: %s" % (args.rate,
                                                                         fmt_latency(hung)))
        print("  (during the hung phase the gateway's Redis commands timed out %d times, each "
              "followed by a reconnect)" % timeouts)
        redis.close()
    finally:
        if gw:
            gw.stop()
        stub.terminate()
        stub.wait()
        srv.cleanup()


if __name__ == "__main__":
    main()

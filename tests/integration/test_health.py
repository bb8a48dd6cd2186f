"""Upstream health: active health checks (down and up again, every server
down -> 503 no_healthy_upstream, a SIGSTOPed server's return), outlier
detection (ejection after consecutive failures, return after the ejection
time, longer the next time) and slow start (a returning server's ramp).

Checks run every 100ms here (500ms for the SIGSTOP test), ejections last 1s:
every wait is a poll with a deadline.
"""

import datetime
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

from gwtest import GatewayTestCase, HttpError, StubUpstream, poll_until, route, upstream

HC = {"path": "/healthz", "interval": "100ms", "timeout": "100ms",
      "unhealthy_threshold": 2, "healthy_threshold": 2}

# A server in its own process, so that SIGSTOP freezes it as a real one would
# be (the kernel still accepts connections and takes requests, nothing is
# answered). It answers every request 200 with Connection: close and prints
# "check T" (T: time.monotonic(), the same clock in every process) for each
# health check it reads.
PAUSABLE_STUB = r"""
import socket, sys, threading, time
lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("127.0.0.1", 0))
lsock.listen(128)
print("port %d" % lsock.getsockname()[1], flush=True)
lock = threading.Lock()
def serve(c):
    try:
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = c.recv(4096)
            if not d:
                return
            buf += d
        if buf.startswith(b"GET /healthz "):
            with lock:
                print("check %.6f" % time.monotonic(), flush=True)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    except OSError:
        pass
    finally:
        c.close()
while True:
    c, _ = lsock.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


class PausableServer:
    """PAUSABLE_STUB in a subprocess; checks: the health checks' arrival
    times, in order."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", PAUSABLE_STUB], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        first = self.proc.stdout.readline().split()
        if len(first) != 2 or first[0] != "port":
            self.stop()
            raise AssertionError("the pausable stub did not start: %r" % first)
        self.port = int(first[1])
        self.address = "127.0.0.1:%d" % self.port
        self.checks = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) == 2 and parts[0] == "check":
                with self._lock:
                    self.checks.append(float(parts[1]))

    def check_times(self):
        with self._lock:
            return list(self.checks)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(5)
        self.proc.stdout.close()


def log_time(line):
    """Wall-clock seconds of a gateway log line ("2026-...T12:00:00.123Z ...")."""
    stamp = line.split(" ", 1)[0]
    t = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


class HealthCheckTests(GatewayTestCase):
    def spread(self, gw, n, prefix="/h"):
        """n GETs; Counter of answering servers (a gateway error counts as
        its code)."""
        seen = Counter()
        c = self.connect(gw)
        for i in range(n):
            c.request("GET", "%s/%d" % (prefix, i))
            r = c.read_response()
            if r.status == 200:
                seen[r.json()["server"]] += 1
            else:
                seen["%d %s" % (r.status, r.header("X-Gateway-Error"))] += 1
        return seen

    def wait_log(self, gw, pattern, timeout=3.0):
        hit = gw.wait_stderr(pattern, timeout)
        if not hit:
            self.fail("no stderr line matching %r within %.1fs; stderr:\n%s"
                      % (pattern, timeout, gw.stderr_text()))
        return hit

    def test_check_request_shape(self):
        """Each server gets GET /healthz with User-Agent gateway-health-check
        and Connection: close, about every interval."""
        a = self.start_stub("a")
        self.start_gateway({"u": upstream(a, health_check=dict(HC))}, [route("r", "u")])
        reqs = a.wait_requests(3, timeout=2.0)
        checks = [r for r in reqs if r.path == "/healthz"]
        self.assertGreaterEqual(len(checks), 3, "health checks seen: %r" % reqs)
        for r in checks:
            self.assertEqual(r.method, "GET")
            self.assertEqual(r.header("User-Agent"), "gateway-health-check")
            self.assertEqual((r.header("Connection") or "").lower(), "close")
        gaps = [y.time - x.time for x, y in zip(checks, checks[1:])]
        self.assertTrue(all(0.05 < g < 0.5 for g in gaps), "gaps between checks (interval 100ms): %r" % gaps)

    def test_failing_check_takes_server_out_and_back(self):
        """b's /healthz answers 500: after 2 failed checks b is down and all
        traffic goes to a; /healthz answers 200 again: after 2 passed checks b
        is up and gets its share again."""
        a, b = self.start_stub("a"), self.start_stub("b")
        gw = self.start_gateway({"u": upstream(a, b, health_check=dict(HC), slow_start=0)},
                                [route("r", "u")])
        self.assertEqual(self.spread(gw, 10), {"a": 5, "b": 5}, "both up at first")
        b.set_path("/healthz", "fixed", status=500)
        self.wait_log(gw, r"upstream u: %s is down" % b.address)
        before = len(b.app_requests)
        self.assertEqual(self.spread(gw, 20), {"a": 20}, "traffic with b down")
        self.assertEqual(len(b.app_requests), before, "b got requests while down")
        b.clear_paths()
        self.wait_log(gw, r"upstream u: %s is up" % b.address)
        self.assertEqual(self.spread(gw, 20), {"a": 10, "b": 10}, "traffic with b up again")

    def test_closed_port_taken_out_and_back(self):
        """b's port closes (connects refused): b goes down, no client sees an
        error; b listens again on the same port: it comes back."""
        a, b = self.start_stub("a"), self.start_stub("b")
        port = b.port
        gw = self.start_gateway({"u": upstream(a, b, health_check=dict(HC), slow_start=0)},
                                [route("r", "u")])
        b.stop()
        self.wait_log(gw, r"upstream u: 127\.0\.0\.1:%d is down" % port)
        self.assertEqual(self.spread(gw, 20), {"a": 20}, "traffic with b's port closed")
        b2 = StubUpstream("b2", port=port).start()
        self.addCleanup(b2.stop)
        self.wait_log(gw, r"upstream u: 127\.0\.0\.1:%d is up" % port)
        self.assertEqual(self.spread(gw, 20), {"a": 10, "b2": 10}, "traffic with b back")

    def test_every_server_down_no_healthy_upstream(self):
        """Both servers fail their checks: 503 no_healthy_upstream without any
        request reaching them; one heals: traffic goes to it."""
        a, b = self.start_stub("a"), self.start_stub("b")
        for s in (a, b):
            s.set_path("/healthz", "fixed", status=503)
        gw = self.start_gateway({"u": upstream(a, b, health_check=dict(HC))}, [route("r", "u")])
        for s in (a, b):
            self.wait_log(gw, r"upstream u: %s is down" % s.address)
        for i in range(3):
            r = self.fetch(gw, "GET", "/none/%d" % i)
            self.assertGatewayError(r, 503, "no_healthy_upstream")
        self.assertEqual(len(a.app_requests) + len(b.app_requests), 0,
                         "requests reached servers that are down")
        a.clear_paths()
        self.wait_log(gw, r"upstream u: %s is up" % a.address)
        self.assertEqual(self.spread(gw, 6), {"a": 6})

    def test_check_timeout_marks_down(self):
        """A /healthz that answers later than the check timeout fails."""
        a, b = self.start_stub("a"), self.start_stub("b")
        b.set_path("/healthz", "echo", delay=0.5)
        gw = self.start_gateway({"u": upstream(a, b, health_check=dict(HC))}, [route("r", "u")])
        self.wait_log(gw, r"upstream u: %s is down" % b.address)
        self.assertEqual(self.spread(gw, 6), {"a": 6})


    def test_sigstopped_server_up_only_after_healthy_threshold_intervals(self):
        """Issue 10: b is SIGSTOPed (connects succeed, nothing answers) and
        goes down; it gets SIGCONT 200 ms into a check (timeout 400ms), which
        it then answers in time. That pass may count, but healthy_threshold 2
        means two answers an interval apart: b is up no sooner than one
        interval (500ms) after SIGCONT. It was up 0.26-0.28 s after SIGCONT
        when the next check followed the held one's start by an interval.
        (A lower bound only: a slow machine makes it later, never earlier.)"""
        interval = 0.5
        b = PausableServer()
        self.addCleanup(b.stop)
        a = self.start_stub("a")
        hc = {"path": "/healthz", "interval": "500ms", "timeout": "400ms",
              "unhealthy_threshold": 1, "healthy_threshold": 2}
        gw = self.start_gateway({"u": upstream(a, b.address, health_check=hc)}, [route("r", "u")])
        # the checks' pace, from two of them, then stop b right after one
        self.assertTrue(poll_until(lambda: len(b.check_times()) >= 2, 3.0),
                        "b got no health checks: %r" % b.check_times())
        seen = len(b.check_times())
        self.assertTrue(poll_until(lambda: len(b.check_times()) > seen, 2.0, interval=0.002))
        b.proc.send_signal(signal.SIGSTOP)
        last = b.check_times()[-1]
        down = gw.wait_stderr(r"upstream u: %s is down" % b.address, 3.0)
        self.assertTrue(down, "b not marked down: %s" % gw.stderr_text())
        # checks start at last + k * interval (timed-out checks keep the pace):
        # resume 200 ms into the next one that starts from now on
        k = int((time.monotonic() - last) / interval) + 1
        time.sleep(max(0.0, last + k * interval + 0.2 - time.monotonic()))
        n_before = len(b.check_times())
        start = len(gw.stderr_lines())
        resumed = time.time()
        b.proc.send_signal(signal.SIGCONT)
        hit = gw.wait_stderr(r"upstream u: %s is up" % b.address, 3.0, start=start)
        self.assertTrue(hit, "b not marked up after SIGCONT: %s" % gw.stderr_text())
        self.assertIn("is up (2 passed checks)", hit[1])
        after = log_time(hit[1]) - resumed
        self.assertGreaterEqual(after, interval - 0.05,
                                "b marked up %.3f s after SIGCONT, sooner than one interval "
                                "(500ms) allows with healthy_threshold 2" % after)
        self.assertGreaterEqual(len(b.check_times()) - n_before, 2,
                                "b answered fewer than healthy_threshold checks before it was up")


class SlowStartTests(GatewayTestCase):
    def ramp(self, balance, n_first, most):
        """slow_start 3s: b, marked up again by its checks, first gets a small
        part of the traffic (10% of its weight, growing), not its half at
        once; once the window is over the split is even."""
        a, b = self.start_stub("a"), self.start_stub("b")
        gw = self.start_gateway({"u": upstream(a, b, balance=balance, health_check=dict(HC),
                                               slow_start="3s")},
                                [route("r", "u")])
        self.assertEqual(self.spread(gw, 10), {"a": 5, "b": 5}, "no ramp at start-up")
        b.set_path("/healthz", "fixed", status=500)
        self.wait_log(gw, r"upstream u: %s is down" % b.address)
        b.clear_paths()
        self.wait_log(gw, r"upstream u: %s is up" % b.address)
        first = self.spread(gw, n_first, "/ramp")
        self.assertEqual(first["a"] + first["b"], n_first, first)
        self.assertLessEqual(first["b"], most, "b got much of its share at once: %r" % first)
        even = poll_until(lambda: self.spread(gw, 20, "/later") == {"a": 10, "b": 10}, 6.0,
                          interval=0.2)
        self.assertTrue(even, "b never got its full share back after the 3s slow start")
        return first

    def test_round_robin_ramp_after_failed_checks(self):
        """Round robin weighs b by weight x share: ~1 request in 11 at first
        (its half would be 20 of 40)."""
        first = self.ramp("round_robin", 40, 8)
        self.assertGreaterEqual(first["b"], 2, "b gets no traffic back: %r" % first)

    def test_least_request_ramp_after_failed_checks(self):
        """least_request (the default) lets b into ~10% of the picks at
        first: about 1 request in 20 here (its half would be 30 of 60)."""
        self.ramp("least_request", 60, 12)

    def wait_log(self, gw, pattern, timeout=3.0):
        hit = gw.wait_stderr(pattern, timeout)
        if not hit:
            self.fail("no stderr line matching %r within %.1fs; stderr:\n%s"
                      % (pattern, timeout, gw.stderr_text()))
        return hit

    spread = HealthCheckTests.spread


class OutlierTests(GatewayTestCase):
    def test_ejection_after_consecutive_failures_and_return(self):
        """bad answers 502; consecutive_failures 3, base_ejection_time 1s:
        after its 3rd failure bad gets no request for ~1s (its 502s reached
        clients unchanged, no retry configured), then gets traffic again;
        still failing, it is ejected again for 2 s (base x ejections). No
        slow start, so that its share comes back at once."""
        good = self.start_stub("good")
        bad = self.start_stub("bad", "fixed", status=502, body=b"bad gateway upstream")
        gw = self.start_gateway(
            {"u": upstream(good, bad, slow_start=0, outlier_detection={
                "consecutive_failures": 3, "base_ejection_time": "1s", "max_ejection_percent": 50})},
            [route("r", "u")])
        c = self.connect(gw)
        answers = Counter()
        for i in range(6):
            c.request("GET", "/od/%d" % i)
            r = c.read_response()
            answers[r.status] += 1
            if r.status == 502:
                self.assertEqual(r.body, b"bad gateway upstream", "a 502 of the upstream passes unchanged")
                self.assertIsNone(r.header("X-Gateway-Error"))
        self.assertEqual(answers, {200: 3, 502: 3})
        hit = gw.wait_stderr(r"upstream u: %s ejected for 1s" % bad.address, 1.0)
        self.assertTrue(hit, "no ejection logged; stderr:\n%s" % gw.stderr_text())
        ejected_at = time.monotonic()
        # Ejected: every request goes to good.
        t_end = ejected_at + 0.6
        n = 0
        while time.monotonic() < t_end:
            c.request("GET", "/od/out/%d" % n)
            r = c.read_response()
            self.assertStatus(r, 200, "while bad is ejected")
            self.assertEqual(r.json()["server"], "good")
            n += 1
            time.sleep(0.02)
        self.assertEqual(len(bad.requests), 3, "bad got requests while ejected")
        # Back after the ejection time.
        back = None
        while time.monotonic() < ejected_at + 3.0:
            c.request("GET", "/od/back")
            r = c.read_response()
            if len(bad.requests) > 3:
                back = time.monotonic()
                break
            time.sleep(0.02)
        self.assertIsNotNone(back, "bad never got traffic again after its 1s ejection")
        self.assertGreaterEqual(back - ejected_at, 0.85,
                                "bad returned %.2fs after its ejection (1s)" % (back - ejected_at))
        # Still failing: three more failures eject it again, now for 2s.
        for i in range(8):
            c.request("GET", "/od/again/%d" % i)
            c.read_response()
        hit = gw.wait_stderr(r"upstream u: %s ejected for 2s" % bad.address, 1.0)
        self.assertTrue(hit, "second ejection not logged as 2s; stderr:\n%s" % gw.stderr_text())

    def test_truncating_server_is_ejected(self):
        """A server that cuts off every response mid-body (head, then 100 of
        1000 bytes, then a reset) fails every try: after consecutive_failures
        3 it must be ejected and every later request goes to the good server.
        (A try counted as a success at its head and as a failure at the reset
        never makes 3 failures in a row.)"""
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100
        good = self.start_stub("good")
        bad = self.start_stub("bad", "rst", partial=head, partial_wait=0.05)
        gw = self.start_gateway(
            {"u": upstream(good, bad, outlier_detection={
                "consecutive_failures": 3, "base_ejection_time": "5s", "max_ejection_percent": 50})},
            [route("r", "u")])
        truncated = 0
        for i in range(12):
            try:
                self.fetch(gw, "GET", "/trunc/%d" % i)
            except HttpError:
                truncated += 1
        self.assertEqual(len(bad.requests), 3,
                         "the truncating server got %d of 12 requests (%d truncated responses);"
                         " expected ejection after 3; stderr:\n%s"
                         % (len(bad.requests), truncated, gw.stderr_text()))

    def test_ejection_with_retries_keeps_clients_whole(self):
        """With retries the bad server's failures never reach clients, and
        once it is ejected it gets nothing more."""
        good = self.start_stub("good")
        bad = self.start_stub("bad", "503")
        gw = self.start_gateway(
            {"u": upstream(good, bad, outlier_detection={
                "consecutive_failures": 3, "base_ejection_time": "5s", "max_ejection_percent": 50})},
            [route("r", "u", retry={"attempts": 2, "backoff": {"base": "1ms", "max": "2ms"}})])
        c = self.connect(gw)
        for i in range(30):
            c.request("GET", "/odr/%d" % i)
            self.assertStatus(c.read_response(), 200, "request %d" % i)
        self.assertEqual(len(bad.requests), 3, "bad should be ejected after exactly 3 failures")

    def test_single_server_ejected_no_healthy_upstream(self):
        """One server, max_ejection_percent 100, consecutive_failures 2,
        base_ejection_time 500ms: after 2 failures 503 no_healthy_upstream
        (no request reaches it), then it is tried again."""
        bad = self.start_stub("bad", "fixed", status=502, body=b"x")
        gw = self.start_gateway(
            {"u": upstream(bad, outlier_detection={
                "consecutive_failures": 2, "base_ejection_time": "500ms", "max_ejection_percent": 100})},
            [route("r", "u")])
        for i in range(2):
            self.assertStatus(self.fetch(gw, "GET", "/one/%d" % i), 502)
        t0 = time.monotonic()
        self.assertGatewayError(self.fetch(gw, "GET", "/one/out"), 503, "no_healthy_upstream")
        self.assertEqual(len(bad.requests), 2)
        bad.set("echo")
        while time.monotonic() < t0 + 2.0:
            r = self.fetch(gw, "GET", "/one/back")
            if r.status == 200:
                break
            self.assertGatewayError(r, 503, "no_healthy_upstream")
            time.sleep(0.03)
        self.assertStatus(r, 200, "the server never came back after its 500ms ejection")
        self.assertGreater(time.monotonic() - t0, 0.3, "back too early")

    def test_both_servers_failing_eject_neither(self):
        """Two servers both failing (the upstream fails as a whole): neither
        is ejected (ejecting one would only move its failures onto the other
        and keep it out once the outage ends); both keep serving their 503s
        (passed through), and the refusal is logged."""
        s1 = self.start_stub("s1", "503")
        s2 = self.start_stub("s2", "503")
        gw = self.start_gateway(
            {"u": upstream(s1, s2, outlier_detection={
                "consecutive_failures": 2, "base_ejection_time": "5s", "max_ejection_percent": 50})},
            [route("r", "u")])
        statuses = Counter()
        for i in range(20):
            r = self.fetch(gw, "GET", "/both/%d" % i)
            statuses[(r.status, r.header("X-Gateway-Error"))] += 1
        self.assertEqual(statuses, {(503, None): 20}, "answers with both servers failing")
        counts = sorted([len(s1.requests), len(s2.requests)])
        self.assertEqual(counts, [10, 10], "neither server ejected: %r" % counts)
        self.assertTrue(gw.wait_stderr(r"every other server is failing too", 1.0),
                        "the refused ejection is not logged; stderr:\n%s" % gw.stderr_text())

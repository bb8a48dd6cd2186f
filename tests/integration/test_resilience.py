"""Resilience: retries (which failures, which methods, which servers, the
deadline, the budget, never after the reply started), per-try timeouts and
circuit breakers with their fallback (SPEC sections 2, 4 and 5).

Durations in the configs are short (open_duration 1s, backoff of a few ms)
so that the whole file runs in a few seconds; every wait is a poll with a
deadline, or a wait the config itself dictates (an open breaker's 1 s).
"""

import socket
import struct
import threading
import time
from collections import Counter

from gwtest import (BlackHole, Conn, GatewayTestCase, HttpError, free_port, generated_body,
                    generated_sha256, poll_until, refused_address, route, upstream)

# Backoff short enough not to matter for the test's timing.
FAST_BACKOFF = {"base": "1ms", "max": "5ms"}


def dead_address():
    """A loopback address where connects are refused (gwtest.refused_address)."""
    return refused_address()


def body_of(stub, body):
    """The requests of `stub` that carried exactly `body`."""
    return [r for r in stub.requests if r.body == body]


def parallel(n, fn):
    """Runs fn(i) for i in range(n) in n threads; returns results in order
    (an exception is returned in place of its result)."""
    out = [None] * n

    def run(i):
        try:
            out[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - reported by the caller
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


class RetryTests(GatewayTestCase):
    def records_for(self, gw, prefix, n):
        """The access log records whose path starts with prefix (waits for n)."""
        deadline = time.monotonic() + 3
        while True:
            recs = [r for r in gw.access_records(0, timeout=0) if (r.get("path") or "").startswith(prefix)]
            if len(recs) >= n or time.monotonic() > deadline:
                return recs
            time.sleep(0.02)

    def test_one_of_three_down_no_client_errors(self):
        """Three servers, one a refused port, retry attempts 3: 60 GETs all
        get 200 from the live servers; the access log shows every request
        served by a live server and about a third of them needing a second
        try (the first one went to the dead server)."""
        a, b = self.start_stub("a"), self.start_stub("b")
        dead = dead_address()
        gw = self.start_gateway({"u": upstream(a, dead, b)},
                                [route("r", "u", retry={"attempts": 3, "backoff": FAST_BACKOFF})])
        c = self.connect(gw)
        seen = Counter()
        for i in range(60):
            c.request("GET", "/down/%d" % i)
            r = c.read_response()
            self.assertStatus(r, 200, "request %d (one server of three down)" % i)
            seen[r.json()["server"]] += 1
        self.assertEqual(sum(seen.values()), 60)
        self.assertEqual(set(seen), {"a", "b"}, "answers by server: %r" % seen)
        self.assertEqual(len(a.requests) + len(b.requests), 60,
                         "live servers saw duplicates: a=%d b=%d" % (len(a.requests), len(b.requests)))
        recs = self.records_for(gw, "/down/", 60)
        self.assertEqual(len(recs), 60, "access log records for /down/: %d" % len(recs))
        live = {a.address, b.address}
        bad = [r for r in recs if r.get("status") != 200 or r.get("server") not in live]
        self.assertEqual(bad, [], "records not served by a live server")
        self.assertIn("tries", recs[0], "access log record has no 'tries': %r" % recs[0])
        tries = Counter(r["tries"] for r in recs)
        self.assertEqual(set(tries) - {1, 2}, set(),
                         "a retry must go to a live server at once (never 3 tries): %r" % tries)
        self.assertGreaterEqual(tries[2], 10,
                                "the dead server should have been picked first ~20 times out of 60,"
                                " each then retried; tries histogram %r" % tries)

    def test_all_refused_502_after_attempts(self):
        """Every server refused, attempts 3: 502 upstream_unavailable after 3
        tries (access log), quickly."""
        gw = self.start_gateway({"u": upstream(dead_address(), dead_address(), dead_address())},
                                [route("r", "u", retry={"attempts": 3, "backoff": FAST_BACKOFF})])
        t0 = time.monotonic()
        r = self.fetch(gw, "GET", "/allrefused")
        self.assertGatewayError(r, 502, "upstream_unavailable")
        self.assertLess(time.monotonic() - t0, 2.0)
        recs = self.records_for(gw, "/allrefused", 1)
        self.assertEqual([x.get("tries") for x in recs], [3], "tries in the access log: %r" % recs)

    def test_reset_retried_on_each_other_server(self):
        """GET, three servers that all reset after reading the request,
        attempts 3: each server sees the request exactly once (a retry goes
        to a server not tried yet), then 502 upstream_unavailable."""
        stubs = [self.start_stub(n, "rst") for n in ("r1", "r2", "r3")]
        gw = self.start_gateway({"u": upstream(*stubs)},
                                [route("r", "u", retry={"attempts": 3, "backoff": FAST_BACKOFF})])
        r = self.fetch(gw, "GET", "/resets")
        self.assertGatewayError(r, 502, "upstream_unavailable")
        counts = [len(s.requests) for s in stubs]
        self.assertEqual(counts, [1, 1, 1], "requests per server (r1, r2, r3)")

    # ----- methods ------------------------------------------------------

    def two_servers(self, failing_mode, **opts):
        bad = self.start_stub("bad", failing_mode, **opts)
        good = self.start_stub("good")
        gw = self.start_gateway({"u": upstream(bad, good)},
                                [route("r", "u", retry={"attempts": 3, "backoff": FAST_BACKOFF})])
        return gw, bad, good

    def post_until_bad(self, gw, bad, headers_for=lambda i: (), tries=6):
        """POSTs distinct bodies until one reached `bad`; returns
        (response, body) for that one and the list of all (response, body)."""
        sent = []
        for i in range(tries):
            body = b"order-%d-%f" % (i, time.monotonic())
            r = self.fetch(gw, "POST", "/orders", headers=headers_for(i), body=body)
            sent.append((r, body))
            if body_of(bad, body):
                return r, body, sent
        self.fail("round robin over two servers never sent a POST to the failing one in %d"
                  " requests: %r" % (tries, [x.describe() for x, _ in sent]))

    def test_post_503_not_retried(self):
        """A POST without Idempotency-Key that got 503 from a server is not
        retried: the client gets that 503 unchanged (the stub's body, no
        X-Gateway-Error) and the other server never sees the POST."""
        gw, bad, good = self.two_servers("fixed", status=503, body=b'{"upstream":"busy"}',
                                         content_type="application/json")
        r, body, sent = self.post_until_bad(gw, bad)
        self.assertStatus(r, 503, "POST that reached the failing server")
        self.assertEqual(r.body, b'{"upstream":"busy"}', "the upstream's 503 must pass through unchanged")
        self.assertNotGatewayError(r)
        self.assertEqual(len(body_of(bad, body)), 1, "the failing server saw the POST once")
        self.assertEqual(body_of(good, body), [], "a POST without Idempotency-Key was retried")
        self.assertEqual(len(bad.requests) + len(good.requests), len(sent),
                         "upstream requests vs POSTs sent (no retry at all)")

    def test_post_reset_not_retried(self):
        """A POST without Idempotency-Key whose server reset the connection
        after reading it: 502 upstream_unavailable, seen once, not retried."""
        gw, bad, good = self.two_servers("rst")
        r, body, sent = self.post_until_bad(gw, bad)
        self.assertGatewayError(r, 502, "upstream_unavailable")
        self.assertEqual(len(body_of(bad, body)), 1, "the resetting server saw the POST once")
        self.assertEqual(body_of(good, body), [], "a POST without Idempotency-Key was retried after a reset")

    def check_post_with_key_retried(self, mode, **opts):
        gw, bad, good = self.two_servers(mode, **opts)
        r, body, sent = self.post_until_bad(gw, bad, headers_for=lambda i: [("Idempotency-Key", "key-%d" % i)])
        for resp, b in sent:
            self.assertStatus(resp, 200, "POST with Idempotency-Key (failing server: %s)" % mode)
            self.assertEqual(resp.json()["server"], "good")
            self.assertEqual(len(body_of(good, b)), 1, "the good server saw each POST once")
        retried = body_of(good, body)[0]
        self.assertEqual(retried.body, body, "the retried POST carries the same body")
        self.assertEqual(retried.header("Idempotency-Key"), body_of(bad, body)[0].header("Idempotency-Key"))

    def test_post_with_idempotency_key_retried_after_503(self):
        """The same POST with an Idempotency-Key is retried on the other server."""
        self.check_post_with_key_retried("fixed", status=503, body=b"busy")

    def test_post_with_idempotency_key_retried_after_reset(self):
        self.check_post_with_key_retried("rst")

    def test_large_chunked_post_with_key_retried_whole(self):
        """A 1 MiB POST sent chunked, with Idempotency-Key, reaches a server
        that resets and one that answers 503: the retries carry the whole
        body again (same length and sha256 at every server)."""
        rst = self.start_stub("rst", "rst")
        busy = self.start_stub("busy", "fixed", status=503, body=b"busy")
        good = self.start_stub("good")
        gw = self.start_gateway({"u": upstream(rst, busy, good)},
                                [route("r", "u", retry={"attempts": 3, "backoff": FAST_BACKOFF})])
        size = 1 << 20
        for i in range(3):
            r = self.fetch(gw, "POST", "/bigpost/%d" % i, headers=[("Idempotency-Key", "big-%d" % i)],
                           body=generated_body(size), chunked=True)
            self.assertStatus(r, 200, "POST %d" % i)
            self.assertEqual((r.json()["body_len"], r.json()["body_sha256"]), (size, generated_sha256(size)))
        seen = rst.requests + busy.requests + good.requests
        self.assertGreater(len(seen), 3, "no retry happened")
        self.assertEqual({(x.body_len, x.body_sha256) for x in seen}, {(size, generated_sha256(size))},
                         "a try carried a different body")

    def test_put_retried_after_503(self):
        """PUT is idempotent: retried without any Idempotency-Key."""
        gw, bad, good = self.two_servers("fixed", status=503, body=b"busy")
        for i in range(4):
            r = self.fetch(gw, "PUT", "/items/%d" % i, body=b"v%d" % i)
            self.assertStatus(r, 200, "PUT %d" % i)
        self.assertGreaterEqual(len(bad.requests), 1, "round robin never picked the failing server")
        self.assertEqual(len(good.requests), 4)

    def test_post_connect_failure_retried(self):
        """A POST (no Idempotency-Key) whose first try could not connect (a
        refused port) never reached an upstream, so it is retried."""
        good = self.start_stub("good")
        gw = self.start_gateway({"u": upstream(dead_address(), good)},
                                [route("r", "u", retry={"attempts": 2, "backoff": FAST_BACKOFF})])
        for i in range(6):
            body = b"pay-%d" % i
            r = self.fetch(gw, "POST", "/pay", body=body)
            self.assertStatus(r, 200, "POST %d with one server refusing connections" % i)
            self.assertEqual(r.json()["body_sha256"], body_of(good, body)[0].body_sha256)
        self.assertEqual(len(good.requests), 6, "each POST reached the live server exactly once")
        recs = self.records_for(gw, "/pay", 6)
        self.assertIn(2, [x.get("tries") for x in recs],
                      "no POST needed 2 tries, so the refused server was never picked: %r"
                      % [x.get("tries") for x in recs])

    def test_retry_after_streamed_503_body(self):
        """A 503 whose 1 MiB body does not arrive in one piece (the head is
        seen before the body) is dropped and retried like a small one."""
        bad = self.start_stub("bad", "fixed", status=503, body=b"z" * (1 << 20))
        good = self.start_stub("good")
        gw = self.start_gateway({"u": upstream(bad, good)},
                                [route("r", "u", retry={"attempts": 2, "backoff": FAST_BACKOFF})])
        for i in range(4):
            r = self.fetch(gw, "GET", "/big503/%d" % i)
            self.assertStatus(r, 200, "request %d" % i)
            self.assertEqual(r.json()["server"], "good")
        self.assertGreaterEqual(len(bad.requests), 1)

    def test_retry_on_list_is_honoured(self):
        """`on` replaces the default list: with on [500] a 500 is retried and
        a 503 is not (it passes through unchanged)."""
        bad = self.start_stub("bad", "fixed", status=500, body=b"oops")
        good = self.start_stub("good")
        gw = self.start_gateway({"u": upstream(bad, good)},
                                [route("r", "u", retry={"attempts": 2, "on": [500], "backoff": FAST_BACKOFF})])
        for i in range(4):
            self.assertStatus(self.fetch(gw, "GET", "/on500/%d" % i), 200, "500 with on: [500]")
        self.assertGreaterEqual(len(bad.requests), 1)
        bad.set("fixed", status=503, body=b"busy")
        statuses = Counter()
        for i in range(4):
            r = self.fetch(gw, "GET", "/on503/%d" % i)
            statuses[(r.status, r.body if r.status != 200 else b"")] += 1
        self.assertEqual(statuses, {(200, b""): 2, (503, b"busy"): 2},
                         "503 must not be retried when `on` is [500]")

    def test_connect_timeout_retried(self):
        """A server that never completes the handshake (connect_timeout
        200ms) is a connect failure: retried on the other server, 200."""
        hole = BlackHole()
        self.addCleanup(hole.close)
        good = self.start_stub("good")
        gw = self.start_gateway({"u": upstream(hole.address, good, connect_timeout="200ms")},
                                [route("r", "u", timeout="3s", retry={"attempts": 2, "backoff": FAST_BACKOFF})])
        for i in range(4):
            t0 = time.monotonic()
            r = self.fetch(gw, "POST", "/hole/%d" % i, body=b"x")
            self.assertStatus(r, 200, "request %d" % i)
            self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(len(good.requests), 4)

    # ----- timeouts and the deadline -------------------------------------

    def test_slow_server_bypassed_by_per_try_timeout(self):
        """One server of three answers after 2 s; per_try_timeout 200ms with
        retries: every answer is 200 from a fast server, each well under the
        route timeout (3s), and the slow server saw its tries abandoned."""
        fast1, fast2 = self.start_stub("fast1"), self.start_stub("fast2")
        slow = self.start_stub("slow", delay=2.0)
        gw = self.start_gateway(
            {"u": upstream(fast1, slow, fast2)},
            [route("r", "u", timeout="3s",
                   retry={"attempts": 3, "per_try_timeout": "200ms", "backoff": FAST_BACKOFF})])
        worst = 0.0
        for i in range(12):
            t0 = time.monotonic()
            r = self.fetch(gw, "GET", "/slow/%d" % i, timeout=5)
            took = time.monotonic() - t0
            worst = max(worst, took)
            self.assertStatus(r, 200, "request %d" % i)
            self.assertIn(r.json()["server"], ("fast1", "fast2"))
            self.assertLess(took, 0.9, "request %d took %.2fs (per_try_timeout 200ms)" % (i, took))
        self.assertGreaterEqual(len(slow.requests), 2, "the slow server was never tried")
        # A retry tells its server the time left of the route deadline, less
        # the 200ms the timed-out try used (X-Request-Timeout-Ms).
        after_slow = [r for r in fast1.requests + fast2.requests
                      if any(s.header("X-Request-ID") == r.header("X-Request-ID") for s in slow.requests)]
        self.assertTrue(after_slow, "no request was retried after the slow server")
        for r in after_slow:
            left = int(r.header("X-Request-Timeout-Ms"))
            self.assertLessEqual(left, 2810, "X-Request-Timeout-Ms of a retry after a 200ms try (10ms clock slack)")
            self.assertGreater(left, 2000)
        self.assertTrue(slow.wait_peer_close(timeout=1.0),
                        "the gateway did not close the connection of a timed-out try")

    def test_per_try_timeout_everywhere_504(self):
        """Every server slow, attempts 3, per_try_timeout 200ms, route timeout
        3s: 504 upstream_timeout after about 3 x 200ms, not after 3 s."""
        stubs = [self.start_stub(n, delay=2.0) for n in ("s1", "s2", "s3")]
        gw = self.start_gateway(
            {"u": upstream(*stubs)},
            [route("r", "u", timeout="3s",
                   retry={"attempts": 3, "per_try_timeout": "200ms", "backoff": FAST_BACKOFF})])
        t0 = time.monotonic()
        r = self.fetch(gw, "GET", "/allslow", timeout=5)
        took = time.monotonic() - t0
        self.assertGatewayError(r, 504, "upstream_timeout")
        self.assertGreaterEqual(took, 0.55, "504 before three 200ms tries: %.2fs" % took)
        self.assertLess(took, 1.5, "504 took %.2fs" % took)
        self.assertEqual([len(s.requests) for s in stubs], [1, 1, 1], "one try per server")

    def test_no_retry_when_deadline_leaves_no_room(self):
        """Route timeout 500ms, per_try_timeout 400ms: after the first try
        times out only 100ms are left, less than a try needs, so there is no
        retry: 504 after ~0.4s, one upstream request in all."""
        stubs = [self.start_stub(n, delay=2.0) for n in ("s1", "s2")]
        gw = self.start_gateway(
            {"u": upstream(*stubs)},
            [route("r", "u", timeout="500ms",
                   retry={"attempts": 3, "per_try_timeout": "400ms", "backoff": FAST_BACKOFF})])
        t0 = time.monotonic()
        r = self.fetch(gw, "GET", "/tight", timeout=5)
        took = time.monotonic() - t0
        self.assertGatewayError(r, 504, "upstream_timeout")
        self.assertLess(took, 0.8, "took %.2fs with a 500ms route timeout" % took)
        time.sleep(0.2)  # a (wrong) second try would have started by now
        self.assertEqual(sum(len(s.requests) for s in stubs), 1,
                         "upstream requests: %r" % [len(s.requests) for s in stubs])

    def test_post_per_try_timeout_not_retried(self):
        """A POST without Idempotency-Key whose try timed out may have been
        processed: 504 upstream_timeout, no second try anywhere."""
        slow = self.start_stub("slow", delay=2.0)
        other = self.start_stub("other", delay=2.0)
        gw = self.start_gateway(
            {"u": upstream(slow, other)},
            [route("r", "u", timeout="3s",
                   retry={"attempts": 3, "per_try_timeout": "200ms", "backoff": FAST_BACKOFF})])
        t0 = time.monotonic()
        r = self.fetch(gw, "POST", "/slowpost", body=b"once")
        self.assertGatewayError(r, 504, "upstream_timeout")
        self.assertLess(time.monotonic() - t0, 0.6)
        time.sleep(0.2)
        self.assertEqual(len(slow.requests) + len(other.requests), 1, "the POST was retried")

    # ----- once the reply started -----------------------------------------

    def test_no_retry_after_response_started(self):
        """The server sends a head and part of the body, then resets: the
        reply had started, so no retry; the client sees a truncated response
        (the connection ends before Content-Length bytes) and the servers saw
        one request in all."""
        part = b"x" * 100
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n"
        stubs = [self.start_stub(n, "rst", partial=head + part, partial_wait=0.3) for n in ("p1", "p2")]
        gw = self.start_gateway({"u": upstream(*stubs)},
                                [route("r", "u", retry={"attempts": 3, "backoff": FAST_BACKOFF})])
        c = self.connect(gw)
        c.request("GET", "/partial")
        try:
            r = c.read_response(timeout=5)
        except HttpError as e:
            text = str(e)
        else:
            self.fail("a complete response arrived: %s" % r.describe())
        self.assertIn("body bytes missing (got 100)", text,
                      "the client should see the head and 100 bytes, then the end: %s" % text)
        time.sleep(0.2)
        self.assertEqual(sum(len(s.requests) for s in stubs), 1,
                         "retried after the response had started: %r" % [len(s.requests) for s in stubs])


    def test_access_log_of_cut_off_replies_keeps_client_and_path(self):
        """The access log records of a reply cut off by the upstream (head and
        part of the body, then a reset) and of a client that went away while
        its request waited for a slow upstream (499) still name the client and
        the path, like every other record."""
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100
        cut = self.start_stub("cut", "rst", partial=head, partial_wait=0.05)
        slow = self.start_stub("slow", delay=1.0)
        gw = self.start_gateway({"cut": upstream(cut), "slow": upstream(slow)},
                                [route("cut", "cut", path_prefix="/cut"),
                                 route("slow", "slow", path_prefix="/slow")])
        with self.assertRaises(HttpError):
            self.fetch(gw, "GET", "/cut/me?x=1")
        c = Conn(gw.port)
        c.request("GET", "/slow/gone?y=2")
        self.assertTrue(slow.wait_requests(1, timeout=1.0))
        c.close()
        recs = gw.access_records(2, timeout=3.0)
        self.assertEqual(len(recs), 2, "access log records: %r" % recs)
        by_route = {r["route"]: r for r in recs}
        self.assertEqual(by_route["slow"].get("status"), 499, by_route["slow"])
        got = {k: (r.get("client"), r.get("path")) for k, r in by_route.items()}
        self.assertEqual(got, {"cut": ("127.0.0.1", "/cut/me?x=1"), "slow": ("127.0.0.1", "/slow/gone?y=2")},
                         "client and path in the records: %r" % recs)


class BudgetTests(GatewayTestCase):
    def test_budget_caps_retries_in_total_outage(self):
        """Every server answers 503, attempts 5, budget ratio 0.2 and
        min_per_second 1: N requests cost the upstreams at most about
        1.2 N + 10 tries (not 5 N), and at least N + 10 (the floor is used);
        every client gets the upstream's 503 unchanged."""
        stubs = [self.start_stub(n, "503") for n in ("o1", "o2", "o3")]
        gw = self.start_gateway(
            {"u": upstream(*stubs)},
            [route("r", "u", retry={"attempts": 5, "backoff": {"base": "1ms", "max": "2ms"},
                                    "budget": {"ratio": 0.2, "min_per_second": 1}})],
            workers=4)  # the budget is shared by the workers
        n = 120

        def worker(k):
            statuses = []
            with Conn(gw.port) as c:
                for i in range(k, n, 4):
                    c.request("GET", "/outage/%d" % i)
                    r = c.read_response()
                    statuses.append((r.status, r.header("X-Gateway-Error"), r.body))
            return statuses

        results = parallel(4, worker)
        for res in results:
            if isinstance(res, Exception):
                raise res
        flat = [x for res in results for x in res]
        self.assertEqual(len(flat), n)
        self.assertEqual(set(flat), {(503, None, b'{"upstream":"busy"}')},
                         "answers in a total outage (expected the upstream 503 unchanged)")
        total = sum(len(s.requests) for s in stubs)
        self.assertLessEqual(total, int(1.2 * n) + 10 + 2,
                             "%d requests cost %d upstream tries: the budget (ratio 0.2, floor 10"
                             " per 10s) allows about %d" % (n, total, int(1.2 * n) + 10))
        self.assertGreaterEqual(total, n + 10,
                                "%d requests cost only %d tries: retries within the budget's floor"
                                " were not made" % (n, total))

    def test_resends_after_reset_on_reused_connections_count_against_budget(self):
        """A server that answers the first request of each connection and
        resets every later one looks like an idle connection it closed: the
        gateway re-sends once on a new connection, but within the retry
        budget (ratio 0.2, no floor), so the server never sees more than
        about 1.2 x the client load."""
        counter = {"requests": 0}
        lock = threading.Lock()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        stop = threading.Event()

        def serve(conn):
            with conn:
                conn.settimeout(5)
                first = True
                buf = b""
                while not stop.is_set():
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                    if b"\r\n\r\n" not in buf:
                        continue
                    buf = b""
                    with lock:
                        counter["requests"] += 1
                    if not first:
                        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
                        return  # reset
                    first = False
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        def accept_loop():
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

        t = threading.Thread(target=accept_loop, daemon=True)
        t.start()
        self.addCleanup(lambda: (stop.set(), t.join(2), listener.close()))
        gw = self.start_gateway(
            {"u": {"servers": ["127.0.0.1:%d" % port]}},
            [route("r", "u", retry={"attempts": 1, "budget": {"ratio": 0.2, "min_per_second": 0}})])
        n = 60
        statuses = Counter()
        with Conn(gw.port) as c:
            for i in range(n):
                c.request("GET", "/reused/%d" % i)
                statuses[c.read_response().status] += 1
        with lock:
            seen = counter["requests"]
        self.assertLessEqual(seen, int(1.2 * n) + 2,
                             "%d client requests cost %d upstream requests (answers %s): re-sends"
                             " after resets on reused connections escape the budget"
                             % (n, seen, dict(statuses)))
        self.assertGreater(statuses[200], 1, "no request was served: %s" % dict(statuses))


class BreakerTests(GatewayTestCase):
    BREAKER = {"min_requests": 5, "failure_ratio": 0.5, "open_duration": "1s", "window": "10s"}

    def trip(self, gw, stub, limit=12):
        """Sends GETs until the breaker answers circuit_open; returns
        (upstream requests before that, the circuit_open response, time)."""
        for i in range(limit):
            r = self.fetch(gw, "GET", "/cb/%d" % i)
            if r.header("X-Gateway-Error") == "circuit_open":
                return len(stub.app_requests), r, time.monotonic()
            self.assertStatus(r, 503, "before the trip (request %d)" % i)
            self.assertNotGatewayError(r)
        self.fail("no circuit_open after %d requests answered 503 by the upstream; stub saw %d;"
                  " stderr:\n%s" % (limit, len(stub.requests), gw.stderr_text()))

    def assertRetryAfter(self, r, lo, hi):
        ra = r.header("Retry-After")
        self.assertIsNotNone(ra, "circuit_open without Retry-After: %s" % r.describe())
        self.assertTrue(ra.isdigit() and lo <= int(ra) <= hi,
                        "Retry-After %r, expected %d..%d seconds" % (ra, lo, hi))

    def test_breaker_trips_fails_fast_and_recovers(self):
        """100% 503, min_requests 5, failure_ratio 0.5, open_duration 1s:
        exactly 5 tries trip it; then 503 circuit_open with Retry-After: 1
        and no upstream request or connection until half-open; the stub heals,
        the probes succeed and traffic flows again (closed)."""
        stub = self.start_stub("cb", "503")
        gw = self.simple_gateway(stub, route_opts={"circuit_breaker": dict(self.BREAKER)})
        before, r, tripped_at = self.trip(gw, stub)
        self.assertEqual(before, 5, "tries before the breaker opened (min_requests 5)")
        self.assertGatewayError(r, 503, "circuit_open")
        self.assertRetryAfter(r, 1, 1)
        conns = stub.connections
        # While open: fail fast, nothing reaches the upstream.
        t_end = tripped_at + 0.6
        n_open = 0
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            r = self.fetch(gw, "GET", "/cb/open")
            self.assertGatewayError(r, 503, "circuit_open")
            self.assertRetryAfter(r, 1, 1)
            self.assertLess(time.monotonic() - t0, 0.2, "circuit_open must be fast")
            n_open += 1
            time.sleep(0.03)
        self.assertGreater(n_open, 3)
        self.assertEqual(len(stub.app_requests), 5, "requests reached the upstream while open")
        self.assertEqual(stub.connections, conns, "connections were made while open")
        self.assertTrue(gw.wait_stderr(r"breaker r: closed -> open", 1.0),
                        "no breaker transition logged; stderr:\n%s" % gw.stderr_text())
        recs = poll_until(lambda: [x for x in gw.access_records(0, timeout=0) if x.get("path") == "/cb/open"], 1.0)
        self.assertTrue(recs, "no access log record for /cb/open")
        rec = recs[0]
        self.assertEqual((rec.get("status"), rec.get("error"), rec.get("server"), rec.get("tries")),
                         (503, "circuit_open", None, 0), "access log record of a circuit_open: %r" % rec)
        # Heal; the first success comes only after open_duration.
        stub.set("echo")
        deadline = tripped_at + 3.0
        first_ok = None
        while time.monotonic() < deadline:
            r = self.fetch(gw, "GET", "/cb/heal")
            if r.status == 200:
                first_ok = time.monotonic()
                break
            self.assertGatewayError(r, 503, "circuit_open")
            time.sleep(0.05)
        self.assertIsNotNone(first_ok, "no 200 within 3s of the trip (open_duration 1s); stderr:\n%s"
                             % gw.stderr_text())
        self.assertGreaterEqual(first_ok - tripped_at, 0.85,
                                "a request reached the upstream %.2fs after the trip (open_duration 1s)"
                                % (first_ok - tripped_at))
        # Closed again: everything flows (the first 4 of these are the rest of the probes).
        for i in range(15):
            r = self.fetch(gw, "GET", "/cb/after/%d" % i)
            self.assertStatus(r, 200, "request %d after the heal" % i)
        self.assertTrue(gw.wait_stderr(r"breaker r: half-open -> closed", 1.0),
                        "no half-open -> closed logged; stderr:\n%s" % gw.stderr_text())

    def test_failed_probe_waits_the_probe_interval(self):
        """Still failing when half-open: exactly one probe reaches the
        upstream (a probe is never retried, even with retry configured), its
        503 goes to the client; the breaker stays half-open and the next
        probe may go 500 ms (min(open_duration, 500ms)) after the failed one
        was sent, not after a doubled open time."""
        stub = self.start_stub("cb", "503")
        gw = self.simple_gateway(stub, route_opts={
            "circuit_breaker": dict(self.BREAKER, half_open_requests=1),
            "retry": {"attempts": 3, "backoff": FAST_BACKOFF, "on": [503]}})
        # With retries, each request makes up to 3 tries: the trip comes sooner.
        before, r, tripped_at = self.trip(gw, stub)
        self.assertGatewayError(r, 503, "circuit_open")
        time.sleep(max(0.0, tripped_at + 1.05 - time.monotonic()))  # open_duration 1s
        probe_at = time.monotonic()
        r = self.fetch(gw, "GET", "/cb/probe")
        self.assertStatus(r, 503, "the probe's answer")
        self.assertNotGatewayError(r)
        self.assertEqual(len(stub.app_requests), before + 1, "the probe was retried (or not sent)")
        r = self.fetch(gw, "GET", "/cb/reopened")
        self.assertGatewayError(r, 503, "circuit_open")
        self.assertRetryAfter(r, 1, 1)
        self.assertEqual(len(stub.app_requests), before + 1)
        time.sleep(max(0.0, probe_at + 0.6 - time.monotonic()))
        r = self.fetch(gw, "GET", "/cb/probe2")
        self.assertStatus(r, 503, "the second probe's answer")
        self.assertNotGatewayError(r)
        self.assertEqual(len(stub.app_requests), before + 2, "no second probe 0.6 s after the first")

    def test_half_open_probes_one_at_a_time(self):
        """half_open_requests 3, 4 workers (the breaker is shared); 8
        concurrent requests arrive when the open time is over and the (healed,
        slow) upstream takes 0.4s each: exactly one, the probe, reaches it and
        gets 200, the other 7 get circuit_open at once; the next two requests
        are the other probes, then the breaker is closed."""
        stub = self.start_stub("cb", "503")
        gw = self.simple_gateway(stub, route_opts={
            "circuit_breaker": dict(self.BREAKER, half_open_requests=3)}, workers=4)
        before, r, tripped_at = self.trip(gw, stub)
        stub.set("echo", delay=0.4)
        time.sleep(max(0.0, tripped_at + 1.05 - time.monotonic()))
        results = parallel(8, lambda i: self.fetch(gw, "GET", "/cb/probe/%d" % i, timeout=5))
        for x in results:
            if isinstance(x, Exception):
                raise x
        statuses = Counter((x.status, x.header("X-Gateway-Error")) for x in results)
        self.assertEqual(statuses, {(200, None): 1, (503, "circuit_open"): 7},
                         "8 concurrent requests in half-open: one probe at a time")
        for x in results:
            if x.status == 503:
                self.assertRetryAfter(x, 1, 2)
        self.assertEqual(len(stub.app_requests), before + 1)
        stub.set("echo")
        for i in range(5):
            self.assertStatus(self.fetch(gw, "GET", "/cb/closed/%d" % i), 200, "after the probes")
        self.assertTrue(gw.wait_stderr(r"breaker r: half-open -> closed", 1.0),
                        "no half-open -> closed logged; stderr:\n%s" % gw.stderr_text())

    def test_outage_after_healthy_traffic_trips_and_recovery_within_a_second(self):
        """The issue's config (window 10s, min_requests 20, ratio 0.5), open
        1s: after 2 s of successes at ~200 req/s (400 in the window) the
        upstream answers 503: the breaker opens within a second (the last
        second is judged on its own; the window alone would need 400
        failures). While it fails the upstream sees only the probes, two a
        second; once it heals, a client polling every 10 ms gets a 200 within
        a second, and everything flows again."""
        stub = self.start_stub("cb", "echo")
        gw = self.simple_gateway(stub, route_opts={"circuit_breaker": {
            "window": "10s", "min_requests": 20, "failure_ratio": 0.5, "open_duration": "1s"}})
        conn = [None]

        def get(path):
            for _ in range(2):
                try:
                    if conn[0] is None:
                        conn[0] = Conn(gw.port)
                    conn[0].request("GET", path)
                    return conn[0].read_response()
                except (OSError, HttpError):
                    conn[0].close()
                    conn[0] = None
            self.fail("no answer to %s" % path)

        self.addCleanup(lambda: conn[0] and conn[0].close())
        t_end = time.monotonic() + 2.0
        i = 0
        while time.monotonic() < t_end:
            self.assertStatus(get("/ok/%d" % i), 200)
            i += 1
            time.sleep(0.005)
        stub.set("503")
        t_fail = time.monotonic()
        while True:
            r = get("/fail")
            if r.header("X-Gateway-Error") == "circuit_open":
                break
            self.assertStatus(r, 503)
            self.assertLess(time.monotonic() - t_fail, 3.0, "no trip 3 s into the outage")
            time.sleep(0.005)
        tripped = time.monotonic()
        self.assertLess(tripped - t_fail, 1.0, "tripped %.2fs into the outage, after %d "
                        "successes" % (tripped - t_fail, i))
        seen = len(stub.app_requests)
        while time.monotonic() < tripped + 2.3:  # open 1s, then ~3 probes
            r = get("/down")
            self.assertStatus(r, 503)
            time.sleep(0.02)
        probes = len(stub.app_requests) - seen
        self.assertTrue(2 <= probes <= 4, "%d requests reached the failing upstream in the"
                        " 1.3 s after open_duration (a probe every 500 ms)" % probes)
        stub.set("echo")
        t_heal = time.monotonic()
        while True:
            r = get("/heal")
            if r.status == 200:
                break
            self.assertGatewayError(r, 503, "circuit_open")
            self.assertLess(time.monotonic() - t_heal, 3.0, "no success 3 s after the heal")
            time.sleep(0.01)
        self.assertLess(time.monotonic() - t_heal, 1.0, "first success %.2fs after the heal"
                        % (time.monotonic() - t_heal))
        for k in range(20):
            self.assertStatus(get("/after/%d" % k), 200, "request %d after the first success" % k)
        self.assertTrue(gw.wait_stderr(r"breaker r: closed -> open \(failure ratio .* in the "
                                       r"last second\)", 1.0),
                        "no last-second trip logged; stderr:\n%s" % gw.stderr_text())

    def test_probe_whose_client_left_frees_its_slot(self):
        """half_open_requests 1: the one probe's client goes away before the
        (slow) upstream answers. That probe never got an outcome; its slot
        must come back, so the next request, well within the open time, is
        the probe and gets 200 (not circuit_open until some timeout)."""
        stub = self.start_stub("cb", "503")
        gw = self.simple_gateway(stub, route_opts={"circuit_breaker": {
            "consecutive_failures": 2, "min_requests": 1000, "open_duration": "1s",
            "half_open_requests": 1}})
        for i in range(2):
            self.assertStatus(self.fetch(gw, "GET", "/pc/%d" % i), 503)
        self.assertGatewayError(self.fetch(gw, "GET", "/pc/open"), 503, "circuit_open")
        tripped_at = time.monotonic()
        stub.set("echo", delay=1.0)
        time.sleep(max(0.0, tripped_at + 1.05 - time.monotonic()))
        c = Conn(gw.port)
        c.request("GET", "/pc/probe")
        self.assertTrue(stub.wait_requests(3, timeout=1.0)[2:], "the probe did not reach the upstream")
        c.close()
        self.assertTrue(stub.wait_peer_close(timeout=1.0), "the probe's upstream request was not cancelled")
        stub.set("echo")
        r = self.fetch(gw, "GET", "/pc/next")
        self.assertStatus(r, 200, "the request after an abandoned probe (breaker wedged half-open?)")

    def test_probe_without_healthy_server_frees_its_slot(self):
        """half_open_requests 1, health checks on: when the open time ends
        the only server is down, so the probe request gets 503
        no_healthy_upstream without any try. Once the server is up again the
        next request must be admitted as a probe (200), not rejected
        circuit_open because the first probe used the only slot."""
        stub = self.start_stub("cb", "503")
        stub.set_path("/healthz", "fixed", status=200)  # checks pass while requests get 503
        gw = self.start_gateway(
            {"u": upstream(stub, health_check={"path": "/healthz", "interval": "100ms",
                                               "timeout": "100ms", "unhealthy_threshold": 1,
                                               "healthy_threshold": 1})},
            [route("r", "u", circuit_breaker={"consecutive_failures": 2, "min_requests": 1000,
                                              "open_duration": "3s", "half_open_requests": 1})])
        for i in range(2):
            self.assertStatus(self.fetch(gw, "GET", "/ph/%d" % i), 503)
        self.assertGatewayError(self.fetch(gw, "GET", "/ph/open"), 503, "circuit_open")
        tripped_at = time.monotonic()
        stub.set("echo")
        stub.set_path("/healthz", "fixed", status=500)
        self.assertTrue(gw.wait_stderr(r"is down", 1.0), "not marked down: %s" % gw.stderr_text())
        time.sleep(max(0.0, tripped_at + 3.05 - time.monotonic()))
        self.assertGatewayError(self.fetch(gw, "GET", "/ph/probe"), 503, "no_healthy_upstream")
        n = len(gw.stderr_lines())
        stub.set_path("/healthz", "fixed", status=200)
        self.assertTrue(gw.wait_stderr(r"is up", 1.0, start=n), "not marked up: %s" % gw.stderr_text())
        r = self.fetch(gw, "GET", "/ph/next")
        self.assertStatus(r, 200, "first request once the server is up (breaker wedged half-open?)")

    def test_truncating_server_trips_consecutive_failures(self):
        """consecutive_failures 3; every response is cut off mid-body (head,
        100 of 1000 bytes, reset): each is a failed try, so the 4th request
        finds the breaker open. A try must be counted once, not as a success
        at its head and again as a failure at the reset."""
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100
        stub = self.start_stub("trunc", "rst", partial=head, partial_wait=0.05)
        gw = self.simple_gateway(stub, route_opts={"circuit_breaker": {
            "consecutive_failures": 3, "min_requests": 1000, "open_duration": "5s"}})
        outcomes = []
        for i in range(5):
            try:
                r = self.fetch(gw, "GET", "/tr/%d" % i)
                outcomes.append("%d %s" % (r.status, r.header("X-Gateway-Error")))
            except HttpError:
                outcomes.append("truncated")
        self.assertEqual(outcomes[:3], ["truncated"] * 3, "outcomes %r" % outcomes)
        self.assertEqual(outcomes[3:], ["503 circuit_open"] * 2,
                         "3 truncated responses in a row did not open the breaker: outcomes %r,"
                         " upstream requests %d" % (outcomes, len(stub.requests)))

    def test_slow_calls_trip_the_breaker(self):
        """slow_call_duration 100ms, slow_call_ratio 0.5, min_requests 4: an
        upstream answering 200 after 0.2s trips the breaker (4 tries)."""
        stub = self.start_stub("slowcb", delay=0.2)
        gw = self.simple_gateway(stub, route_opts={"circuit_breaker": {
            "min_requests": 4, "slow_call_duration": "100ms", "slow_call_ratio": 0.5,
            "open_duration": "5s"}})
        for i in range(4):
            self.assertStatus(self.fetch(gw, "GET", "/slowcb/%d" % i), 200)
        self.assertGatewayError(self.fetch(gw, "GET", "/slowcb/open"), 503, "circuit_open")
        self.assertEqual(len(stub.requests), 4)

    def test_4xx_never_trips(self):
        """404s are not failures: 30 of them never open the breaker."""
        stub = self.start_stub("nf", "fixed", status=404, body=b"nope")
        gw = self.simple_gateway(stub, route_opts={"circuit_breaker": {
            "min_requests": 5, "failure_ratio": 0.5, "consecutive_failures": 2, "open_duration": "5s"}})
        c = self.connect(gw)
        for i in range(30):
            c.request("GET", "/nf/%d" % i)
            r = c.read_response()
            self.assertStatus(r, 404, "request %d" % i)
            self.assertNotGatewayError(r)

    def test_fallback_replaces_circuit_open(self):
        """With a fallback the open breaker answers its status, content type
        and body, still with X-Gateway-Error: circuit_open; the trip here is
        consecutive_failures 2 (min_requests is far away)."""
        stub = self.start_stub("cb", "503")
        gw = self.simple_gateway(stub, route_opts={
            "circuit_breaker": {"consecutive_failures": 2, "min_requests": 1000, "open_duration": "5s"},
            "fallback": {"status": 200, "content_type": "text/plain; charset=utf-8",
                         "body": "cached catalogue"}})
        for i in range(2):
            r = self.fetch(gw, "GET", "/fb/%d" % i)
            self.assertStatus(r, 503, "upstream 503 %d before the trip" % i)
            self.assertNotGatewayError(r)
        for i in range(3):
            r = self.fetch(gw, "GET", "/fb/open/%d" % i)
            self.assertStatus(r, 200, "fallback status")
            self.assertEqual(r.body, b"cached catalogue")
            self.assertEqual(r.header("Content-Type"), "text/plain; charset=utf-8")
            self.assertEqual(r.header("X-Gateway-Error"), "circuit_open", r.describe())
        self.assertEqual(len(stub.app_requests), 2, "requests reached the upstream while open")
        # HEAD gets the fallback's status and headers without a body.
        r = self.fetch(gw, "HEAD", "/fb/head")
        self.assertStatus(r, 200)
        self.assertEqual(r.header("X-Gateway-Error"), "circuit_open")

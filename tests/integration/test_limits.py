"""limits: header/body/idle timeouts (408), body size (413), head size (431),
target size (414), max_connections."""

import threading
import time

from gwtest import Conn, GatewayTestCase, generated_sha256, poll_until

H = b"Host: gw.test\r\n"


class TimeoutTests(GatewayTestCase):
    def setUp(self):
        self.stub = self.start_stub("lim")
        self.gw = self.simple_gateway(self.stub, limits={"header_timeout": "1s", "body_timeout": "1s",
                                                         "idle_timeout": "1s"})

    def drip(self, conn, pieces, interval, stop):
        """Sends pieces one every `interval` seconds until stop is set or the
        connection breaks (a slowloris client)."""
        for p in pieces:
            if stop.wait(interval) or not conn.send(p, ignore_errors=True):
                return

    def assert_408_between(self, conn, t0, low, high, what):
        r = conn.read_response(timeout=high + 1)
        took = time.monotonic() - t0
        self.assertGatewayError(r, 408, "request_timeout")
        self.assertGreaterEqual(took, low, "%s: 408 came too early (%.2fs)" % (what, took))
        self.assertLessEqual(took, high, "%s: 408 came too late (%.2fs)" % (what, took))
        closed, extra = conn.wait_closed(max(0.1, high - (time.monotonic() - t0)))
        self.assertTrue(closed, "%s: connection not closed within %.1fs of the first byte" % (what, high))
        self.assertEqual(self.stub.requests, [], "%s: a timed-out request reached the upstream" % what)

    def test_slow_header_408(self):
        """A head dribbled one line every 300 ms (slowloris) gets 408 and a
        close within header_timeout + 2s and not before header_timeout - 0.2s."""
        c = self.connect(self.gw)
        stop = threading.Event()
        self.addCleanup(stop.set)
        t0 = time.monotonic()
        c.send(b"GET /slow HTTP/1.1\r\n")
        lines = [b"X-Drip-%d: %d\r\n" % (i, i) for i in range(40)]
        threading.Thread(target=self.drip, args=(c, lines, 0.3, stop), daemon=True).start()
        self.assert_408_between(c, t0, 0.8, 3.0, "slow head")
        self.assertIsNotNone(self.gw.wait_stderr(
            "did not send its request head within limits.header_timeout", timeout=2),
            "a slowloris cut leaves no log line")

    def test_silent_connection_after_partial_head_408(self):
        """Half a request line and then silence: 408 after header_timeout."""
        c = self.connect(self.gw)
        t0 = time.monotonic()
        c.send(b"GET /sil")
        self.assert_408_between(c, t0, 0.8, 3.0, "partial head")

    def test_slow_body_408(self):
        """Content-Length: 100 with only 10 bytes sent: 408 within body_timeout
        + 2s and not before body_timeout - 0.2s; never forwarded."""
        c = self.connect(self.gw)
        c.send(b"POST /b HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\n" + b"x" * 10)
        t0 = time.monotonic()
        self.assert_408_between(c, t0, 0.8, 3.0, "stalled body")

    def test_stalled_chunked_body_408(self):
        """A chunked body that stops mid-chunk: 408, never forwarded."""
        c = self.connect(self.gw)
        c.send(b"POST /b HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n10\r\nabc")
        t0 = time.monotonic()
        self.assert_408_between(c, t0, 0.8, 3.0, "stalled chunked body")

    def test_idle_keepalive_closed_after_idle_timeout(self):
        """A keep-alive connection left idle is closed after idle_timeout (1s),
        silently (no 408 for a connection with no request in progress)."""
        c = self.connect(self.gw)
        c.request("GET", "/x")
        self.assertStatus(c.read_response(), 200)
        t0 = time.monotonic()
        closed, extra = c.wait_closed(4.0)
        took = time.monotonic() - t0
        self.assertTrue(closed, "idle connection still open after 4s")
        self.assertGreaterEqual(took, 0.8, "closed too early (%.2fs)" % took)
        self.assertEqual(extra, b"", "bytes sent on an idle close")

    def test_progressing_connection_not_cut_by_header_timeout(self):
        """Keep-alive requests spread over 2.5s (> header_timeout) on one
        connection: each head is fast, so none gets 408."""
        c = self.connect(self.gw)
        t_end = time.monotonic() + 2.5
        n = 0
        while time.monotonic() < t_end:
            c.request("GET", "/k/%d" % n)
            self.assertStatus(c.read_response(), 200, "request %d" % n)
            n += 1
            time.sleep(0.25)  # pacing between requests, well under idle_timeout
        self.assertGreaterEqual(n, 8)


class SlowButProgressingTests(GatewayTestCase):
    """header/body/idle timeouts are 1s here; none of them may cut work that is
    progressing or waiting on the upstream."""

    LIMITS = {"header_timeout": "1s", "body_timeout": "1s", "idle_timeout": "1s"}

    def test_slow_upstream_not_cut_by_client_timeouts(self):
        """An upstream that takes 1.8s (route timeout 5s) is waited for: 200."""
        stub = self.start_stub("slowup", "echo", delay=1.8)
        gw = self.simple_gateway(stub, route_opts={"timeout": "5s"}, limits=self.LIMITS)
        r = self.fetch(gw, "GET", "/x", timeout=6)
        self.assertStatus(r, 200, "a 1.8s upstream with 1s client-side timeouts")

    def test_slow_reader_download_completes(self):
        """A client reading a 16 MiB body at ~4 MiB/s (about 4s, far beyond
        every 1s timeout) still gets all of it."""
        size = 16 << 20
        stub = self.start_stub("dl", "size", size=size, piece=256 * 1024)
        gw = self.simple_gateway(stub, route_opts={"timeout": "30s"}, limits=self.LIMITS)
        c = self.connect(gw, timeout=30)
        c.request("GET", "/big")
        c.throttle = (0.03, 128 * 1024)
        r = c.read_response(timeout=30, store=False)
        self.assertStatus(r, 200)
        self.assertEqual((r.body_len, r.body_sha256), (size, generated_sha256(size)),
                         "slow download cut short or corrupted")

    def test_upstream_body_with_pauses_completes(self):
        """An upstream that streams its body with 0.6s pauses (3s in all) is
        relayed whole (the pauses are upstream waits, not client idleness)."""
        size = 6 * 65536
        stub = self.start_stub("drip", "size", size=size, piece=65536, gap=0.6, chunked=True)
        gw = self.simple_gateway(stub, route_opts={"timeout": "30s"}, limits=self.LIMITS)
        r = self.fetch(gw, "GET", "/drip", timeout=10)
        self.assertStatus(r, 200)
        self.assertEqual((r.body_len, r.body_sha256), (size, generated_sha256(size)))


class SizeLimitTests(GatewayTestCase):
    def setUp(self):
        self.stub = self.start_stub("size")
        self.gw = self.simple_gateway(self.stub, limits={"max_body_bytes": "1k", "max_header_bytes": "4k"})

    def assertRefused(self, conn, status, code, timeout=3.0):
        r = conn.read_response(timeout=timeout)
        self.assertGatewayError(r, status, code)
        self.assertIn("close", ",".join(r.header_all("Connection")).lower(),
                      "Connection: close missing: %s" % r.describe())
        closed, extra = conn.wait_closed(2.0)
        self.assertTrue(closed, "connection not closed after %d" % status)
        self.assertEqual(self.stub.requests, [], "refused request reached the upstream")

    def test_body_at_the_limit_passes(self):
        """A body of exactly max_body_bytes (1024) is forwarded."""
        r = self.fetch(self.gw, "POST", "/b", body=b"y" * 1024)
        self.assertStatus(r, 200)
        self.assertEqual(self.stub.requests[-1].body_len, 1024)

    def test_content_length_over_limit_413_without_reading_body(self):
        """Content-Length over max_body_bytes: 413 right away, body never sent."""
        c = self.connect(self.gw)
        t0 = time.monotonic()
        c.send(b"POST /b HTTP/1.1\r\n" + H + b"Content-Length: 10485760\r\n\r\n")
        self.assertRefused(c, 413, "body_too_large", timeout=1.5)
        self.assertLess(time.monotonic() - t0, 1.5 + 2.0)

    def test_content_length_one_over_limit_413(self):
        """Content-Length: 1025 with a 1k limit: 413."""
        c = self.connect(self.gw)
        c.send(b"POST /b HTTP/1.1\r\n" + H + b"Content-Length: 1025\r\n\r\n" + b"z" * 1025, ignore_errors=True)
        self.assertRefused(c, 413, "body_too_large")

    def test_chunked_body_over_limit_413(self):
        """A chunked body growing past max_body_bytes: 413, never forwarded."""
        c = self.connect(self.gw)
        chunks = b"".join(b"200\r\n" + b"c" * 512 + b"\r\n" for _ in range(4)) + b"0\r\n\r\n"
        c.send(b"POST /b HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + chunks, ignore_errors=True)
        self.assertRefused(c, 413, "body_too_large")

    def test_head_under_limit_passes(self):
        """A 3 KB head (limit 4k) is forwarded with its big header intact."""
        r = self.fetch(self.gw, "GET", "/h", [("X-Big", "v" * 3000)])
        self.assertStatus(r, 200)
        self.assertEqual(self.stub.requests[-1].header("X-Big"), "v" * 3000)

    def test_huge_header_431(self):
        """A header of 6 KB (limit 4k): 431 headers_too_large, closed, never forwarded."""
        c = self.connect(self.gw)
        c.send(b"GET /h HTTP/1.1\r\n" + H + b"X-Huge: " + b"h" * 6000 + b"\r\n\r\n", ignore_errors=True)
        self.assertRefused(c, 431, "headers_too_large")

    def test_many_headers_431(self):
        """200 small headers totalling over 4k: 431."""
        c = self.connect(self.gw)
        many = b"".join(b"X-H%03d: %s\r\n" % (i, b"v" * 20) for i in range(200))
        c.send(b"GET /h HTTP/1.1\r\n" + H + many + b"\r\n", ignore_errors=True)
        self.assertRefused(c, 431, "headers_too_large")

    def test_endless_head_431_before_end(self):
        """Header bytes without an end: 431 as soon as the limit is passed,
        without waiting for the end of the head."""
        c = self.connect(self.gw)
        c.send(b"GET /h HTTP/1.1\r\n" + H + b"X-Endless: " + b"e" * 6000, ignore_errors=True)
        self.assertRefused(c, 431, "headers_too_large", timeout=1.5)

    def test_huge_target_414(self):
        """A request target of 6 KB (limit 4k): 414 uri_too_long, never forwarded."""
        c = self.connect(self.gw)
        c.send(b"GET /" + b"u" * 6000 + b" HTTP/1.1\r\n" + H + b"\r\n", ignore_errors=True)
        self.assertRefused(c, 414, "uri_too_long")


class MaxConnectionsTests(GatewayTestCase):
    def test_sixth_connection_waits_for_a_free_slot(self):
        """max_connections: 5. Five held connections are served; a sixth is not
        served while they stay open, and is served once one of them closes."""
        stub = self.start_stub("mc")
        gw = self.simple_gateway(stub, limits={"max_connections": 5})
        held = []
        for i in range(5):
            c = self.connect(gw)
            c.request("GET", "/held/%d" % i)
            self.assertStatus(c.read_response(timeout=3), 200, "held connection %d" % i)
            held.append(c)
        sixth = Conn(gw.port, timeout=5)
        self.addCleanup(sixth.close)
        sixth.send(b"GET /sixth HTTP/1.1\r\n" + H + b"\r\n", ignore_errors=True)
        closed, extra = sixth.wait_closed(0.7)
        self.assertFalse(closed, "the sixth connection was closed instead of waiting")
        self.assertEqual(extra, b"", "the sixth connection was served while 5 were open")
        self.assertEqual([r.path for r in stub.requests if r.path == "/sixth"], [])
        held[0].close()
        r = sixth.read_response(timeout=3)
        self.assertStatus(r, 200, "sixth connection after a slot freed")
        self.assertEqual(r.json()["path"], "/sixth")
        for i, c in enumerate(held[1:], 1):  # the others still work
            c.request("GET", "/again/%d" % i)
            self.assertStatus(c.read_response(timeout=3), 200)

    def test_connections_counted_down_after_close(self):
        """After 5 connections close, 5 new ones are all served (no leak in the count)."""
        stub = self.start_stub("mc2")
        gw = self.simple_gateway(stub, limits={"max_connections": 5})
        for rnd in range(3):
            conns = [self.connect(gw) for _ in range(5)]
            for i, c in enumerate(conns):
                c.request("GET", "/r%d/%d" % (rnd, i))
                self.assertStatus(c.read_response(timeout=3), 200, "round %d conn %d" % (rnd, i))
            for c in conns:
                c.close()
        self.assertTrue(poll_until(lambda: len(stub.requests) == 15, 2))

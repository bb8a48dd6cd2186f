"""Upstream failures: refused, reset, closed, invalid responses (502),
route timeout (504), and what is (not) reused afterwards."""

import time

from gwtest import BlackHole, GatewayTestCase, free_port, refused_address, route, upstream


class UpstreamFailureTests(GatewayTestCase):
    def test_connect_refused_502(self):
        """A server port with nothing listening: 502 upstream_unavailable, fast."""
        gw = self.start_gateway({"u": upstream(refused_address())}, [route("r", "u")])
        t0 = time.monotonic()
        r = self.fetch(gw, "GET", "/x")
        self.assertGatewayError(r, 502, "upstream_unavailable")
        self.assertLess(time.monotonic() - t0, 2.0, "refused connect took too long")

    def test_connect_timeout_502(self):
        """A server that never completes the TCP handshake, connect_timeout
        300ms, route timeout 5s: 502 upstream_unavailable after ~0.3s, not a
        wait for the route timeout."""
        hole = BlackHole()
        self.addCleanup(hole.close)
        gw = self.start_gateway({"u": upstream(hole.address, connect_timeout="300ms")},
                                [route("r", "u", timeout="5s")])
        t0 = time.monotonic()
        r = self.fetch(gw, "GET", "/x", timeout=8)
        took = time.monotonic() - t0
        self.assertGatewayError(r, 502, "upstream_unavailable")
        self.assertGreaterEqual(took, 0.25, "502 before connect_timeout: %.2fs" % took)
        self.assertLess(took, 2.0, "connect_timeout not applied: %.2fs" % took)

    def test_refused_keeps_client_connection(self):
        """After a 502 for a refused upstream the client connection still works."""
        gw = self.start_gateway({"u": upstream(refused_address())}, [route("r", "u")])
        c = self.connect(gw)
        for _ in range(2):
            c.request("GET", "/x")
            self.assertGatewayError(c.read_response(), 502, "upstream_unavailable")

    def check_bad_upstream_not_reused(self, mode):
        """stub in `mode` -> 502; then echo: the next request must come on a new
        upstream connection."""
        stub = self.start_stub("bad", mode)
        gw = self.simple_gateway(stub)
        c = self.connect(gw)
        c.request("GET", "/bad")
        r = c.read_response()
        self.assertGatewayError(r, 502, "upstream_unavailable")
        self.assertEqual(len(stub.requests), 1, "the failing request reached the stub once")
        stub.set("echo")
        c.request("GET", "/good")
        r2 = c.read_response()
        self.assertStatus(r2, 200, "request after the failure")
        self.assertEqual(r2.json()["path"], "/good")
        reqs = stub.requests
        self.assertEqual(len(reqs), 2, "no retry/duplicate: %r" % reqs)
        self.assertNotEqual(reqs[1].conn_id, reqs[0].conn_id,
                            "the connection that failed (%s) was reused" % mode)

    def test_reset_502(self):
        """An upstream RST after reading the request: 502, and a fresh connection next."""
        self.check_bad_upstream_not_reused("rst")

    def test_close_without_response_502(self):
        """An upstream that closes without answering: 502."""
        self.check_bad_upstream_not_reused("close")

    def test_two_content_lengths_502_and_not_reused(self):
        """An upstream response with two different Content-Length values: 502;
        the stub keeps that connection open, and the gateway must not reuse it."""
        self.check_bad_upstream_not_reused("two_cl")

    def test_bad_status_line_502_and_not_reused(self):
        """An upstream response with an invalid status line: 502, not reused."""
        self.check_bad_upstream_not_reused("bad_status")

    def test_partial_head_then_reset_502(self):
        """The upstream sends half a response head then resets: 502 (nothing
        had reached the client yet)."""
        stub = self.start_stub("half", "rst", partial=b"HTTP/1.1 200 OK\r\nContent-Le")
        gw = self.simple_gateway(stub)
        self.assertGatewayError(self.fetch(gw, "GET", "/x"), 502, "upstream_unavailable")

    def test_reset_mid_body_closes_client(self):
        """A reset after the head and part of the body: the client gets the head,
        then the connection is closed (the truncated body is never completed)."""
        stub = self.start_stub("midbody", "rst",
                               partial=b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"p" * 1000)
        gw = self.simple_gateway(stub)
        c = self.connect(gw)
        c.request("GET", "/x")
        try:
            r = c.read_response(timeout=5)
        except AssertionError as e:  # ConnectionClosed (truncated) is the expected outcome
            self.assertIn("closed", str(e))
            return
        # a 502 is acceptable only when no byte had been forwarded
        self.assertGatewayError(r, 502, "upstream_unavailable")

    def test_upstream_503_passed_through(self):
        """A 503 from the upstream reaches the client as is (its body), without
        X-Gateway-Error: it is not a gateway-made error."""
        stub = self.start_stub("busy", "503")
        gw = self.simple_gateway(stub)
        r = self.fetch(gw, "GET", "/x")
        self.assertStatus(r, 503)
        self.assertNotGatewayError(r)
        self.assertEqual(r.body, b'{"upstream":"busy"}')

    def test_upstream_404_passed_through(self):
        """An upstream 404 is the upstream's answer, not no_route."""
        stub = self.start_stub("nf", "fixed", status=404, body=b"nope", content_type="text/plain")
        gw = self.simple_gateway(stub)
        r = self.fetch(gw, "GET", "/x")
        self.assertStatus(r, 404)
        self.assertNotGatewayError(r)
        self.assertEqual((r.body, r.header("Content-Type")), (b"nope", "text/plain"))


class RouteTimeoutTests(GatewayTestCase):
    def test_route_timeout_504(self):
        """Stub delays 3s, route timeout 500ms: 504 upstream_timeout after about
        0.5s (not before 0.4s, before 2s)."""
        stub = self.start_stub("slow", "echo", delay=3)
        gw = self.simple_gateway(stub, route_opts={"timeout": "500ms"})
        t0 = time.monotonic()
        r = self.fetch(gw, "GET", "/slow")
        took = time.monotonic() - t0
        self.assertGatewayError(r, 504, "upstream_timeout")
        self.assertGreaterEqual(took, 0.4, "504 too early: %.2fs" % took)
        self.assertLess(took, 2.0, "504 too late: %.2fs" % took)

    def test_timed_out_upstream_connection_is_closed(self):
        """After a 504 the gateway abandons that upstream connection (the stub
        sees it closed long before its delay ends) and the next request uses a
        new one."""
        stub = self.start_stub("slow2", "echo", delay=5)
        gw = self.simple_gateway(stub, route_opts={"timeout": "500ms"})
        c = self.connect(gw)
        c.request("GET", "/slow")
        self.assertGatewayError(c.read_response(), 504, "upstream_timeout")
        entry = stub.wait_peer_close(timeout=2.0)
        self.assertIsNotNone(entry, "the upstream connection was kept open after the 504")
        stub.set("echo")
        c.request("GET", "/next")
        self.assertStatus(c.read_response(), 200)
        reqs = stub.requests
        self.assertNotEqual(reqs[-1].conn_id, reqs[0].conn_id, "timed-out connection reused")

    def test_fast_response_within_timeout(self):
        """A 200 ms upstream delay under a 2s route timeout is served normally."""
        stub = self.start_stub("ok", "echo", delay=0.2)
        gw = self.simple_gateway(stub, route_opts={"timeout": "2s"})
        self.assertStatus(self.fetch(gw, "GET", "/x"), 200)

"""Client disconnects (cancellation) and shutdown (SIGTERM/SIGINT drain)."""

import signal
import time

from gwtest import GatewayTestCase, connect_refused, poll_until


class CancelTests(GatewayTestCase):
    def test_client_disconnect_cancels_upstream_request(self):
        """A client that disconnects while the upstream works (5s delay): the
        gateway closes the upstream connection well before the delay ends."""
        stub = self.start_stub("cancel", "echo", delay=5)
        gw = self.simple_gateway(stub, route_opts={"timeout": "10s"})
        c = self.connect(gw)
        c.request("GET", "/long")
        self.assertTrue(stub.wait_requests(1, 3), "request never reached the stub")
        t0 = time.monotonic()
        c.close()
        entry = stub.wait_peer_close(timeout=2.5)
        self.assertIsNotNone(entry, "upstream connection still open 2.5s after the client left"
                                    " (the stub would work its whole 5s delay for nobody)")
        self.assertTrue(entry[2], "closed during the delay")
        self.assertLess(entry[1] - t0, 2.5)

    def test_gateway_serves_after_cancellations(self):
        """Five abandoned slow requests do not break later requests."""
        stub = self.start_stub("cancel2", "echo", delay=5)
        gw = self.simple_gateway(stub, route_opts={"timeout": "10s"})
        for i in range(5):
            c = self.connect(gw)
            c.request("GET", "/abandon/%d" % i)
            self.assertTrue(stub.wait_requests(i + 1, 3))
            c.close()
        stub.set("echo")
        self.assertStatus(self.fetch(gw, "GET", "/after"), 200)


class DrainTests(GatewayTestCase):
    def test_sigterm_drains_in_flight_request(self):
        """SIGTERM with a request in flight (1s upstream delay): new connections
        are refused, the request completes with 200, exit code 0."""
        stub = self.start_stub("drain", "echo", delay=1.0)
        gw = self.simple_gateway(stub, drain_timeout="5s")
        c = self.connect(gw)
        c.request("GET", "/inflight")
        self.assertTrue(stub.wait_requests(1, 3), "request never reached the stub")
        gw.signal(signal.SIGTERM)
        t0 = time.monotonic()
        refused = poll_until(lambda: connect_refused(gw.port, 0.2), 0.8)
        self.assertTrue(refused, "new connections still accepted %.1fs after SIGTERM" % (time.monotonic() - t0))
        r = c.read_response(timeout=5)
        self.assertStatus(r, 200, "in-flight request during drain")
        self.assertEqual(r.json()["path"], "/inflight")
        rc = gw.wait_exit(5)
        self.assertIsNotNone(rc, "gateway still running 5s after the in-flight request finished")
        self.assertEqual(rc, 0, "exit status after drain; stderr:\n" + gw.stderr_text())

    def test_sigint_exits_0(self):
        """SIGINT on an idle gateway: exit 0 promptly."""
        stub = self.start_stub("int")
        gw = self.simple_gateway(stub)
        self.assertStatus(self.fetch(gw, "GET", "/"), 200)
        gw.signal(signal.SIGINT)
        rc = gw.wait_exit(3)
        self.assertEqual(rc, 0, "exit status after SIGINT (None = still running); stderr:\n" + gw.stderr_text())

    def test_idle_keepalive_connection_does_not_hold_drain(self):
        """An idle keep-alive client connection does not keep a draining
        gateway alive until drain_timeout (10s): it exits within 3s."""
        stub = self.start_stub("idle")
        gw = self.simple_gateway(stub, drain_timeout="10s")
        c = self.connect(gw)
        c.request("GET", "/x")
        self.assertStatus(c.read_response(), 200)
        gw.signal(signal.SIGTERM)
        rc = gw.wait_exit(3)
        self.assertEqual(rc, 0, "exit status (None = still running after 3s)")
        closed, _ = c.wait_closed(1)
        self.assertTrue(closed)

    def test_drain_timeout_bounds_shutdown(self):
        """A request slower than drain_timeout (1s) does not hold the exit:
        the gateway exits 0 between 0.8s and 3s after SIGTERM."""
        stub = self.start_stub("stuck", "echo", delay=10)
        gw = self.simple_gateway(stub, drain_timeout="1s", route_opts={"timeout": "30s"})
        c = self.connect(gw)
        c.request("GET", "/stuck")
        self.assertTrue(stub.wait_requests(1, 3))
        t0 = time.monotonic()
        gw.signal(signal.SIGTERM)
        rc = gw.wait_exit(4)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, "exit status (None = still running after 4s); stderr:\n" + gw.stderr_text())
        self.assertGreaterEqual(took, 0.8, "exited before drain_timeout with a request in flight")
        self.assertLess(took, 3.0)

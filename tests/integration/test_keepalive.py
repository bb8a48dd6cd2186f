"""Keep-alive on both sides: client connections, the upstream pool, per-server
connection caps, several workers."""

import threading
import time

from gwtest import Conn, GatewayTestCase


class ClientKeepAliveTests(GatewayTestCase):
    def setUp(self):
        self.stub = self.start_stub("ka")
        self.gw = self.simple_gateway(self.stub)

    def test_20_requests_one_client_connection_one_upstream_connection(self):
        """20 sequential requests over one client connection: all answered on it,
        and the stub saw exactly 1 TCP connection."""
        c = self.connect(self.gw)
        for i in range(20):
            c.request("GET", "/seq/%d" % i)
            r = c.read_response()
            self.assertStatus(r, 200, "request %d" % i)
            self.assertEqual(r.json()["path"], "/seq/%d" % i)
        self.assertEqual(len(self.stub.requests), 20)
        self.assertEqual(self.stub.connections, 1, "upstream TCP connections for 20 sequential requests")

    def test_upstream_connection_shared_across_client_connections(self):
        """10 client connections one after the other reuse one upstream connection."""
        for i in range(10):
            self.assertStatus(self.fetch(self.gw, "GET", "/c/%d" % i), 200)
        self.assertEqual(self.stub.connections, 1, "upstream connections for 10 sequential clients")

    def test_client_connection_close_honoured(self):
        """`Connection: close` from the client: answered, then the gateway closes."""
        c = self.connect(self.gw)
        c.request("GET", "/bye", [("Connection", "close")])
        r = c.read_response()
        self.assertStatus(r, 200)
        self.assertClosed(c, what=" for a Connection: close request")

    def test_client_connection_close_not_forwarded_to_pool(self):
        """Three clients each sending `Connection: close`: the gateway's upstream
        connection is still reused (the client's hop-by-hop close is not passed
        on), so the stub sees 1 TCP connection."""
        for i in range(3):
            c = self.connect(self.gw)
            c.request("GET", "/cc/%d" % i, [("Connection", "close")])
            self.assertStatus(c.read_response(), 200)
        self.assertEqual(self.stub.connections, 1, "upstream connections; Connection headers seen upstream: %r"
                         % [r.header_all("Connection") for r in self.stub.requests])

    def test_pipelined_burst_answered_in_order(self):
        """Ten requests (a POST with a body in the middle) sent in one packet:
        ten answers, in order."""
        reqs = []
        for i in range(10):
            if i == 5:
                reqs.append(b"POST /pl/5 HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 3\r\n\r\nabc")
            else:
                reqs.append(b"GET /pl/%d HTTP/1.1\r\nHost: gw.test\r\n\r\n" % i)
        c = self.connect(self.gw)
        c.send(b"".join(reqs))
        paths = []
        for i in range(10):
            r = c.read_response()
            self.assertStatus(r, 200, "pipelined response %d" % i)
            paths.append(r.json()["path"])
        self.assertEqual(paths, ["/pl/%d" % i for i in range(10)])
        self.assertEqual(self.stub.requests[5].body, b"abc")

    def test_request_sent_while_the_previous_waits(self):
        """The next request arrives while the previous one waits for a slow
        upstream, when the gateway is not reading: both answered, in order,
        five times on one connection; bytes after a `Connection: close`
        request are never served."""
        self.stub.set_path("/slow", "echo", delay=0.4)
        c = self.connect(self.gw)
        for i in range(5):
            c.request("GET", "/slow")
            self.stub.wait_requests(2 * i + 1)
            c.request("GET", "/after/%d" % i)
            self.assertEqual(c.read_response().json()["path"], "/slow", "round %d" % i)
            self.assertEqual(c.read_response().json()["path"], "/after/%d" % i)
        c.request("GET", "/slow", [("Connection", "close")])
        self.stub.wait_requests(11)
        c.send(b"GET /ignored HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        self.assertStatus(c.read_response(), 200)
        self.assertClosed(c, what=" after the answer to a Connection: close request")
        self.assertEqual(len(self.stub.requests), 11, "nothing after Connection: close goes upstream")

    def test_http10_closed_after_response(self):
        """An HTTP/1.0 request without keep-alive: the connection closes after it."""
        c = self.connect(self.gw)
        c.send(b"GET /old HTTP/1.0\r\nHost: gw.test\r\n\r\n")
        self.assertStatus(c.read_response(), 200)
        self.assertClosed(c, what=" for HTTP/1.0")

    def test_upstream_connection_close_not_reused(self):
        """An upstream that answers `Connection: close`: the next request opens a
        new upstream connection and succeeds (no 502 from a dead one)."""
        self.stub.set("echo", close=True)
        c = self.connect(self.gw)
        for i in range(5):
            c.request("GET", "/uc/%d" % i)
            self.assertStatus(c.read_response(), 200, "request %d" % i)
        self.assertEqual(self.stub.connections, 5)
        self.assertEqual(len({r.conn_id for r in self.stub.requests}), 5)

    def test_upstream_idle_close_recovered(self):
        """The upstream closes its idle keep-alive connection (as after an
        upstream restart): once the FIN has had time to arrive, the next
        request still succeeds (the dead pooled connection is not used)."""
        c = self.connect(self.gw)
        c.request("GET", "/1")
        self.assertStatus(c.read_response(), 200)
        # close every upstream-side socket the stub holds (an upstream restart)
        self.stub.set("echo")
        with self.stub._lock:
            socks = list(self.stub._socks)
        for s in socks:
            s.shutdown(2)
        self.assertIsNotNone(self.stub.wait_peer_close(timeout=2))
        time.sleep(0.2)  # let the FIN reach the gateway; nothing to poll on its side
        c.request("GET", "/2")
        r = c.read_response()
        self.assertStatus(r, 200, "request after the upstream closed its idle connection")


class PoolTests(GatewayTestCase):
    def test_keepalive_zero_keeps_no_idle_connection(self):
        """upstream keepalive: 0: every request opens a new upstream connection."""
        stub = self.start_stub("ka0")
        gw = self.simple_gateway(stub, upstream_opts={"keepalive": 0})
        c = self.connect(gw)
        for i in range(4):
            c.request("GET", "/k/%d" % i)
            self.assertStatus(c.read_response(), 200)
        self.assertEqual(stub.connections, 4)

    def test_per_server_max_connections_queues(self):
        """upstream max_connections: 1 and 3 concurrent requests (stub delay
        300 ms): all answered 200, never more than 1 upstream connection open."""
        stub = self.start_stub("mc", "echo", delay=0.3)
        gw = self.simple_gateway(stub, upstream_opts={"max_connections": 1}, route_opts={"timeout": "5s"})
        conns = [self.connect(gw) for _ in range(3)]
        for i, c in enumerate(conns):
            c.request("GET", "/q/%d" % i)
        statuses = [c.read_response(timeout=5).status for c in conns]
        self.assertEqual(statuses, [200, 200, 200])
        self.assertEqual(stub.max_open, 1, "concurrent upstream connections with max_connections: 1")

    def test_queue_for_busy_server_bounded_by_route_timeout(self):
        """upstream max_connections: 1, stub delay 3s, route timeout 500ms, three
        concurrent requests: all three get 504 upstream_timeout within 2s
        (queued requests do not wait beyond their deadline)."""
        stub = self.start_stub("busy", "echo", delay=3)
        gw = self.simple_gateway(stub, upstream_opts={"max_connections": 1}, route_opts={"timeout": "500ms"})
        conns = [self.connect(gw) for _ in range(3)]
        t0 = time.monotonic()
        for i, c in enumerate(conns):
            c.request("GET", "/q/%d" % i)
        for i, c in enumerate(conns):
            self.assertGatewayError(c.read_response(timeout=4), 504, "upstream_timeout")
        took = time.monotonic() - t0
        self.assertLess(took, 2.0, "queued requests answered after %.2fs" % took)
        self.assertEqual(stub.max_open, 1)

    def test_two_workers_serve_concurrent_clients(self):
        """workers: 2, 20 concurrent client connections x 5 requests: all 200."""
        stub = self.start_stub("w2")
        gw = self.simple_gateway(stub, workers=2)
        errors = []

        def client(n):
            try:
                with Conn(gw.port) as c:
                    for i in range(5):
                        c.request("GET", "/w/%d/%d" % (n, i))
                        r = c.read_response()
                        if r.status != 200:
                            errors.append((n, i, r.describe()))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append((n, repr(e)))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        self.assertEqual(errors, [])
        self.assertEqual(len(stub.requests), 100)

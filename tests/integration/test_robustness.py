"""Robustness: descriptor leaks on error paths, many concurrent clients,
several listen addresses."""

import os
import threading

from gwtest import (Conn, GatewayTestCase, connect_refused, free_port, make_config, poll_until, route,
                    refused_address, to_yaml, upstream)

H = b"Host: gw.test\r\n"


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class RobustnessTests(GatewayTestCase):
    def test_no_descriptor_leak_on_error_paths(self):
        """200s, 404s, 400s, 413s, 502s (refused), 504s, and clients that leave
        mid-head or mid-request: afterwards the gateway holds no more file
        descriptors than after its first request (+1 pooled connection)."""
        fast = self.start_stub("fast")
        slow = self.start_stub("slow", "echo", delay=1.0)
        ups = {"fast": upstream(fast), "slow": upstream(slow),
               "dead": upstream(refused_address())}
        routes = [route("slow", "slow", "/slow", timeout="200ms"), route("wait", "slow", "/wait"),
                  route("dead", "dead", "/dead"), route("fast", "fast", "/ok")]
        gw = self.start_gateway(ups, routes, limits={"max_body_bytes": "1k"})
        self.assertStatus(self.fetch(gw, "GET", "/ok"), 200)
        baseline = fd_count(gw.pid)

        def one(data, expect):
            with Conn(gw.port) as c:
                c.send(data, ignore_errors=True)
                r = c.read_response()
                self.assertEqual(r.status, expect, "for %r: %s" % (data[:60], r.describe()))

        for i in range(10):
            one(b"GET /ok HTTP/1.1\r\n" + H + b"\r\n", 200)
            one(b"GET /nothing HTTP/1.1\r\n" + H + b"\r\n", 404)
            one(b"GET /ok HTTP/1.1\r\n" + H + H + b"\r\n", 400)
            one(b"POST /ok HTTP/1.1\r\n" + H + b"Content-Length: 5000\r\n\r\n", 413)
            one(b"GET /dead HTTP/1.1\r\n" + H + b"\r\n", 502)
        for i in range(3):
            one(b"GET /slow HTTP/1.1\r\n" + H + b"\r\n", 504)
        for i in range(3):
            with Conn(gw.port) as c:  # leaves mid-head
                c.send(b"GET /ok HTTP/1.1\r\nHo")
        for i in range(3):
            with Conn(gw.port) as c:  # leaves while the upstream works
                c.send(b"GET /wait/%d HTTP/1.1\r\n" % i + H + b"\r\n")
                slow.wait_requests(i + 1, 3)
        settled = poll_until(lambda: fd_count(gw.pid) <= baseline + 1, 4.0)
        self.assertTrue(settled, "gateway holds %d descriptors, %d after its first request"
                        % (fd_count(gw.pid), baseline))
        self.assertStatus(self.fetch(gw, "GET", "/ok"), 200)

    def test_200_concurrent_clients_two_workers(self):
        """workers: 2, 200 clients connected at once, one request each: all 200."""
        stub = self.start_stub("many")
        gw = self.simple_gateway(stub, workers=2)
        conns = [self.connect(gw, timeout=10) for _ in range(200)]
        errors = []
        for i, c in enumerate(conns):
            c.request("GET", "/c/%d" % i)

        def reader(part):
            for i, c in part:
                try:
                    r = c.read_response(timeout=10)
                    if r.status != 200 or r.json()["path"] != "/c/%d" % i:
                        errors.append((i, r.describe()))
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append((i, repr(e)))

        items = list(enumerate(conns))
        threads = [threading.Thread(target=reader, args=(items[k::8],)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [], "%d of 200 failed" % len(errors))

    def test_two_listen_addresses(self):
        """Two entries under listen: both ports serve."""
        stub = self.start_stub("two")
        p1, p2 = free_port(), free_port()
        conf = make_config(p1, {"u": upstream(stub)}, [route("r", "u")])
        conf["listen"].append("127.0.0.1:%d" % p2)
        gw = self.start_gateway_text(to_yaml(conf), p1)
        self.assertTrue(poll_until(lambda: not connect_refused(p2), 3),
                        "second listen address not accepting")
        for port in (p1, p2):
            with Conn(port) as c:
                c.request("GET", "/p/%d" % port)
                self.assertStatus(c.read_response(), 200, "port %d" % port)
        self.assertTrue(gw.alive())

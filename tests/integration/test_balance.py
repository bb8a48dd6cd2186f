"""Load balancing across the servers of one upstream."""

from collections import Counter

from gwtest import GatewayTestCase, route, server_entry, upstream


class BalanceTests(GatewayTestCase):
    def spread(self, gw, n, new_connection_each=False):
        """Sends n GETs; returns Counter of the stub names that answered."""
        seen = Counter()
        c = None
        for i in range(n):
            if c is None or new_connection_each:
                if c is not None:
                    c.close()
                c = self.connect(gw)
            c.request("GET", "/rr/%d" % i)
            r = c.read_response()
            self.assertStatus(r, 200, "request %d" % i)
            seen[r.json()["server"]] += 1
        return seen

    def test_round_robin_exactly_even(self):
        """round_robin, workers: 1, 3 servers, 30 requests: exactly 10 each,
        over one client connection and over new connections alike."""
        stubs = [self.start_stub(n) for n in ("s1", "s2", "s3")]
        gw = self.simple_gateway(stubs, upstream_opts={"balance": "round_robin"}, workers=1)
        self.assertEqual(self.spread(gw, 30), {"s1": 10, "s2": 10, "s3": 10})
        self.assertEqual(self.spread(gw, 30, new_connection_each=True), {"s1": 10, "s2": 10, "s3": 10})

    def test_round_robin_order_rotates(self):
        """Consecutive requests go to different servers (no server twice in a row)."""
        stubs = [self.start_stub(n) for n in ("s1", "s2", "s3")]
        gw = self.simple_gateway(stubs, workers=1)
        c = self.connect(gw)
        order = []
        for i in range(9):
            c.request("GET", "/o/%d" % i)
            order.append(c.read_response().json()["server"])
        self.assertTrue(all(x != y for x, y in zip(order, order[1:])), "order: %r" % order)

    def test_weighted_round_robin(self):
        """Weights 1, 2, 3 over 60 requests give exactly 10, 20, 30."""
        stubs = [self.start_stub(n) for n in ("w1", "w2", "w3")]
        ups = {"u": upstream(server_entry(stubs[0], 1), server_entry(stubs[1], 2), server_entry(stubs[2], 3))}
        gw = self.start_gateway(ups, [route("r", "u")], workers=1)
        self.assertEqual(self.spread(gw, 60), {"w1": 10, "w2": 20, "w3": 30})

    def test_random_uses_every_server(self):
        """balance: random over 60 requests reaches each of 3 servers."""
        stubs = [self.start_stub(n) for n in ("r1", "r2", "r3")]
        gw = self.simple_gateway(stubs, upstream_opts={"balance": "random"})
        seen = self.spread(gw, 60)
        self.assertEqual(set(seen), {"r1", "r2", "r3"}, "spread: %r" % seen)

    def test_least_request_serves(self):
        """balance: least_request serves every request and uses more than one server
        when requests overlap."""
        stubs = [self.start_stub(n, delay=0.3) for n in ("l1", "l2")]
        gw = self.simple_gateway(stubs, upstream_opts={"balance": "least_request"})
        conns = [self.connect(gw) for _ in range(4)]
        for i, c in enumerate(conns):
            c.request("GET", "/lr/%d" % i)
        names = Counter(c.read_response().json()["server"] for c in conns)
        self.assertEqual(names, {"l1": 2, "l2": 2}, "4 concurrent requests over 2 servers")

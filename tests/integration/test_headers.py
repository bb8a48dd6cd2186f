"""Header rules (SPEC section 3): request id, forwarding headers, Via,
hop-by-hop removal both ways, Host, Expect, X-Request-Timeout-Ms, traceparent,
and nothing invented on responses."""

import re
import time

from gwtest import HEX32, GatewayTestCase, ResponseTimeout

HOP_BY_HOP = ("Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade")


class RequestHeaderTests(GatewayTestCase):
    def setUp(self):
        self.stub = self.start_stub("hdr")
        self.gw = self.simple_gateway(self.stub, route_opts={"timeout": "3s"})

    def send(self, headers=(), target="/h", method="GET", body=None, host="gw.test"):
        """One request; returns (response, what the stub received)."""
        r = self.fetch(self.gw, method, target, headers, body, host=host)
        self.assertStatus(r, 200)
        return r, self.stub.requests[-1]

    def test_request_id_added_when_absent(self):
        """No X-Request-ID: the upstream gets 32 lowercase hex digits and the
        client gets the same value back; two requests get different ids."""
        r1, up1 = self.send()
        r2, up2 = self.send()
        rid = up1.header("X-Request-ID")
        self.assertIsNotNone(rid, "no X-Request-ID upstream: %r" % up1.headers)
        self.assertRegex(rid, HEX32, "generated request id format")
        self.assertEqual(len(up1.header_all("X-Request-ID")), 1)
        self.assertEqual(r1.header("X-Request-ID"), rid, "request id returned to the client")
        self.assertNotEqual(up2.header("X-Request-ID"), rid, "ids must differ per request")

    def test_request_id_kept_when_sent(self):
        """A client X-Request-ID is forwarded unchanged and returned."""
        r, up = self.send([("X-Request-ID", "client-id-123")])
        self.assertEqual(up.header_all("X-Request-ID"), ["client-id-123"])
        self.assertEqual(r.header("X-Request-ID"), "client-id-123")

    def test_x_forwarded_for_added(self):
        """Without X-Forwarded-For the upstream gets the client address."""
        _, up = self.send()
        self.assertEqual(self.xff(up), ["127.0.0.1"])

    def test_x_forwarded_for_appended(self):
        """An existing X-Forwarded-For gets the client address appended."""
        _, up = self.send([("X-Forwarded-For", "203.0.113.7, 10.0.0.1")])
        self.assertEqual(self.xff(up), ["203.0.113.7", "10.0.0.1", "127.0.0.1"])

    def xff(self, up):
        vals = up.header_all("X-Forwarded-For")
        self.assertTrue(vals, "no X-Forwarded-For upstream: %r" % up.headers)
        return [a.strip() for a in ",".join(vals).split(",")]

    def test_forwarded_proto_and_host(self):
        """X-Forwarded-Proto: http, X-Forwarded-Host: the client's Host."""
        _, up = self.send(host="shop.example.com:8080")
        self.assertEqual(up.header_all("X-Forwarded-Proto"), ["http"])
        self.assertEqual(up.header_all("X-Forwarded-Host"), ["shop.example.com:8080"])

    def test_forwarded_proto_and_host_not_spoofable(self):
        """Client-sent X-Forwarded-Proto/Host are replaced, not passed on."""
        _, up = self.send([("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.example")])
        self.assertEqual(up.header_all("X-Forwarded-Proto"), ["http"])
        self.assertEqual(up.header_all("X-Forwarded-Host"), ["gw.test"])

    def test_via_added(self):
        """Via contains "1.1 gateway" (appended to a client's Via)."""
        _, up = self.send()
        self.assertIn("1.1 gateway", ",".join(up.header_all("Via")), "Via: %r" % up.header_all("Via"))
        _, up = self.send([("Via", "1.0 fred")])
        via = ",".join(up.header_all("Via"))
        self.assertIn("1.0 fred", via)
        self.assertIn("1.1 gateway", via)

    def test_host_is_upstream_address(self):
        """Host sent upstream is the server address "127.0.0.1:PORT"."""
        _, up = self.send(host="public.example.com")
        self.assertEqual(up.header_all("Host"), [self.stub.address])

    def test_hop_by_hop_removed_from_request(self):
        """Connection, the names it lists, Keep-Alive, Proxy-Connection, TE,
        Trailer and Upgrade never reach the upstream; end-to-end headers do."""
        sent = [("Connection", "keep-alive, X-Secret"), ("X-Secret", "s3"), ("Keep-Alive", "timeout=99"),
                ("Proxy-Connection", "keep-alive"), ("TE", "trailers"), ("Trailer", "X-T"),
                ("Upgrade", "websocket"), ("X-End-To-End", "yes")]
        _, up = self.send(sent)
        names = {n.lower() for (n, _) in up.headers}
        for h in ("x-secret", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"):
            self.assertNotIn(h, names, "hop-by-hop %s forwarded: %r" % (h, up.headers))
        conn = ",".join(up.header_all("Connection")).lower()
        self.assertNotIn("x-secret", conn, "client Connection value forwarded: %r" % conn)
        self.assertEqual(up.header("X-End-To-End"), "yes")

    def test_expect_not_forwarded(self):
        """Expect: 100-continue is handled by the gateway, not forwarded; the
        body still arrives whole."""
        c = self.connect(self.gw)
        c.send(b"POST /e HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        # like curl: wait for "100 Continue" up to 1s, then send the body anyway
        deadline = time.monotonic() + 1.0
        try:
            while b"\r\n\r\n" not in c.buf and c._fill(deadline, "100 Continue"):
                pass
        except ResponseTimeout:
            pass
        c.send(b"hello")
        r = c.read_response()
        self.assertStatus(r, 200)
        up = self.stub.requests[-1]
        self.assertFalse(up.has_header("Expect"), "Expect forwarded: %r" % up.headers)
        self.assertEqual(up.body, b"hello")

    def test_request_timeout_ms_header(self):
        """X-Request-Timeout-Ms is one positive integer <= the route timeout (3000)."""
        _, up = self.send()
        vals = up.header_all("X-Request-Timeout-Ms")
        self.assertEqual(len(vals), 1, "X-Request-Timeout-Ms values: %r" % vals)
        self.assertRegex(vals[0], r"^[0-9]+$")
        self.assertTrue(0 < int(vals[0]) <= 3000, "X-Request-Timeout-Ms %s" % vals[0])
        self.assertGreater(int(vals[0]), 2000, "most of the 3s deadline should be left")

    def test_client_request_timeout_ms_replaced(self):
        """A client-sent X-Request-Timeout-Ms does not pass through as is: the
        upstream sees one value, within the route deadline."""
        _, up = self.send([("X-Request-Timeout-Ms", "999999")])
        vals = up.header_all("X-Request-Timeout-Ms")
        self.assertEqual(len(vals), 1, "values: %r" % vals)
        self.assertLessEqual(int(vals[0]), 3000)

    def test_traceparent_untouched(self):
        """traceparent (and tracestate) pass through byte for byte."""
        tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        _, up = self.send([("traceparent", tp), ("tracestate", "congo=t61rcWkgMzE")])
        self.assertEqual(up.header_all("traceparent"), [tp])
        self.assertEqual(up.header_all("tracestate"), ["congo=t61rcWkgMzE"])

    def test_repeated_end_to_end_headers_kept(self):
        """Repeated request headers (two X-Multi lines) both reach the upstream in order."""
        _, up = self.send([("X-Multi", "one"), ("X-Multi", "two")])
        self.assertEqual(",".join(up.header_all("X-Multi")).replace(" ", ""), "one,two")

    def test_no_body_no_content_length_for_get(self):
        """A GET without a body is not given a body: no Transfer-Encoding, and
        Content-Length, if sent, is 0."""
        _, up = self.send()
        self.assertFalse(up.has_header("Transfer-Encoding"))
        self.assertIn(up.header_all("Content-Length"), ([], ["0"]))
        self.assertEqual(up.body_len, 0)


class ResponseHeaderTests(GatewayTestCase):
    def setUp(self):
        self.stub = self.start_stub("resp")
        self.gw = self.simple_gateway(self.stub)

    def test_hop_by_hop_removed_from_response(self):
        """Hop-by-hop headers of the upstream response (and the names its
        Connection lists) do not reach the client; end-to-end ones do."""
        self.stub.set("fixed", status=200, body=b"ok", headers=[
            ("Connection", "X-Up-Secret"), ("X-Up-Secret", "1"), ("Keep-Alive", "timeout=77"),
            ("Proxy-Connection", "keep-alive"), ("Upgrade", "h2c"), ("Trailer", "X-Tr"),
            ("X-Up-Visible", "v")])
        r = self.fetch(self.gw, "GET", "/r")
        self.assertStatus(r, 200)
        names = {n.lower() for (n, _) in r.headers}
        for h in ("x-up-secret", "proxy-connection", "upgrade", "trailer"):
            self.assertNotIn(h, names, "hop-by-hop %s reached the client: %r" % (h, r.headers))
        self.assertNotIn("timeout=77", r.header_all("Keep-Alive"), "upstream Keep-Alive forwarded")
        self.assertNotIn("x-up-secret", ",".join(r.header_all("Connection")).lower())
        self.assertEqual(r.header("X-Up-Visible"), "v")
        self.assertEqual(r.body, b"ok")

    def test_set_cookie_lines_preserved(self):
        """Two Set-Cookie lines stay two lines, in order."""
        self.stub.set("fixed", status=200, body=b"", headers=[("Set-Cookie", "a=1; Path=/"),
                                                               ("Set-Cookie", "b=2; Expires=Wed, 21 Oct 2015 07:28:00 GMT")])
        r = self.fetch(self.gw, "GET", "/c")
        self.assertEqual(r.header_all("Set-Cookie"), ["a=1; Path=/", "b=2; Expires=Wed, 21 Oct 2015 07:28:00 GMT"])

    def test_no_invented_content_type(self):
        """A response without Content-Type reaches the client without one."""
        self.stub.set("fixed", status=200, body=b"raw")
        r = self.fetch(self.gw, "GET", "/raw")
        self.assertEqual(r.header_all("Content-Type"), [], "Content-Type invented: %s" % r.describe())
        self.assertEqual(r.body, b"raw")

    def test_status_and_reason_passed_through(self):
        """An upstream 201 with its headers and body reaches the client intact."""
        self.stub.set("fixed", status=201, body=b'{"id":7}', content_type="application/json",
                      headers=[("Location", "/items/7")])
        r = self.fetch(self.gw, "POST", "/items", body=b"{}")
        self.assertStatus(r, 201)
        self.assertEqual((r.header("Location"), r.header("Content-Type"), r.body),
                         ("/items/7", "application/json", b'{"id":7}'))
        self.assertNotGatewayError(r)

    def test_request_id_on_gateway_errors(self):
        """A gateway-made error (404 no_route) carries the request id it logged:
        the header equals the JSON body's request_id."""
        r = self.fetch(self.gw, "GET", "/r", host="gw.test")
        self.assertStatus(r, 200)
        gw2 = self.start_gateway({"u": {"servers": [self.stub.address]}},
                                 [{"name": "only", "match": {"path_prefix": "/only"}, "upstream": "u"}])
        err = self.fetch(gw2, "GET", "/elsewhere", [("X-Request-ID", "mine-1")])
        self.assertGatewayError(err, 404, "no_route")
        self.assertEqual(err.json()["request_id"], "mine-1", "client request id not used in the error body")
        self.assertTrue(re.fullmatch(r"[0-9a-f]{32}", self.fetch(gw2, "GET", "/x").json()["request_id"]))

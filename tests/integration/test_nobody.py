"""Responses without a body (HEAD, 204, 304) and keep-alive after them."""

from gwtest import GatewayTestCase


class NoBodyTests(GatewayTestCase):
    def setUp(self):
        self.stub = self.start_stub("nb")
        self.gw = self.simple_gateway(self.stub, route_opts={"path_prefix": "/p"})
        self.conn = self.connect(self.gw)

    def exchange(self, method, target="/p/x", status=200):
        """One request on the shared connection; asserts the status and that
        no byte follows the response head (no stray body)."""
        self.conn.request(method, target)
        r = self.conn.read_response(head=(method == "HEAD"))
        self.assertStatus(r, status, "for %s %s" % (method, target))
        extra = self.conn.pending_bytes(0.2)
        self.assertEqual(extra, b"", "bytes after a bodiless %d response to %s: %r" % (status, method, extra[:200]))
        return r

    def assertKeepAliveWorks(self):
        """A normal GET on the same connection still gets its own answer."""
        self.stub.set("echo")
        self.conn.request("GET", "/p/after")
        r = self.conn.read_response()
        self.assertStatus(r, 200, "GET after a bodiless response")
        self.assertEqual(r.json()["path"], "/p/after")

    def test_head_has_no_body_and_keeps_alive(self):
        """HEAD: headers only (Content-Length, if any, is the GET length), then keep-alive."""
        self.stub.set("size", size=1234)
        r = self.exchange("HEAD")
        if r.has_header("Content-Length"):
            self.assertEqual(r.header("Content-Length"), "1234", "HEAD Content-Length")
        self.assertEqual(self.stub.requests[-1].method, "HEAD", "HEAD forwarded as HEAD")
        self.assertKeepAliveWorks()

    def test_head_of_chunked_resource(self):
        """HEAD where the upstream announces chunked: the gateway does not wait for a body."""
        self.stub.set("size", size=5000, chunked=True)
        self.exchange("HEAD")
        self.assertKeepAliveWorks()

    def test_204_has_no_body_and_keeps_alive(self):
        """204 from the upstream: no body, no chunked framing, keep-alive continues."""
        self.stub.set("fixed", status=204)
        r = self.exchange("GET", status=204)
        self.assertFalse(r.has_header("Transfer-Encoding"), r.describe())
        self.assertKeepAliveWorks()

    def test_304_has_no_body_and_keeps_alive(self):
        """304 with ETag and a Content-Length of the representation: no body,
        ETag passed through, keep-alive continues."""
        self.stub.set("fixed", status=304, headers=[("ETag", '"v1"'), ("Content-Length", "1234")])
        r = self.exchange("GET", status=304)
        self.assertEqual(r.header("ETag"), '"v1"')
        self.assertFalse(r.has_header("Transfer-Encoding"), r.describe())
        self.assertKeepAliveWorks()

    def test_head_gateway_error_has_no_body(self):
        """HEAD on an unrouted path: 404 no_route without a body, keep-alive continues."""
        r = self.exchange("HEAD", "/nowhere", status=404)
        self.assertEqual(r.header("X-Gateway-Error"), "no_route")
        self.assertKeepAliveWorks()

    def test_many_bodiless_in_a_row(self):
        """HEAD, 204, 304, HEAD in a row on one connection, then a GET."""
        for mode, kw, method, status in (("size", {"size": 10}, "HEAD", 200),
                                         ("fixed", {"status": 204}, "GET", 204),
                                         ("fixed", {"status": 304}, "GET", 304),
                                         ("echo", {}, "HEAD", 200)):
            self.stub.set(mode, **kw)
            self.exchange(method, status=status)
        self.assertKeepAliveWorks()

"""The harness itself, checked against the stub directly (no gateway).

These prove that the stub behaviours and the raw client work, so that a
failing gateway test points at the gateway and not at the test tools.
"""

import time
import unittest

from gwtest import Conn, ProtocolError, generated_sha256, to_yaml
from stub_upstream import StubUpstream


class HarnessTests(unittest.TestCase):
    def setUp(self):
        self.stub = StubUpstream("h").start()
        self.addCleanup(self.stub.stop)

    def conn(self):
        c = Conn(self.stub.port)
        self.addCleanup(c.close)
        return c

    def test_harness_echo_keepalive_counts(self):
        """Echo answers, keep-alive works, connections and requests are counted."""
        c = self.conn()
        for i in range(3):
            c.request("POST", "/p/%d?q=1" % i, [("X-A", "b")], b"abc")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            j = r.json()
            self.assertEqual((j["server"], j["method"], j["path"], j["body_len"]), ("h", "POST", "/p/%d" % i, 3))
        self.assertEqual(self.stub.connections, 1)
        self.assertEqual(len(self.stub.requests), 3)
        self.assertEqual(self.stub.requests[0].header("x-a"), "b")

    def test_harness_chunked_request_body_parsed(self):
        """The stub de-chunks a chunked request body."""
        c = self.conn()
        c.request("POST", "/", body=b"hello world", chunked=True)
        self.assertEqual(c.read_response().json()["body_len"], 11)

    def test_harness_sized_bodies_both_framings(self):
        """Generated bodies arrive intact with Content-Length and chunked."""
        for chunked in (False, True):
            self.stub.set("size", size=3 << 20, chunked=chunked, piece=100000)
            c = self.conn()
            c.request("GET", "/big")
            r = c.read_response(store=False)
            self.assertEqual(r.framing, "chunked" if chunked else "length")
            self.assertEqual((r.body_len, r.body_sha256), (3 << 20, generated_sha256(3 << 20)))

    def test_harness_head_204_304_have_no_body(self):
        """No body after HEAD/204/304; the next response parses."""
        c = self.conn()
        c.request("HEAD", "/")
        r = c.read_response(head=True)
        self.assertTrue(int(r.header("Content-Length")) > 0)
        for status in (204, 304):
            self.stub.set("fixed", status=status, body=b"never")
            c.request("GET", "/")
            self.assertEqual(c.read_response().status, status)
        self.stub.set("echo")
        c.request("GET", "/after")
        self.assertEqual(c.read_response().json()["path"], "/after")
        self.assertEqual(c.pending_bytes(0.1), b"")

    def test_harness_rst_close_detected(self):
        """rst and close modes end the connection without a response."""
        for mode in ("rst", "close"):
            self.stub.set(mode)
            c = self.conn()
            c.request("GET", "/")
            closed, extra = c.wait_closed(2)
            self.assertTrue(closed)
            self.assertEqual(extra, b"")
            self.assertEqual(c.reset, mode == "rst")

    def test_harness_invalid_responses_rejected_by_client(self):
        """The strict client refuses two different Content-Length and bad status lines."""
        for mode in ("two_cl", "bad_status"):
            self.stub.set(mode)
            c = self.conn()
            c.request("GET", "/")
            with self.assertRaises(ProtocolError):
                c.read_response()

    def test_harness_delay_and_peer_close_seen(self):
        """During a delay the stub notices the client going away, quickly."""
        self.stub.set("echo", delay=5)
        c = self.conn()
        c.request("GET", "/slow")
        self.stub.wait_requests(1, 2)
        t0 = time.monotonic()
        c.close()
        entry = self.stub.wait_peer_close(timeout=2)
        self.assertIsNotNone(entry)
        self.assertTrue(entry[2], "close noticed during the delay")
        self.assertLess(entry[1] - t0, 0.5)

    def test_harness_yaml_rendering(self):
        """The YAML writer quotes what needs quoting and nests lists of maps."""
        text = to_yaml({"listen": ["127.0.0.1:1"], "routes": [{"name": "r", "match": {"path_prefix": "/"}}],
                        "flag": True, "empty": []})
        self.assertEqual(text, 'listen:\n  - "127.0.0.1:1"\nroutes:\n  - name: r\n    match:\n'
                               '      path_prefix: /\nflag: true\nempty: []\n')


if __name__ == "__main__":
    unittest.main()

"""Request and response bodies: integrity, de-chunking, streaming, memory."""

import hashlib
import os
import time

from gwtest import GatewayTestCase, generated_sha256

MIB = 1 << 20


class RequestBodyTests(GatewayTestCase):
    def setUp(self):
        self.stub = self.start_stub("body")
        self.gw = self.simple_gateway(self.stub)

    def post_and_check(self, body, chunks=None):
        """POSTs body (as Content-Length, or chunked in `chunks` pieces) and
        checks what the stub received: same bytes, Content-Length, no TE."""
        c = self.connect(self.gw, timeout=30)
        if chunks is None:
            c.request("POST", "/upload", body=body)
        else:
            head = b"POST /upload HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            step = max(1, -(-len(body) // chunks))
            parts = [body[i:i + step] for i in range(0, len(body), step)]
            c.send(head + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n")
        r = c.read_response(timeout=30)
        self.assertStatus(r, 200)
        want = hashlib.sha256(body).hexdigest()
        got = self.stub.requests[-1]
        self.assertEqual((got.body_len, got.body_sha256), (len(body), want), "body at the upstream")
        self.assertEqual(got.header_all("Content-Length"), [str(len(body))],
                         "Content-Length sent upstream; headers %r" % got.headers)
        self.assertFalse(got.has_header("Transfer-Encoding"),
                         "Transfer-Encoding reached the upstream: %r" % got.headers)
        self.assertEqual(r.json()["body_sha256"], want, "echo response body came back changed")

    def test_post_1_byte(self):
        """A 1-byte POST body arrives intact with Content-Length: 1."""
        self.post_and_check(b"\x00")

    def test_post_100_kib(self):
        """A 100 KiB POST body arrives intact."""
        self.post_and_check(os.urandom(100 * 1024))

    def test_post_5_mib(self):
        """A 5 MiB POST body (under the 8m default limit) arrives intact."""
        self.post_and_check(os.urandom(5 * MIB))

    def test_chunked_body_arrives_dechunked(self):
        """A chunked client body (many chunks) reaches the upstream de-chunked,
        with Content-Length and without Transfer-Encoding."""
        self.post_and_check(os.urandom(300 * 1024 + 7), chunks=37)

    def test_post_empty_body_keeps_content_length_0(self):
        """POST with Content-Length: 0 reaches the upstream with Content-Length: 0."""
        r = self.fetch(self.gw, "POST", "/empty", body=b"")
        self.assertStatus(r, 200)
        got = self.stub.requests[-1]
        self.assertEqual((got.header_all("Content-Length"), got.body_len), (["0"], 0), repr(got.headers))

    def test_put_and_patch_bodies_forwarded(self):
        """PUT and PATCH bodies are forwarded with Content-Length like POST."""
        for method in ("PUT", "PATCH", "DELETE"):
            r = self.fetch(self.gw, method, "/m", body=b"payload-" + method.encode())
            self.assertStatus(r, 200, method)
            got = self.stub.requests[-1]
            self.assertEqual((got.method, got.body), (method, b"payload-" + method.encode()))
            self.assertEqual(got.header("Content-Length"), str(len(got.body)))


class LargeResponseTests(GatewayTestCase):
    def fetch_big(self, gw, stub, size, slow_start=0.5):
        """GETs a generated body; pauses slow_start seconds after the head
        (a slow client, so a gateway that does not stream would buffer)."""
        c = self.connect(gw, timeout=60)
        c.request("GET", "/big")
        t0 = time.monotonic()
        resp_head_seen = c._fill(t0 + 10, "response head")
        self.assertTrue(resp_head_seen, "connection closed before any response byte")
        time.sleep(slow_start)  # deliberate slow reader, not a wait for a condition
        r = c.read_response(timeout=60, store=False)
        self.assertStatus(r, 200)
        self.assertEqual(r.body_len, size, "body length")
        self.assertEqual(r.body_sha256, generated_sha256(size), "body sha256")
        # the connection stays usable after a big body
        stub.set("echo")
        c.request("GET", "/small")
        self.assertStatus(c.read_response(timeout=10, store=False), 200)
        return r

    def assertMemoryBounded(self, gw):
        hwm = gw.vm_hwm_kib()
        self.assertLess(hwm, 100 * 1024, "gateway VmHWM %d KiB (>= 100 MiB): the body was buffered" % hwm)

    def test_50_mib_content_length_response_streamed(self):
        """A 50 MiB Content-Length response arrives intact and the gateway's
        peak RSS stays under 100 MiB."""
        stub = self.start_stub("big", "size", size=50 * MIB, piece=256 * 1024)
        gw = self.simple_gateway(stub, route_opts={"timeout": "60s"})
        self.fetch_big(gw, stub, 50 * MIB)
        self.assertMemoryBounded(gw)

    def test_50_mib_chunked_response_streamed(self):
        """A 50 MiB chunked upstream response arrives intact (re-framed or not),
        peak RSS under 100 MiB."""
        stub = self.start_stub("bigc", "size", size=50 * MIB, chunked=True, piece=100 * 1024)
        gw = self.simple_gateway(stub, route_opts={"timeout": "60s"})
        r = self.fetch_big(gw, stub, 50 * MIB)
        self.assertIn(r.framing, ("chunked", "length", "close"))
        self.assertMemoryBounded(gw)

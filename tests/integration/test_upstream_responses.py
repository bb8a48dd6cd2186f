"""Unusual but legal, and invalid, upstream responses written byte for byte."""

import hashlib
import os

from gwtest import GatewayTestCase


class UpstreamResponseTests(GatewayTestCase):
    def setUp(self):
        self.stub = self.start_stub("raw")
        self.gw = self.simple_gateway(self.stub)
        self.conn = self.connect(self.gw)

    def get(self, target="/r", timeout=5):
        self.conn.request("GET", target)
        return self.conn.read_response(timeout=timeout)

    def assertNextRequestClean(self):
        """The client connection and the pool still work: an echo request
        gets its own answer (not leftovers of the previous response)."""
        self.stub.set("echo")
        try:
            r = self.get("/next")
        except AssertionError as e:
            self.fail("request after the odd response failed on the same client connection: %s" % e)
        self.assertStatus(r, 200, "request after the odd response")
        self.assertEqual(r.json()["path"], "/next")

    def test_close_delimited_body_forwarded_whole(self):
        """A response without Content-Length or chunking (body ends at FIN):
        the client gets all 200 000 bytes, correctly framed."""
        body = os.urandom(200000)
        self.stub.set("raw", data=b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n" + body)
        r = self.get()
        self.assertStatus(r, 200)
        self.assertEqual((r.body_len, r.body_sha256), (len(body), hashlib.sha256(body).hexdigest()))
        if r.framing != "close":
            self.assertNextRequestClean()

    def test_http10_close_delimited_response(self):
        """An HTTP/1.0 upstream answer without length: forwarded whole."""
        self.stub.set("raw", data=b"HTTP/1.0 200 OK\r\n\r\nold server body")
        r = self.get()
        self.assertStatus(r, 200)
        self.assertEqual(r.body, b"old server body")

    def test_chunked_with_trailers_and_extensions(self):
        """A chunked response with chunk extensions and a trailer: body intact."""
        self.stub.set("raw", keep_open=True, data=(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n"))
        r = self.get()
        self.assertStatus(r, 200)
        self.assertEqual(r.body, b"hello world")
        self.assertNextRequestClean()

    def test_interim_100_then_final_response(self):
        """A 100 Continue before the final 200: the client gets the 200 and its body."""
        self.stub.set("raw", keep_open=True, data=(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        r = self.get()
        self.assertStatus(r, 200)
        self.assertEqual(r.body, b"ok")
        self.assertNextRequestClean()

    def test_oversized_response_head_502(self):
        """A 1 MiB upstream response head is an invalid response: 502."""
        self.stub.set("raw", keep_open=True,
                      data=b"HTTP/1.1 200 OK\r\nX-Huge: " + b"h" * (1 << 20) + b"\r\nContent-Length: 2\r\n\r\nok")
        r = self.get()
        self.assertGatewayError(r, 502, "upstream_unavailable")
        self.assertNextRequestClean()
        self.assertNotEqual(self.stub.requests[-1].conn_id, self.stub.requests[0].conn_id,
                            "connection with the oversized head reused")

    def test_garbage_content_length_502(self):
        """Content-Length: abc from the upstream: 502."""
        self.stub.set("raw", data=b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok")
        self.assertGatewayError(self.get(), 502, "upstream_unavailable")
        self.assertNextRequestClean()

    def test_not_http_at_all_502(self):
        """An upstream that answers with non-HTTP bytes: 502."""
        self.stub.set("raw", data=b"SSH-2.0-OpenSSH_9.2\r\n")
        self.assertGatewayError(self.get(), 502, "upstream_unavailable")
        self.assertNextRequestClean()

    def test_bytes_beyond_content_length_not_leaked(self):
        """The upstream sends more bytes than its Content-Length: the client
        gets exactly the announced body, and the surplus never shows up as
        (part of) the next response."""
        self.stub.set("raw", keep_open=True, data=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA-BYTES")
        r = self.get()
        self.assertStatus(r, 200)
        self.assertEqual(r.body, b"ok")
        self.assertNextRequestClean()

    def test_content_length_and_chunked_together(self):
        """A response with both Content-Length: 100 and chunked: either refused
        (502) or de-chunked ("hello"), never framed by the Content-Length."""
        self.stub.set("raw", keep_open=True, data=(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n"))
        r = self.get(timeout=3)
        if r.status == 502:
            self.assertEqual(r.header("X-Gateway-Error"), "upstream_unavailable")
        else:
            self.assertStatus(r, 200)
            self.assertEqual(r.body, b"hello")
            self.assertNotIn("100", r.header_all("Content-Length"))
        self.assertNextRequestClean()

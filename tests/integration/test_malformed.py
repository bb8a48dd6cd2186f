"""Malformed and hostile requests, as a table:
bytes sent -> status expected, connection closed or not, upstream reached or not.

Each row is its own test (test_row_NAME). A gateway error must carry
X-Gateway-Error and the JSON body; a refused request must get
`Connection: close`, the connection must close, and the upstream must see
nothing (smuggled bytes behind a refused head included).
"""

import unittest

from gwtest import Conn, Gateway, StubUpstream, free_port, make_config, route, upstream

H = b"Host: gw.test\r\n"

# (name, bytes, status, error code or None, closed: True/False/None=either, reached)
ROWS = [
    ("valid_baseline", b"GET /ok HTTP/1.1\r\n" + H + b"\r\n", 200, None, False, True),
    ("two_different_content_length",
     b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
     400, "bad_request", True, False),
    ("repeated_same_content_length",
     b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
     400, "bad_request", True, False),
    ("content_length_list", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 4, 4\r\n\r\nabcd",
     400, "bad_request", True, False),
    ("content_length_plus_sign", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: +4\r\n\r\nabcd",
     400, "bad_request", True, False),
    ("content_length_not_a_number", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n",
     400, "bad_request", True, False),
    ("content_length_negative", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n",
     400, "bad_request", True, False),
    ("transfer_encoding_gzip_smuggling",
     b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n"
     b"GET /smuggled HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request", True, False),
    ("transfer_encoding_with_content_length",
     b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     400, "bad_request", True, False),
    ("space_before_colon",
     b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
     400, "bad_request", True, False),
    ("empty_header_name", b"GET /a HTTP/1.1\r\n" + H + b": value\r\n\r\n", 400, "bad_request", True, False),
    ("header_line_without_colon", b"GET /a HTTP/1.1\r\n" + H + b"X-A value\r\n\r\n",
     400, "bad_request", True, False),
    ("nul_in_header_value", b"GET /a HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400, "bad_request", True, False),
    ("obs_fold", b"GET /a HTTP/1.1\r\n" + H + b"X-A: a\r\n  folded\r\n\r\n", 400, "bad_request", True, False),
    ("bare_lf_everywhere", b"GET /a HTTP/1.1\nHost: gw.test\n\n", 400, "bad_request", True, False),
    ("bare_lf_in_one_line", b"GET /a HTTP/1.1\r\nHost: gw.test\nX-A: b\r\n\r\n", 400, "bad_request", True, False),
    ("http11_without_host", b"GET /a HTTP/1.1\r\n\r\n", 400, "bad_request", True, False),
    ("two_host_headers", b"GET /a HTTP/1.1\r\n" + H + b"Host: other.test\r\n\r\n", 400, "bad_request", True, False),
    ("target_with_space", b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request", True, False),
    ("control_byte_in_target", b"GET /a\x01b HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request", True, False),
    ("double_space_in_request_line", b"GET  /a HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request", True, False),
    ("lowercase_http_version", b"GET /a http/1.1\r\n" + H + b"\r\n", 400, "bad_request", True, False),
    ("method_not_a_token", b"G(T /a HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request", True, False),
    ("http09_request_line", b"GET /a\r\n\r\n", 400, "bad_request", True, False),
    ("http09_version", b"GET /a HTTP/0.9\r\n" + H + b"\r\n", 400, "bad_request", True, False),
    ("http2_version", b"GET /a HTTP/2.0\r\n" + H + b"\r\n", 505, "version_not_supported", True, False),
    ("http3_version", b"GET /a HTTP/3.0\r\n" + H + b"\r\n", 505, "version_not_supported", True, False),
    ("http12_served_as_11", b"GET /ok HTTP/1.2\r\n" + H + b"\r\n", 200, None, False, True),
    ("http10_without_host", b"GET /ok HTTP/1.0\r\n\r\n", 200, None, True, True),
    ("absolute_form_other_authority", b"GET http://evil.example/a HTTP/1.1\r\n" + H + b"\r\n",
     400, "bad_request", True, False),
    ("absolute_form_same_authority", b"GET http://gw.test/ok HTTP/1.1\r\n" + H + b"\r\n", 200, None, False, True),
    ("connect_method", b"CONNECT gw.test:443 HTTP/1.1\r\nHost: gw.test:443\r\n\r\n",
     405, "method_not_allowed", None, False),
    ("trace_method", b"TRACE /a HTTP/1.1\r\n" + H + b"\r\n", 405, "method_not_allowed", None, False),
    ("tls_client_hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)) + b"\x00\x02\x13\x01",
     400, "bad_request", True, False),
    ("leading_empty_line_ignored", b"\r\nGET /ok HTTP/1.1\r\n" + H + b"\r\n", 200, None, False, True),
    ("transfer_encoding_mixed_case", b"POST /ok HTTP/1.1\r\n" + H + b"Transfer-Encoding: Chunked\r\n\r\n"
     b"2\r\nhi\r\n0\r\n\r\n", 200, None, False, True),
    ("content_length_leading_zeros", b"POST /ok HTTP/1.1\r\n" + H + b"Content-Length: 002\r\n\r\nhi",
     200, None, False, True),
    # README "Request handling": chunk extensions and dot segments are refused
    # (a documented deviation: RFC 9112 7.1.1 says to ignore extensions).
    ("chunk_extension_refused", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"5;ext=1\r\nhello\r\n0\r\n\r\n", 400, "bad_request", True, False),
    ("dot_segments_in_path", b"GET /ok/../admin HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request", True, False),
    ("encoded_dot_segments_in_path", b"GET /ok/%2e%2E/admin HTTP/1.1\r\n" + H + b"\r\n",
     400, "bad_request", True, False),
    ("chunk_size_with_0x", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"0x5\r\nhello\r\n0\r\n\r\n", 400, "bad_request", True, False),
    ("chunk_size_not_hex", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"zz\r\nhello\r\n0\r\n\r\n", 400, "bad_request", True, False),
    ("chunk_data_longer_than_size", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"3\r\nhello\r\n0\r\n\r\n", 400, "bad_request", True, False),
]


class MalformedTests(unittest.TestCase):
    """One gateway and one stub shared by the rows (restarted if a row kills it)."""

    gw = None
    stub = None

    @classmethod
    def setUpClass(cls):
        cls.stub = StubUpstream("m").start()
        cls._start_gateway()

    @classmethod
    def _start_gateway(cls):
        port = free_port()
        conf = make_config(port, {"u": upstream(cls.stub)}, [route("r", "u")],
                           limits={"header_timeout": "2s", "body_timeout": "2s"})
        cls.gw = Gateway(conf, port, "malformed").start()

    @classmethod
    def tearDownClass(cls):
        if cls.gw:
            cls.gw.stop()
        if cls.stub:
            cls.stub.stop()

    def setUp(self):
        if not self.gw.alive():  # an earlier row killed it: fresh one for this row
            type(self)._start_gateway()

    def run_row(self, data, status, code, closed, reached):
        before = len(self.stub.requests)
        c = Conn(self.gw.port, timeout=5)
        self.addCleanup(c.close)
        c.send(data, ignore_errors=True)
        r = c.read_response(timeout=5)
        what = "sent %r -> %s" % (data[:120], r.describe())
        self.assertEqual(r.status, status, "status; " + what)
        if code is None:
            self.assertIsNone(r.header("X-Gateway-Error"), what)
        else:
            self.assertEqual(r.header("X-Gateway-Error"), code, "X-Gateway-Error; " + what)
            body = r.json()
            self.assertEqual(body.get("error"), code, "JSON error; " + what)
            self.assertTrue(body.get("request_id"), "JSON request_id; " + what)
        if closed:
            if code is not None:
                conn_hdr = ",".join(r.header_all("Connection")).lower()
                self.assertIn("close", conn_hdr, "Connection: close missing; " + what)
            is_closed, extra = c.wait_closed(2.0)
            self.assertTrue(is_closed, "connection not closed within 2s; " + what)
            self.assertEqual(extra, b"", "bytes after the response (a smuggled request answered?); " + what)
        elif closed is False:
            is_closed, extra = c.wait_closed(0.3)
            self.assertFalse(is_closed, "connection closed after a request it should keep; " + what)
            self.assertEqual(extra, b"", what)
        got = self.stub.requests[before:]
        if reached:
            self.assertEqual(len(got), 1, "upstream should see exactly this request; saw %r" % got)
            self.assertEqual(got[0].path, "/ok")
        else:
            self.assertEqual(got, [], "refused request reached the upstream; " + what)
        self.assertTrue(self.gw.alive(), "gateway process died on this input; stderr:\n" + self.gw.stderr_text())
        return r

    def test_absolute_form_forwarded_in_origin_form(self):
        """An absolute-form target whose authority equals Host reaches the upstream as "/ok?q"."""
        before = len(self.stub.requests)
        c = Conn(self.gw.port)
        self.addCleanup(c.close)
        c.send(b"GET http://gw.test/ok?q HTTP/1.1\r\n" + H + b"\r\n")
        self.assertEqual(c.read_response().status, 200)
        self.assertEqual(self.stub.requests[before].target, "/ok?q")

    def test_http12_answered_as_http11(self):
        """An HTTP/1.2 request is answered with an HTTP/1.1 status line."""
        c = Conn(self.gw.port)
        self.addCleanup(c.close)
        c.send(b"GET /ok HTTP/1.2\r\n" + H + b"\r\n")
        self.assertEqual(c.read_response().version, "HTTP/1.1")

    def test_pipelined_requests_after_a_valid_one(self):
        """Two valid pipelined requests in one packet get two answers in order."""
        c = Conn(self.gw.port)
        self.addCleanup(c.close)
        c.send(b"GET /ok/1 HTTP/1.1\r\n" + H + b"\r\nGET /ok/2 HTTP/1.1\r\n" + H + b"\r\n")
        first, second = c.read_response(), c.read_response()
        self.assertEqual((first.status, second.status), (200, 200))
        self.assertEqual((first.json()["path"], second.json()["path"]), ("/ok/1", "/ok/2"))


def _make_row_test(name, data, status, code, closed, reached):
    def test(self):
        self.run_row(data, status, code, closed, reached)
    test.__doc__ = "%s -> %d%s, %s, %s" % (
        name, status, " " + code if code else "",
        {True: "closed", False: "kept open", None: "closed or not"}[closed],
        "reaches the upstream" if reached else "never forwarded")
    return test


for _row in ROWS:
    setattr(MalformedTests, "test_row_" + _row[0], _make_row_test(*_row))

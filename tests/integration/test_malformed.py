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

# What follows, by family (RFC 9112, and published smuggling techniques).
CHUNKED = b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
CHUNKED_OK = b"POST /ok HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\n" + H + b"\r\n"


def post(headers, body=b"", target=b"/a"):
    return b"POST " + target + b" HTTP/1.1\r\n" + H + headers + b"\r\n" + body


def get(target, headers=b"", host=H):
    return b"GET " + target + b" HTTP/1.1\r\n" + host + headers + b"\r\n"


BAD = (400, "bad_request", True, False)  # refused, closed, never forwarded
OK = (200, None, False, True)  # forwarded as /ok..., connection kept

ROWS += [
    # Transfer-Encoding obfuscations: only exactly "chunked", once.
    ("te_chunked_then_identity", post(b"Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n")) + BAD,
    ("te_identity_then_chunked", post(b"Transfer-Encoding: identity, chunked\r\n", b"0\r\n\r\n")) + BAD,
    ("te_twice", post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n")) + BAD,
    ("te_quoted", post(b'Transfer-Encoding: "chunked"\r\n', b"0\r\n\r\n")) + BAD,
    ("te_xchunked", post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n")) + BAD,
    ("te_vertical_tab", post(b"Transfer-Encoding:\x0bchunked\r\n", b"0\r\n\r\n")) + BAD,
    ("te_nul_after_value", post(b"Transfer-Encoding: chunked\x00\r\n", b"0\r\n\r\n")) + BAD,
    ("te_folded_onto_previous_line", post(b"X-A: a\r\n Transfer-Encoding: chunked\r\n", b"0\r\n\r\n")) + BAD,
    ("te_in_http10", b"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") + BAD,
    ("te_before_content_length", post(b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
                                      b"0\r\n\r\n")) + BAD,
    ("te_tab_before_value_is_ows", post(b"Transfer-Encoding:\tchunked\r\n", b"2\r\nhi\r\n0\r\n\r\n",
                                        b"/ok")) + OK,
    # Content-Length forms: 1-18 digits, once.
    ("content_length_hex", post(b"Content-Length: 0x5\r\n", b"hello")) + BAD,
    ("content_length_space_inside", post(b"Content-Length: 1 2\r\n", b"x" * 12)) + BAD,
    ("content_length_empty", post(b"Content-Length:\r\n")) + BAD,
    ("content_length_decimal", post(b"Content-Length: 4.0\r\n", b"abcd")) + BAD,
    ("content_length_20_digits", post(b"Content-Length: 00000000000000000004\r\n", b"abcd")) + BAD,
    ("content_length_over_max_body", post(b"Content-Length: 9999999999\r\n"), 413, "body_too_large", True, False),
    ("get_with_a_body_is_read_as_its_body", get(b"/ok", b"Content-Length: %d\r\n" % len(SMUGGLED)) + SMUGGLED)
    + OK,
    # evhttp reads no body for HEAD: the body would be the next request.
    ("head_with_a_body_smuggling", b"HEAD /ok HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(SMUGGLED)
     + SMUGGLED) + BAD,
    ("head_with_a_chunked_body", b"HEAD /ok HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n") + BAD,
    # Chunk sizes and extensions.
    ("chunk_size_17_hex_digits", CHUNKED + b"10000000000000000\r\nx\r\n0\r\n\r\n") + BAD,
    ("chunk_size_leading_space", CHUNKED + b" 5\r\nhello\r\n0\r\n\r\n") + BAD,
    ("chunk_size_trailing_space", CHUNKED + b"5 \r\nhello\r\n0\r\n\r\n") + BAD,
    ("chunk_size_negative", CHUNKED + b"-5\r\nhello\r\n0\r\n\r\n") + BAD,
    ("chunk_extension_bare_semicolon", CHUNKED + b"5;\r\nhello\r\n0\r\n\r\n") + BAD,
    ("chunk_size_bare_lf", CHUNKED + b"5\nhello\r\n0\r\n\r\n") + BAD,
    ("chunk_data_then_bare_cr", CHUNKED + b"5\r\nhello\r0\r\n\r\n") + BAD,
    ("chunk_size_empty_line", CHUNKED + b"\r\n5\r\nhello\r\n0\r\n\r\n") + BAD,
    ("chunk_over_max_body", CHUNKED + b"ffffffff\r\n", 413, "body_too_large", True, False),
    ("chunk_last_size_with_zeros", CHUNKED_OK + b"2\r\nhi\r\n000\r\n\r\n") + OK,
    # Trailers: checked like a head (issue 11: evhttp answered HTML 413 to a
    # line it could not parse, and took the others).
    ("trailer_line_without_colon", CHUNKED + b"2\r\nhi\r\n0\r\nbad trailer\r\n\r\n") + BAD,
    ("trailer_request_line_smuggled", CHUNKED + b"0\r\n" + SMUGGLED) + BAD,
    ("trailer_obs_fold", CHUNKED + b"2\r\nhi\r\n0\r\nX-T: a\r\n b\r\n\r\n") + BAD,
    ("trailer_content_length", CHUNKED + b"2\r\nhi\r\n0\r\nContent-Length: 5\r\n\r\n") + BAD,
    ("trailer_transfer_encoding", CHUNKED + b"2\r\nhi\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n") + BAD,
    ("trailer_host", CHUNKED + b"2\r\nhi\r\n0\r\nHost: evil.example\r\n\r\n") + BAD,
    ("trailer_space_before_colon", CHUNKED + b"2\r\nhi\r\n0\r\nX-T : a\r\n\r\n") + BAD,
    ("trailer_nul_in_value", CHUNKED + b"2\r\nhi\r\n0\r\nX-T: a\x00b\r\n\r\n") + BAD,
    ("trailer_bare_lf_at_end", CHUNKED + b"2\r\nhi\r\n0\r\nX-T: a\r\n\n") + BAD,
    ("trailer_valid_field", CHUNKED_OK + b"2\r\nhi\r\n0\r\nX-Checksum: abc\r\n\r\n") + OK,
    # Bare CR and LF, NUL and other control bytes.
    ("bare_cr_ends_request_line", b"GET /a HTTP/1.1\r" + H + b"\r\n") + BAD,
    ("bare_cr_in_header_value", get(b"/a", b"X-A: a\rb\r\n")) + BAD,
    ("bare_lf_ends_head", b"GET /a HTTP/1.1\r\n" + H + b"\n") + BAD,
    ("nul_in_target", get(b"/a\x00b")) + BAD,
    ("nul_in_header_name", get(b"/a", b"X-\x00A: b\r\n")) + BAD,
    ("del_in_header_value", get(b"/a", b"X-A: a\x7fb\r\n")) + BAD,
    ("escape_in_header_value", get(b"/a", b"X-A: \x1b[31mred\r\n")) + BAD,
    ("utf8_in_target", get(b"/caf\xc3\xa9")) + BAD,
    # obs-fold.
    ("obs_fold_with_tab", get(b"/a", b"X-A: a\r\n\tb\r\n")) + BAD,
    ("obs_fold_of_host", get(b"/a", b" evil.example\r\n")) + BAD,
    ("whitespace_before_first_header", b"GET /a HTTP/1.1\r\n " + H + b"\r\n") + BAD,
    # Host forms: host[:port] (issue 11: some got evhttp's HTML 400).
    ("host_port_not_digits", get(b"/a", host=b"Host: gw.test:abc\r\n")) + BAD,
    ("host_port_too_large", get(b"/a", host=b"Host: gw.test:70000\r\n")) + BAD,
    ("host_unclosed_ipv6_bracket", get(b"/a", host=b"Host: [::1\r\n")) + BAD,
    ("host_bracketed_name", get(b"/a", host=b"Host: [gw.test]\r\n")) + BAD,
    ("host_with_userinfo", get(b"/a", host=b"Host: user@gw.test\r\n")) + BAD,
    ("host_with_path", get(b"/a", host=b"Host: gw.test/x\r\n")) + BAD,
    ("host_with_space", get(b"/a", host=b"Host: gw test\r\n")) + BAD,
    ("host_empty_port", get(b"/a", host=b"Host: :80\r\n")) + BAD,
    ("host_ipv6_literal", get(b"/ok", host=b"Host: [::1]:8080\r\n")) + OK,
    ("host_empty_value", get(b"/ok", host=b"Host:\r\n")) + OK,
    # Target forms a backend may read differently from the router (issue 13,
    # README "Request handling").
    ("fragment_in_path", get(b"/ok#frag")) + BAD,
    ("fragment_in_query", get(b"/ok?a=1#frag")) + BAD,
    ("backslash_in_path", get(b"/ok\\..\\admin")) + BAD,
    ("encoded_slash_in_path", get(b"/ok/..%2fadmin")) + BAD,
    ("encoded_backslash_in_path", get(b"/ok/..%5Cadmin")) + BAD,
    ("encoded_nul_in_path", get(b"/ok/a%00.txt")) + BAD,
    ("encoded_unreserved_in_path", get(b"/%6Fk")) + BAD,
    ("encoded_dot_inside_segment", get(b"/ok/a%2ejson")) + BAD,
    ("malformed_percent_in_path", get(b"/ok/%zz")) + BAD,
    ("leading_double_slash", get(b"//ok")) + BAD,
    ("leading_double_slash_bad_authority", get(b"//gw.test:abc/ok")) + BAD,
    ("empty_segment_inside_path", get(b"/ok//admin")) + BAD,
    ("absolute_form_bad_port", get(b"http://gw.test:abc/ok", host=b"Host: gw.test:abc\r\n")) + BAD,
    ("absolute_form_userinfo", get(b"http://user@gw.test/ok")) + BAD,
    ("absolute_form_double_slash_path", get(b"http://gw.test//ok")) + BAD,
    ("authority_form_with_get", get(b"gw.test:80")) + BAD,
    ("asterisk_form_with_get", get(b"*")) + BAD,
    ("encoded_bytes_in_query_forwarded", get(b"/ok?next=%2F%2e%2e%5c")) + OK,
    # Expect: 100-continue as usual, anything else 417 from the gateway
    # (issue 11: evhttp answered its own HTML 417).
    ("expect_unknown_with_body", post(b"Expect: foo\r\nContent-Length: 2\r\n", b"hi"),
     417, "expectation_failed", True, False),
    ("expect_unknown_without_body", get(b"/ok", b"Expect: foo\r\n"), 417, "expectation_failed", True, False),
    ("expect_empty", post(b"Expect:\r\nContent-Length: 2\r\n", b"hi"), 417, "expectation_failed", True, False),
    ("expect_list", post(b"Expect: 100-continue, foo\r\nContent-Length: 2\r\n", b"hi"),
     417, "expectation_failed", True, False),
    ("expect_tab_before_100_continue", post(b"Expect:\t100-continue\r\nContent-Length: 2\r\n", b"hi"),
     417, "expectation_failed", True, False),
    ("expect_100_continue", post(b"Expect: 100-continue\r\nContent-Length: 2\r\n", b"hi", b"/ok")) + OK,
    # Upgrade / HTTP/2.
    ("upgrade_h2c_ignored", get(b"/ok", b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                                        b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n")) + OK,
    ("upgrade_websocket_ignored", get(b"/ok", b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
                                              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                              b"Sec-WebSocket-Version: 13\r\n")) + OK,
    ("h2_prior_knowledge_preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "version_not_supported", True, False),
    # Request lines.
    ("request_line_trailing_space", b"GET /a HTTP/1.1 \r\n" + H + b"\r\n") + BAD,
    ("version_two_digit_minor", b"GET /a HTTP/1.10\r\n" + H + b"\r\n") + BAD,
    ("method_lowercase", b"get /a HTTP/1.1\r\n" + H + b"\r\n", 405, "method_not_allowed", True, False),
    # Pipelined garbage: the good request is served, what follows is refused
    # on its own (closed or not: the second answer may follow).
    ("pipelined_garbage_after_valid", get(b"/ok") + b"\x00\x01\x02garbage\r\n\r\n", 200, None, None, True),
    ("pipelined_request_without_host", get(b"/ok") + b"GET /a HTTP/1.1\r\n\r\n", 200, None, None, True),
    ("pipelined_behind_refused_chunked", CHUNKED + b"5\r\nhello\r\n0\r\nHost: x\r\n\r\n" + get(b"/ok")) + BAD,
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
        if status == 405:  # RFC 9110 15.5.6: a 405 lists the methods allowed
            self.assertEqual(r.header("Allow"), "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH",
                             "Allow; " + what)
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

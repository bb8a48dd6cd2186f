"""Hardening of what the gateway answers (issue 11, defects 9, 10, 12, 14):
no Content-Length or body on 1xx/204 (and no body on 304/HEAD), bytes after
a bodiless response never poison a pooled upstream connection, standard or
validated upstream reason phrases, request header names with '_' dropped
unless configured, and a Date on every answer."""

import email.utils
import socket
import threading
import time

from gwtest import (GatewayTestCase, free_port, make_config, route, run_gateway_cmd, to_yaml,
                    upstream, write_file)


class DelayedTailUpstream:
    """A tiny upstream: the first request on the first connection gets
    `first` at once and `tail` `gap` seconds later; every other request gets
    a 200 "ok" (with Content-Length). Records (conn_id, request line)."""

    def __init__(self, first, tail, gap=0.3):
        self.first, self.tail, self.gap = first, tail, gap
        self.requests = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.stopped = False
        self.conns = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self._serve, args=(s, self.conns), daemon=True).start()

    def _serve(self, s, conn_id):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = s.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                with self.lock:
                    self.requests.append((conn_id, head.split(b"\r\n", 1)[0]))
                    first = len(self.requests) == 1
                if first:
                    s.sendall(self.first)
                    time.sleep(self.gap)
                    s.sendall(self.tail)
                else:
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except OSError:
            pass
        finally:
            s.close()

    def stop(self):
        self.stopped = True
        self.sock.close()


class BodilessResponseTests(GatewayTestCase):
    """Defect 9: 1xx/204/304/HEAD answers carry no body and no false length."""

    def setUp(self):
        self.stub = self.start_stub("raw")
        self.gw = self.simple_gateway(self.stub)
        self.conn = self.connect(self.gw)

    def get(self, method="GET", target="/r"):
        self.conn.request(method, target)
        r = self.conn.read_response(timeout=5, head=(method == "HEAD"))
        extra = self.conn.pending_bytes(0.2)
        self.assertEqual(extra, b"", "bytes after a bodiless %d: %r" % (r.status, extra[:200]))
        return r

    def assertNextOnNewUpstreamConnection(self):
        """The next request gets its own answer on the same client
        connection, over a new upstream connection (the one that carried
        the faulty answer is not reused)."""
        self.stub.set("echo")
        self.conn.request("GET", "/next")
        r = self.conn.read_response(timeout=5)
        self.assertStatus(r, 200, "request after the bodiless response")
        self.assertEqual(r.json()["path"], "/next")
        reqs = self.stub.requests
        self.assertNotEqual(reqs[-1].conn_id, reqs[-2].conn_id,
                            "upstream connection reused after a response with stray bytes")

    def test_204_with_content_length_and_body_stripped(self):
        """204 + Content-Length: 5 + "hello": the client sees no
        Content-Length and no body; the upstream connection is dropped."""
        self.stub.set("raw", keep_open=True,
                      data=b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello")
        r = self.get()
        self.assertStatus(r, 204)
        self.assertEqual(r.header_all("Content-Length"), [], r.describe())
        self.assertEqual(r.header("X-A"), "1")
        self.assertNextOnNewUpstreamConnection()

    def test_204_with_content_length_zero_stripped(self):
        """204 + Content-Length: 0: stripped too (RFC 9110 8.6: MUST NOT)."""
        self.stub.set("raw", keep_open=True,
                      data=b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        r = self.get()
        self.assertStatus(r, 204)
        self.assertEqual(r.header_all("Content-Length"), [], r.describe())

    def test_204_with_chunked_body_stripped(self):
        """204 + Transfer-Encoding: chunked + a last chunk: neither reaches
        the client; the upstream connection is dropped."""
        self.stub.set("raw", keep_open=True,
                      data=b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        r = self.get()
        self.assertStatus(r, 204)
        self.assertEqual(r.header_all("Transfer-Encoding"), [], r.describe())
        self.assertEqual(r.header_all("Content-Length"), [], r.describe())
        self.assertNextOnNewUpstreamConnection()

    def test_304_with_body_bytes_not_relayed(self):
        """304 + Content-Length: 5 + "hello": the length (of the selected
        representation, RFC 9110 8.6) may pass, the bytes never do."""
        self.stub.set("raw", keep_open=True,
                      data=b"HTTP/1.1 304 Not Modified\r\nETag: \"v\"\r\nContent-Length: 5\r\n\r\nhello")
        r = self.get()
        self.assertStatus(r, 304)
        self.assertEqual(r.header("ETag"), '"v"')
        self.assertNextOnNewUpstreamConnection()

    def test_head_response_with_body_bytes_not_relayed(self):
        """A HEAD answered with a body anyway: headers only reach the client."""
        self.stub.set("raw", keep_open=True,
                      data=b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        r = self.get("HEAD")
        self.assertStatus(r, 200)
        self.assertEqual(r.header("Content-Length"), "5")
        self.assertNextOnNewUpstreamConnection()

    def test_interim_with_content_length_is_invalid(self):
        """A 100 Continue claiming a 3-byte body, then the bytes and a 200:
        the bytes are not a response; 502, never relayed."""
        self.stub.set("raw", data=(b"HTTP/1.1 100 Continue\r\nContent-Length: 3\r\n\r\nabc"
                                   b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        self.conn.request("GET", "/r")
        r = self.conn.read_response(timeout=5)
        self.assertGatewayError(r, 502, "upstream_unavailable")


class FallbackNoBodyTests(GatewayTestCase):
    """Defect 9 on the gateway's own answers: a route fallback that says 204
    or 304 sends its headers only (its body would desync the client)."""

    def test_fallback_204_and_304_send_no_body(self):
        for status in (204, 304):
            stub = self.start_stub("cb%d" % status, "503")
            gw = self.simple_gateway(stub, route_opts={
                "circuit_breaker": {"consecutive_failures": 1, "min_requests": 1000,
                                    "open_duration": "5s"},
                "fallback": {"status": status, "content_type": "text/plain", "body": "stale"}})
            self.assertStatus(self.fetch(gw, "GET", "/trip"), 503)
            c = self.connect(gw)
            c.request("GET", "/open")
            r = c.read_response(timeout=5)
            self.assertStatus(r, status)
            self.assertEqual(r.header("X-Gateway-Error"), "circuit_open", r.describe())
            if status == 204:
                self.assertEqual(r.header_all("Content-Length"), [], r.describe())
            self.assertEqual(c.pending_bytes(0.2), b"", "a body after the fallback %d" % status)
            c.request("GET", "/again")  # the connection is still in step
            self.assertStatus(c.read_response(timeout=5), status)


class DelayedTailTests(GatewayTestCase):
    """Defect 9: bytes that follow a 204 later, when the connection already
    sits in the pool, must not become the start of the next answer."""

    def run_case(self, first, tail, status):
        up = DelayedTailUpstream(first, tail)
        self.addCleanup(up.stop)
        gw = self.start_gateway({"u": upstream(up.address)}, [route("r", "u")])
        conn = self.connect(gw)
        conn.request("GET", "/one")
        r = conn.read_response(timeout=5)
        self.assertStatus(r, status)
        self.assertEqual(r.header_all("Content-Length"), [], r.describe())
        conn.request("GET", "/two")  # at once: the tail is still on its way
        r = conn.read_response(timeout=5)
        self.assertStatus(r, 200, "the answer after the 204 (stray tail parsed as a response?)")
        self.assertEqual(r.body, b"ok")
        self.assertEqual(len(up.requests), 2, up.requests)
        self.assertNotEqual(up.requests[0][0], up.requests[1][0],
                            "the upstream connection that announced a 204 body was reused")

    def test_204_with_length_and_late_body(self):
        self.run_case(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", b"hello", 204)

    def test_204_chunked_and_late_last_chunk(self):
        self.run_case(b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
                      b"0\r\n\r\n", 204)


class ReasonPhraseTests(GatewayTestCase):
    """Defect 10: standard reason phrases, or the upstream's when valid."""

    def setUp(self):
        self.stub = self.start_stub("raw")
        self.gw = self.simple_gateway(self.stub, route_opts={"path_prefix": "/p"})

    def status_line(self, data):
        self.stub.set("raw", data=data)
        with self.connect(self.gw) as c:
            c.request("GET", "/p")
            r = c.read_response(timeout=5)
        return r.raw_head.split(b"\r\n", 1)[0]

    def test_standard_phrase_when_upstream_gives_none(self):
        cases = [
            (b"HTTP/1.1 204\r\n\r\n", b"HTTP/1.1 204 No Content"),
            (b"HTTP/1.1 304 \r\n\r\n", b"HTTP/1.1 304 Not Modified"),
            (b"HTTP/1.1 301 \r\nLocation: /x\r\nContent-Length: 0\r\n\r\n",
             b"HTTP/1.1 301 Moved Permanently"),
            (b"HTTP/1.1 201\r\nContent-Length: 0\r\n\r\n", b"HTTP/1.1 201 Created"),
            (b"HTTP/1.1 308 \r\nContent-Length: 0\r\n\r\n", b"HTTP/1.1 308 Permanent Redirect"),
            (b"HTTP/1.1 422 \r\nContent-Length: 0\r\n\r\n", b"HTTP/1.1 422 Unprocessable Content"),
            (b"HTTP/1.1 451 \r\nContent-Length: 0\r\n\r\n",
             b"HTTP/1.1 451 Unavailable For Legal Reasons"),
        ]
        for data, want in cases:
            self.assertEqual(self.status_line(data), want)

    def test_valid_upstream_phrase_kept(self):
        self.assertEqual(self.status_line(b"HTTP/1.1 200 Fine, thanks\r\nContent-Length: 0\r\n\r\n"),
                         b"HTTP/1.1 200 Fine, thanks")
        self.assertEqual(self.status_line(b"HTTP/1.1 299 Custom Thing\r\nContent-Length: 0\r\n\r\n"),
                         b"HTTP/1.1 299 Custom Thing")

    def test_non_ascii_upstream_phrase_replaced(self):
        self.assertEqual(self.status_line(b"HTTP/1.1 304 Nicht ge\xe4ndert\r\n\r\n"),
                         b"HTTP/1.1 304 Not Modified")

    def test_unknown_status_without_phrase(self):
        """An unregistered code without a phrase: an empty one, never "Error"."""
        self.assertEqual(self.status_line(b"HTTP/1.1 299\r\nContent-Length: 0\r\n\r\n"),
                         b"HTTP/1.1 299 ")

    def test_gateway_errors_keep_their_phrases(self):
        r = self.fetch(self.gw, "GET", "/elsewhere")
        self.assertGatewayError(r, 404, "no_route")
        self.assertEqual(r.reason, "Not Found")


class UnderscoreHeaderTests(GatewayTestCase):
    """Defect 12: request header names with '_' are dropped by default."""

    HEADERS = [("Transfer_Encoding", "chunked"), ("X_Custom", "1"), ("X-Fine", "2"),
               ("Content_Length", "7")]

    def forwarded_names(self, **conf):
        stub = self.start_stub("echo")
        gw = self.simple_gateway(stub, **conf)
        r = self.fetch(gw, "GET", "/u", headers=self.HEADERS)
        self.assertStatus(r, 200)
        return [n.lower() for n, _ in r.json()["headers"]]

    def test_dropped_by_default(self):
        names = self.forwarded_names()
        self.assertIn("x-fine", names)
        for n in ("transfer_encoding", "x_custom", "content_length"):
            self.assertNotIn(n, names)

    def test_kept_when_configured(self):
        names = self.forwarded_names(limits={"underscores_in_headers": "keep"})
        self.assertIn("x-fine", names)
        self.assertIn("x_custom", names)
        self.assertIn("transfer_encoding", names)

    def test_explicit_drop_and_bad_value(self):
        names = self.forwarded_names(limits={"underscores_in_headers": "drop"})
        self.assertNotIn("x_custom", names)
        conf = make_config(free_port(), {"u": upstream("127.0.0.1:9")}, [route("r", "u")],
                           limits={"underscores_in_headers": "maybe"})
        p = run_gateway_cmd(["-t", "-c", write_file(to_yaml(conf))])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("'underscores_in_headers' in limits: expected drop or keep, got 'maybe'",
                      p.stderr)


class DateHeaderTests(GatewayTestCase):
    """Defect 14: every answer carries a Date (RFC 9110 6.6.1)."""

    def setUp(self):
        self.stub = self.start_stub("raw")
        self.gw = self.simple_gateway(self.stub, route_opts={"path_prefix": "/p"})

    def assertRecentDate(self, r):
        dates = r.header_all("Date")
        self.assertEqual(len(dates), 1, r.describe())
        when = email.utils.parsedate_to_datetime(dates[0]).timestamp()
        self.assertLess(abs(when - time.time()), 5, dates[0])
        self.assertRegex(dates[0], r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
                         r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                         r"\d\d:\d\d:\d\d GMT$")

    def test_added_when_upstream_has_none(self):
        self.stub.set("raw", data=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        self.assertRecentDate(self.fetch(self.gw, "GET", "/p"))
        self.stub.set("raw", data=b"HTTP/1.1 200 OK\r\n\r\nclose-delimited")
        self.assertRecentDate(self.fetch(self.gw, "GET", "/p"))
        self.stub.set("raw", data=b"HTTP/1.1 204 No Content\r\n\r\n")
        self.assertRecentDate(self.fetch(self.gw, "GET", "/p"))

    def test_added_for_http10_client_unknown_length(self):
        self.stub.set("raw", data=b"HTTP/1.1 200 OK\r\n\r\nclose-delimited")
        self.assertRecentDate(self.fetch(self.gw, "GET", "/p", version="HTTP/1.0"))

    def test_upstream_date_kept(self):
        self.stub.set("raw", data=(b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                                   b"Content-Length: 2\r\n\r\nok"))
        r = self.fetch(self.gw, "GET", "/p")
        self.assertEqual(r.header_all("Date"), ["Sun, 06 Nov 1994 08:49:37 GMT"])

    def test_gateway_errors_have_one(self):
        self.assertRecentDate(self.fetch(self.gw, "GET", "/nowhere"))
        self.assertRecentDate(self.fetch(self.gw, "GET", "/nowhere", version="HTTP/1.0"))
        self.stub.set("raw", data=b"garbage\r\n\r\n")
        r = self.fetch(self.gw, "GET", "/p")
        self.assertGatewayError(r, 502, "upstream_unavailable")
        self.assertRecentDate(r)

    def test_refusal_before_evhttp_has_one(self):
        """A head refused by the gateway's own check (written raw)."""
        with self.connect(self.gw) as c:
            c.send(b"GET /p HTTP/1.1\r\nHost: gw.test\r\nX-A: a\r\n  folded\r\n\r\n")
            r = c.read_response(timeout=5)
        self.assertGatewayError(r, 400, "bad_request")
        self.assertEqual(r.reason, "Bad Request")
        self.assertRecentDate(r)

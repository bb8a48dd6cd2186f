"""Malformed and hostile upstream responses, written byte for byte (RFC 9112,
response splitting and desync techniques).

One gateway process serves the whole module. Every case has its own upstream
(so its own connection pool, outlier state and breaker) and its own route
/c/NAME/, all pointing at one raw upstream (HostileUpstream) that answers
/c/NAME/bad with the case's bytes and anything else with a small good answer
naming the path it answers. Each case then proves:

1. what the client receives: the exact status (502 upstream_unavailable for
   an invalid answer before any byte reached the client, SPEC section 4;
   a cut connection, never a clean end of message, when the body breaks
   off after the head went out), and no framing headers that could desync
   the client (two Content-Lengths, Content-Length with Transfer-Encoding);
2. that the upstream connection that carried a bad answer is never reused:
   the gateway closes it (EOF or reset seen by the stub, bounded wait) and
   the next request of the route arrives on another connection and gets its
   own answer (not left-overs of the bad one);
3. that the gateway is still alive and answers an ordinary request.

Cases found failing when the table was written (duplicate and
Transfer-Encoding-beside lengths on HEAD/304 answers, leading zeros in a
Content-Length, a resend after the server had begun to answer) are fixed
and kept here as regression tests.

Nothing sleeps to wait for a condition: every wait is a poll with a deadline.
"""

import collections
import socket
import struct
import threading
import time
import unittest

from gwtest import (ConnectionClosed, Conn, Gateway, GatewayTestCase, ProtocolError, fetch,
                    free_port, make_config, poll_until, route, upstream)

READ_TIMEOUT = 6.0       # client side; every route answers within its timeout (3 s)
CLOSE_WAIT = 3.0         # the gateway must drop a bad upstream connection within this
ROUTE_TIMEOUT = "3s"
ENDLESS_ROUTE_TIMEOUT_S = 1.0


# ---------------------------------------------------------------------------
# the raw upstream

class Gate:
    """A script step: wait until the test opens the gate (bounded). The test
    opens a case's gates once the client has the response head (Cut) or the
    whole response (otherwise)."""


class Pause:
    """A script step: pause the writer (pacing, so that what follows comes
    in another segment; nothing waits for a condition with it)."""

    def __init__(self, seconds=0.05):
        self.seconds = seconds


CLOSE = "close"          # script step: FIN, the stub stops serving that connection
RST = "rst"              # script step: reset (SO_LINGER 0), same
ENDLESS_1XX = "endless"  # script step: 100 Continue heads until the gateway hangs up

GOOD_PREFIX = b"good "


def good_answer(path):
    body = GOOD_PREFIX + path.encode("latin-1")
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


class HostileUpstream:
    """A raw HTTP/1.1 upstream on loopback. It counts the connections it
    accepts (ids 1, 2, ...), records which connection each request arrived
    on, and records who ended each connection: "peer" (the gateway closed or
    reset it) or "stub" (the script closed it). A scripted path gets its
    script (bytes, Gate(), Pause(), CLOSE, RST, ENDLESS_1XX); every other path gets
    good_answer(path). After a script the connection keeps being served, so
    a gateway that reuses it would show."""

    def __init__(self):
        self.lock = threading.Lock()
        self.scripts = {}
        self.gates = {}
        self.requests = []   # (conn_id, path)
        self.ended = {}      # conn_id -> "peer" | "stub"
        self.conns = 0
        self.errors = collections.defaultdict(list)  # path -> what went wrong in its script
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def script(self, path, steps):
        self.scripts[path] = steps
        for s in steps:
            if isinstance(s, Gate):
                self.gates[id(s)] = threading.Event()

    def open_gates(self, path):
        for s in self.scripts.get(path, ()):
            if isinstance(s, Gate):
                self.gates[id(s)].set()

    # ----- what happened ----------------------------------------------
    def conns_of(self, path):
        with self.lock:
            return [cid for (cid, p) in self.requests if p == path]

    def wait_request(self, path, timeout=2.0):
        """The connection id the (single) request for path arrived on."""
        ids = poll_until(lambda: self.conns_of(path), timeout)
        if not ids:
            raise AssertionError("the upstream never received %s; requests: %r"
                                 % (path, self.requests[-5:]))
        return ids[0]

    def wait_ended(self, conn_id, timeout):
        """Who ended connection conn_id ("peer" or "stub"), or None if it is
        still open after timeout seconds."""
        return poll_until(lambda: self.ended.get(conn_id), timeout)

    # ----- serving ----------------------------------------------------
    def _accept(self):
        while not self.stopped:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
                cid = self.conns
            threading.Thread(target=self._serve, args=(s, cid), daemon=True).start()

    def _end(self, cid, who):
        with self.lock:
            self.ended.setdefault(cid, who)

    def _serve(self, s, cid):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = s.recv(65536)
                    if not data:
                        self._end(cid, "peer")
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                line = head.split(b"\r\n", 1)[0].split(b" ")
                path = line[1].decode("latin-1") if len(line) == 3 else "?"
                with self.lock:
                    self.requests.append((cid, path))
                if not self._run(s, cid, path, self.scripts.get(path, [good_answer(path)])):
                    return
        except OSError:
            self._end(cid, "peer")
        finally:
            s.close()

    def _run(self, s, cid, path, steps):
        """Plays a script; False when the connection is over."""
        for step in steps:
            if isinstance(step, bytes):
                s.sendall(step)
            elif isinstance(step, Gate):
                if not self.gates[id(step)].wait(5.0):
                    self.errors[path].append("gate never opened on connection %d" % cid)
            elif isinstance(step, Pause):
                time.sleep(step.seconds)
            elif step in (CLOSE, RST):
                if step == RST:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self._end(cid, "stub")
                return False
            elif step == ENDLESS_1XX:
                batch = b"HTTP/1.1 100 Continue\r\n\r\n" * 40
                deadline = time.monotonic() + 10.0
                while time.monotonic() < deadline:
                    s.sendall(batch)  # raises once the gateway has hung up
                    time.sleep(0.001)  # pacing only (about 1 MB/s), not a wait
                self.errors[path].append("the gateway read 1xx heads for 10 s on"
                                         " connection %d" % cid)
        return True

    def stop(self):
        self.stopped = True
        self.sock.close()


# ---------------------------------------------------------------------------
# the table

# What the client must get:
#   Error(status, code)    a gateway answer with X-Gateway-Error: code
#   Proxied(status, body)  the upstream's answer (body None: not checked)
#   Cut(status)            a head with status, then the connection ends
#                          without a complete body (no clean end of message;
#                          for a close-delimited body, a reset rather than a FIN)
Error = collections.namedtuple("Error", "status code")
Proxied = collections.namedtuple("Proxied", "status body")
Cut = collections.namedtuple("Cut", "status")

BAD = Error(502, "upstream_unavailable")


class Case:
    """One row of the table: the upstream's script for /c/NAME/bad, what the
    client must get, and the docstring of the generated test."""

    def __init__(self, name, steps, expect, doc, reuse_ok=False, check=None, defect=None,
                 route_opts=None, method="GET", version="HTTP/1.1", warm=False):
        self.name = name
        self.method = method          # of the client's request for /c/NAME/bad
        self.version = version        # of the client's request for /c/NAME/bad
        self.warm = warm              # a good request first: the bad answer comes on a
        #                               connection the gateway reused from its pool
        self.steps = steps if isinstance(steps, list) else [steps]
        self.expect = expect
        self.doc = doc
        self.reuse_ok = reuse_ok      # a valid answer: the connection may go back to the pool
        self.check = check            # extra checks on the client's Response
        self.defect = defect          # text: expected failure until the gateway is fixed
        self.route_opts = route_opts or {}


OK2 = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
SMUGGLED = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Smuggled: 1\r\n\r\nsmuggled"
HELLO_CHUNKS = b"5\r\nhello\r\n0\r\n\r\n"


def head(*lines, status=b"HTTP/1.1 200 OK"):
    return b"\r\n".join((status,) + lines) + b"\r\n\r\n"


def chunked(body_bytes, *extra):
    return head(b"Transfer-Encoding: chunked", *extra) + body_bytes


def no_header(name):
    def check(tc, r):
        tc.assertEqual(r.header_all(name), [], "%s leaked: %s" % (name, r.describe()))
    return check


def only_length(value):
    def check(tc, r):
        tc.assertEqual(r.header_all("Content-Length"), [value], r.describe())
        tc.assertEqual(r.header_all("Transfer-Encoding"), [], r.describe())
    return check


def all_of(*checks):
    def check(tc, r):
        for c in checks:
            c(tc, r)
    return check


CASES = [
    # ----- interim (1xx) answers ------------------------------------------
    Case("interim_100_flood",
         [b"HTTP/1.1 100 Continue\r\n\r\n" * 300 + OK2], Proxied(200, b"ok"),
         "300 x 100 Continue before the final 200: the client gets the 200 and "
         "its body, and the connection stays in step.", reuse_ok=True),
    Case("interim_103_flood",
         [b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" * 2000
          + OK2], Proxied(200, b"ok"),
         "2000 x 103 Early Hints (about 110 KB, more than one read and more than "
         "the head limit in all) before the final 200: each interim head is "
         "judged alone; the 200 arrives without their Link fields.",
         reuse_ok=True, check=no_header("Link")),
    Case("interim_endless",
         [ENDLESS_1XX], Error(504, "upstream_timeout"),
         "An upstream that sends 100 Continue heads for ever and never a final "
         "answer: the route timeout (1 s) ends the wait with 504 "
         "upstream_timeout, and the gateway hangs up on the flood.",
         route_opts={"timeout": "%dms" % (ENDLESS_ROUTE_TIMEOUT_S * 1000)}),
    Case("interim_with_content_length",
         [b"HTTP/1.1 100 Continue\r\nContent-Length: 7\r\n\r\n" + SMUGGLED[:7] + OK2], BAD,
         "A 100 Continue that claims a body: what follows cannot be framed, 502."),
    Case("status_101_unrequested",
         [head(b"Upgrade: websocket", b"Connection: Upgrade",
               status=b"HTTP/1.1 101 Switching Protocols") + b"\x81\x05hello"], BAD,
         "101 Switching Protocols to a request that asked for no upgrade: 502, "
         "the connection (now another protocol) is dropped."),
    # ----- bodiless statuses with a body ---------------------------------
    Case("204_with_length_and_body",
         [head(b"Content-Length: 5", status=b"HTTP/1.1 204 No Content") + b"hello"],
         Proxied(204, b""),
         "204 + Content-Length: 5 + 'hello': a 204 without length or body; the "
         "bytes never become the next answer.", check=no_header("Content-Length")),
    Case("304_with_body",
         [head(b'ETag: "v1"', b"Content-Length: 5", status=b"HTTP/1.1 304 Not Modified")
          + b"hello"], Proxied(304, b""),
         "304 + Content-Length: 5 + 'hello': the 304 passes without body bytes; "
         "the connection that carries them is not reused."),
    Case("304_two_equal_lengths",
         [head(b'ETag: "v1"', b"Content-Length: 5", b"Content-Length: 5",
               status=b"HTTP/1.1 304 Not Modified")], Proxied(304, b""),
         "304 with Content-Length: 5 on two lines: the gateway accepts the "
         "duplicate (RFC 9110 8.6), so it passes one Content-Length: 5 on, "
         "never the duplicate.", reuse_ok=True, check=only_length("5")),
    Case("head_length_list",
         [head(b"Content-Length: 5, 5")], Proxied(200, b""),
         "A HEAD answered with Content-Length: 5, 5: the client gets one "
         "Content-Length: 5, not the list.", method="HEAD", reuse_ok=True,
         check=only_length("5")),
    Case("head_te_and_length",
         [head(b"Content-Length: 5", b"Transfer-Encoding: chunked")], Proxied(200, b""),
         "A HEAD answered with Transfer-Encoding: chunked and Content-Length: 5: "
         "Transfer-Encoding overrides the length, which an intermediary MUST "
         "remove before forwarding (RFC 9112 6.3 item 3): the client sees neither.",
         method="HEAD", check=all_of(no_header("Content-Length"),
                                     no_header("Transfer-Encoding"))),
    Case("304_te_and_length",
         [head(b"Content-Length: 5", b"Transfer-Encoding: chunked",
               status=b"HTTP/1.1 304 Not Modified")], Proxied(304, b""),
         "A 304 with Transfer-Encoding: chunked and Content-Length: 5: the "
         "overridden length is removed (RFC 9112 6.3 item 3).",
         check=no_header("Content-Length")),
    # ----- Content-Length and Transfer-Encoding --------------------------
    Case("cl_then_te",
         [chunked(HELLO_CHUNKS, b"Content-Length: 100")], Proxied(200, b"hello"),
         "Transfer-Encoding: chunked + Content-Length: 100: chunked wins (RFC "
         "9112 6.3), the client sees one length of 5 and no Transfer-Encoding, "
         "and the connection is not trusted for another request.",
         check=only_length("5")),
    Case("cl_zero_then_te_smuggle",
         [head(b"Content-Length: 0", b"Transfer-Encoding: chunked")
          + b"8\r\nsmuggled\r\n0\r\n\r\n"], Proxied(200, b"smuggled"),
         "Content-Length: 0 before Transfer-Encoding: chunked (CL.TE desync): "
         "the chunked body is the body, never a next response.",
         check=only_length("8")),
    Case("cl_two_different",
         [head(b"Content-Length: 2", b"Content-Length: 10") + b"okHTTP/1.1"], BAD,
         "Two different Content-Length values: 502 (RFC 9112 6.3 item 5)."),
    Case("cl_list_different",
         [head(b"Content-Length: 2, 10") + b"okHTTP/1.1"], BAD,
         "Content-Length: 2, 10 (one line, two values): 502."),
    Case("cl_two_equal",
         [head(b"Content-Length: 2", b"Content-Length: 2") + b"ok"], Proxied(200, b"ok"),
         "Two equal Content-Length lines: accepted as one value (RFC 9110 8.6 "
         "allows it); the client sees a single Content-Length: 2.",
         reuse_ok=True, check=only_length("2")),
    Case("cl_list_equal",
         [head(b"Content-Length: 2, 2") + b"ok"], Proxied(200, b"ok"),
         "Content-Length: 2, 2: one value; the client sees Content-Length: 2.",
         reuse_ok=True, check=only_length("2")),
    Case("cl_plus_sign",
         [head(b"Content-Length: +2") + b"ok"], BAD,
         "Content-Length: +2 (a sign is not 1*DIGIT): 502."),
    Case("cl_negative",
         [head(b"Content-Length: -1") + b"ok"], BAD,
         "Content-Length: -1: 502."),
    Case("cl_inner_space",
         [head(b"Content-Length: 1 2") + b"ok" * 6], BAD,
         "Content-Length: 1 2 (a space inside the number): 502, not 12 nor 1."),
    Case("cl_hex",
         [head(b"Content-Length: 0x2") + b"ok"], BAD,
         "Content-Length: 0x2: 502."),
    Case("cl_overflow",
         [head(b"Content-Length: 18446744073709551618") + b"ok"], BAD,
         "Content-Length: 2^64 + 2 (wraps to 2 in 64 bits): 502."),
    Case("cl_empty",
         [head(b"Content-Length: ") + b"ok"], BAD,
         "An empty Content-Length: 502."),
    Case("cl_leading_zeros",
         [head(b"Content-Length: 0000000000000000002") + b"ok"], Proxied(200, b"ok"),
         "Content-Length: 0000000000000000002 (19 digits, value 2) is valid "
         "1*DIGIT (RFC 9110 8.6): the overflow guard must judge the value, "
         "not the number of digits.", reuse_ok=True, check=only_length("2")),
    Case("te_chunked_identity",
         [chunked(HELLO_CHUNKS).replace(b"chunked", b"chunked, identity", 1)], BAD,
         "Transfer-Encoding: chunked, identity (chunked not last): 502."),
    Case("te_gzip_alone",
         [head(b"Transfer-Encoding: gzip") + b"\x1f\x8b\x08\x00", CLOSE], BAD,
         "Transfer-Encoding: gzip without chunked: the gateway drops the "
         "hop-by-hop header, so it cannot pass the coded body on: 502."),
    Case("te_chunked_not_last",
         [head(b"Transfer-Encoding: chunked, gzip") + HELLO_CHUNKS], BAD,
         "Transfer-Encoding: chunked, gzip: no way to find the body's end: 502."),
    Case("te_leading_ows",
         [head(b"Transfer-Encoding:    \tchunked") + HELLO_CHUNKS], Proxied(200, b"hello"),
         "Transfer-Encoding with spaces and a tab before 'chunked' (OWS): plain "
         "chunked; the body is decoded.", reuse_ok=True, check=only_length("5")),
    Case("te_line_starts_with_space",
         [head(b"Content-Length: 2", b" Transfer-Encoding: chunked") + b"ok"], BAD,
         "' Transfer-Encoding: chunked' (the line starts with SP: obs-fold of "
         "the Content-Length line, or a hidden TE for a lenient parser): 502."),
    Case("te_capitalised",
         [head(b"Transfer-Encoding: Chunked") + HELLO_CHUNKS], Proxied(200, b"hello"),
         "Transfer-Encoding: Chunked: codings are case-insensitive (RFC 9112 7).",
         reuse_ok=True, check=only_length("5")),
    Case("te_two_lines_chunked",
         [head(b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked") + HELLO_CHUNKS],
         BAD,
         "Transfer-Encoding: chunked on two lines (chunked applied twice, RFC "
         "9112 6.1 forbids it): 502."),
    Case("te_two_lines_gzip_chunked",
         [head(b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked") + HELLO_CHUNKS],
         BAD,
         "Transfer-Encoding: gzip and chunked on two lines: a coding the gateway "
         "cannot declare to the client: 502."),
    Case("te_in_http10",
         [head(b"Transfer-Encoding: chunked", status=b"HTTP/1.0 200 OK") + HELLO_CHUNKS,
          CLOSE], BAD,
         "Transfer-Encoding in an HTTP/1.0 response (RFC 9112 6.1: faulty "
         "framing): 502."),
    Case("te_vertical_tab",
         [head(b"Transfer-Encoding: \x0bchunked", b"Content-Length: 2") + b"ok"], BAD,
         "Transfer-Encoding: VT chunked (a control byte some parsers skip): 502."),
    Case("te_empty",
         [head(b"Transfer-Encoding: ", b"Content-Length: 2") + b"ok"], BAD,
         "An empty Transfer-Encoding beside Content-Length: 502."),
    Case("hop_by_hop_fields",
         [head(b"Connection: keep-alive, X-Internal", b"Keep-Alive: timeout=5",
               b"X-Internal: secret", b"Upgrade: h2c", b"Trailer: X-T",
               b"Proxy-Connection: keep-alive", b"X-Kept: 1", b"Content-Length: 2") + b"ok"],
         Proxied(200, b"ok"),
         "Hop-by-hop fields in a response (Connection and the fields it names, "
         "Keep-Alive, Upgrade, Trailer, Proxy-Connection) never reach the client; "
         "end-to-end ones do.", reuse_ok=True,
         check=all_of(no_header("X-Internal"),
                      lambda tc, r: tc.assertEqual(r.header("X-Kept"), "1", r.describe()))),
    # ----- chunk framing -------------------------------------------------
    Case("chunk_size_negative",
         [chunked(b"-5\r\nhello\r\n0\r\n\r\n")], BAD,
         "Chunk size -5: 502."),
    Case("chunk_size_hex_overflow",
         [chunked(b"10000000000000005\r\nhello\r\n0\r\n\r\n")], BAD,
         "Chunk size of 17 hex digits (2^68 + 5, 5 when truncated): 502."),
    Case("chunk_size_0x",
         [chunked(b"0x5\r\nhello\r\n0\r\n\r\n")], BAD,
         "Chunk size 0x5: 502."),
    Case("chunk_size_inner_space",
         [chunked(b"5 5\r\nhello\r\n0\r\n\r\n")], BAD,
         "Chunk size '5 5': 502."),
    Case("chunk_data_without_crlf",
         [chunked(b"5\r\nhelloXY0\r\n\r\n")], BAD,
         "Chunk data not followed by CRLF: 502."),
    Case("chunk_bare_lf",
         [chunked(b"5\nhello\n0\n\n")], BAD,
         "Chunk lines ended by bare LF: 502 (the decoder is strict)."),
    Case("chunk_extension_long",
         [chunked(b"5;" + b"x" * 4000 + b"\r\nhello\r\n0\r\n\r\n")], BAD,
         "A 4000-byte chunk extension (over the 1 KiB size-line limit): 502."),
    Case("chunk_extension_control",
         [chunked(b"5;x=\x00\x01\r\nhello\r\n0\r\n\r\n")], BAD,
         "A chunk extension with NUL and SOH: 502."),
    Case("chunk_extension_lf_smuggle",
         [chunked(b"5;x=\nsmuggled\r\nhello\r\n0\r\n\r\n")], BAD,
         "A bare LF inside a chunk extension (the 'TERM.EXT' desync): 502."),
    Case("chunk_bad_trailer",
         [chunked(b"5\r\nhello\r\n0\r\nnot a trailer\r\n\r\n")], BAD,
         "A trailer line without a colon: 502."),
    Case("chunk_trailer_content_length",
         [chunked(b"5\r\nhello\r\n0\r\nContent-Length: 100\r\n\r\n")], Proxied(200, b"hello"),
         "A Content-Length trailer: discarded, never merged into the head; the "
         "client sees length 5.", reuse_ok=True, check=only_length("5")),
    Case("chunk_huge_then_close",
         [chunked(b"ffffffffffffffff\r\nhello"), CLOSE], Cut(200),
         "Chunk size 2^64-1 (valid syntax), 5 bytes, then the upstream closes: "
         "the head and those bytes went out, so the client connection ends "
         "without the last chunk."),
    Case("chunked_truncated",
         [chunked(b"5\r\nhello\r\n"), CLOSE], Cut(200),
         "A chunked body whose last chunk never comes (upstream closes): the "
         "client connection ends without a clean end of message."),
    Case("chunk_bad_after_head_sent",
         [chunked(b"5\r\nhello\r\n"), Gate(), b"zz\r\n" + SMUGGLED], Cut(200),
         "A bad chunk size after the head reached the client: the reply is cut "
         "(no last chunk), the upstream connection dropped."),
    Case("chunked_truncated_http10_client",
         [chunked(b"5\r\nhello\r\n"), Gate(), CLOSE], Cut(200),
         "The same for an HTTP/1.0 client, whose body is close-delimited: the "
         "gateway resets the connection, since a FIN would pass the cut body "
         "off as complete.", version="HTTP/1.0"),
    Case("close_delimited_then_reset",
         [head(b"Content-Type: text/plain") + b"partial", Gate(), RST], Cut(200),
         "A body without length (ends at the upstream's close) broken off by a "
         "reset: the client's chunked body never gets its last chunk."),
    Case("close_delimited_then_reset_http10_client",
         [head(b"Content-Type: text/plain") + b"partial", Gate(), RST], Cut(200),
         "The same for an HTTP/1.0 client: a reset, not a FIN.", version="HTTP/1.0"),
    Case("upstream_503_truncated",
         [head(b"Content-Length: 10", status=b"HTTP/1.1 503 Service Unavailable") + b"hello",
          Gate(), CLOSE], Cut(503),
         "The upstream's own 503 whose body breaks off (no retry configured): "
         "relayed as it came, then cut."),
    Case("stall_mid_body",
         [head(b"Content-Length: 10") + b"hello"], Cut(200),
         "Content-Length: 10, 5 bytes, then silence: the route timeout (500 ms) "
         "bounds the silence, the reply is cut and the upstream connection "
         "dropped.", route_opts={"timeout": "500ms"}),
    # ----- bytes after the end of a response -----------------------------
    Case("bytes_after_content_length",
         [OK2 + SMUGGLED], Proxied(200, b"ok"),
         "A complete response followed at once by a second one (response "
         "splitting): the client gets 'ok', and the extra answer never serves "
         "the next request."),
    Case("bytes_after_content_length_late",
         [OK2, Gate(), SMUGGLED], Proxied(200, b"ok"),
         "A complete response, then, once the connection idles in the pool, an "
         "unsolicited second response: the gateway drops the connection."),
    Case("bytes_after_last_chunk",
         [chunked(b"2\r\nok\r\n0\r\n\r\n") + SMUGGLED], Proxied(200, b"ok"),
         "A complete chunked response followed by another response: the extra "
         "bytes never serve the next request."),
    Case("reused_conn_bytes_after_content_length",
         [OK2 + SMUGGLED], Proxied(200, b"ok"),
         "Response splitting on a connection the gateway reused from its pool: "
         "the same, the connection is dropped.", warm=True),
    Case("reused_conn_two_different_cl",
         [head(b"Content-Length: 2", b"Content-Length: 10") + b"okHTTP/1.1"], BAD,
         "Two different Content-Lengths on a reused connection: 502, dropped.", warm=True),
    # ----- early close ---------------------------------------------------
    Case("close_before_any_byte",
         [CLOSE], BAD,
         "The upstream closes on a fresh connection without answering: 502."),
    Case("close_mid_status_line",
         [b"HTTP/1.1 2", CLOSE], BAD,
         "The upstream closes in the middle of the status line: 502."),
    Case("close_mid_head",
         [b"HTTP/1.1 200 OK\r\nContent-Le", CLOSE], BAD,
         "The upstream closes in the middle of the header section: 502."),
    Case("reset_mid_head_reused_conn",
         [b"HTTP/1.1 200 OK\r\nContent-Le", RST], BAD,
         "A reset in the middle of the head on a reused connection: the request "
         "reached the server (it began to answer), so this is no stale "
         "keep-alive connection to resend on: 502, the upstream saw the request "
         "once (the route allows one try).", warm=True),
    Case("reset_mid_head",
         [b"HTTP/1.1 200 OK\r\nContent-Le", RST], BAD,
         "A reset in the middle of the head on a fresh connection: 502."),
    Case("close_mid_body",
         [head(b"Content-Length: 10") + b"hello", CLOSE], Cut(200),
         "Content-Length: 10, 5 bytes, close: the client gets the head and "
         "then a connection that ends short of the announced length."),
    # ----- line endings and bytes in the head ----------------------------
    Case("bare_lf_head",
         [b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: 1\n\nok"], Proxied(200, b"ok"),
         "A head with bare LF line ends (RFC 9112 2.2 lets a recipient accept "
         "them): relayed with CRLF.", reuse_ok=True),
    Case("bare_cr_status_line",
         [b"HTTP/1.1 200 OK\rContent-Length: 2\r\n\r\nok"], BAD,
         "A bare CR ending the status line (RFC 9112 2.2: invalid): 502."),
    Case("bare_cr_in_value",
         [head(b"X-A: a\rContent-Length: 100", b"Content-Length: 2") + b"ok"], BAD,
         "A bare CR inside a field value (hides a second Content-Length from a "
         "CR-splitting parser): 502."),
    Case("nul_in_value",
         [head(b"X-A: a\x00b", b"Content-Length: 2") + b"ok"], BAD,
         "NUL in a field value (RFC 9110 5.5: reject or replace): 502."),
    Case("nul_in_name",
         [head(b"X-\x00A: b", b"Content-Length: 2") + b"ok"], BAD,
         "NUL in a field name: 502."),
    Case("control_in_value",
         [head(b"X-A: a\x01\x7fb", b"Content-Length: 2") + b"ok"], BAD,
         "SOH and DEL in a field value: 502."),
    Case("obs_fold",
         [head(b"X-A: a", b"  folded", b"Content-Length: 2") + b"ok"], BAD,
         "obs-fold in a response (RFC 9112 5.2: a proxy answers 502 or unfolds; "
         "this one answers 502)."),
    Case("header_without_colon",
         [head(b"X-A a", b"Content-Length: 2") + b"ok"], BAD,
         "A header line without a colon: 502."),
    Case("space_before_colon",
         [head(b"Content-Length : 5", b"Content-Length: 2") + b"okabc"], BAD,
         "'Content-Length : 5' (whitespace before the colon, RFC 9112 5.1) beside "
         "Content-Length: 2: 502, the gateway never has to guess which one counts."),
    Case("too_many_headers",
         [head(*[b"X-H%d: v" % i for i in range(150)] + [b"Content-Length: 2"]) + b"ok"], BAD,
         "150 header lines (over the gateway's 100): 502."),
    Case("head_over_limit",
         [head(b"X-Huge: " + b"h" * (80 * 1024), b"Content-Length: 2") + b"ok"], BAD,
         "An 80 KiB response head (over the gateway's 64 KiB limit): 502."),
    # ----- heads and chunks split across segments -------------------------
    Case("split_status_crlf",
         [b"HTTP/1.1 200 OK\r", Pause(), b"\nContent-Length: 2\r\n\r\nok"],
         Proxied(200, b"ok"),
         "A status line whose CR and LF come in two segments: one valid head.",
         reuse_ok=True),
    Case("split_bare_cr",
         [b"HTTP/1.1 200 OK\r", Pause(), b"Content-Length: 2\r\n\r\nok"], BAD,
         "A CR at the end of a segment, not followed by LF in the next: 502."),
    Case("split_content_length_digits",
         [b"HTTP/1.1 200 OK\r\nContent-Length: 1", Pause(), b"0\r\n\r\n0123456789"],
         Proxied(200, b"0123456789"),
         "Content-Length: 1|0 split between segments: the length is 10, not 1.",
         reuse_ok=True, check=only_length("10")),
    Case("split_chunk_size",
         [chunked(b"1"), Pause(), b"0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n"],
         Proxied(200, b"x" * 16),
         "Chunk size 1|0 split between segments: a chunk of 16 bytes.", reuse_ok=True),
    Case("split_chunk_crlf",
         [chunked(b"5\r\nhello\r"), Pause(), b"\n0\r\n\r\n"], Proxied(200, b"hello"),
         "The CRLF after chunk data split between segments.", reuse_ok=True),
    # ----- status lines --------------------------------------------------
    Case("status_two_digits",
         [b"HTTP/1.1 99 Odd\r\nContent-Length: 2\r\n\r\nok"], BAD,
         "HTTP/1.1 99: 502."),
    Case("status_four_digits",
         [b"HTTP/1.1 1000 Odd\r\nContent-Length: 2\r\n\r\nok"], BAD,
         "HTTP/1.1 1000: 502 (not read as 100 and a reason '0 Odd')."),
    Case("status_600",
         [b"HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok"], BAD,
         "HTTP/1.1 600 (RFC 9110 15: outside 100..599): 502."),
    Case("status_no_reason",
         [b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"], Proxied(200, b"ok"),
         "'HTTP/1.1 200' without SP and reason: accepted, the standard phrase "
         "is sent.", reuse_ok=True),
    Case("status_empty_reason",
         [b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok"], Proxied(200, b"ok"),
         "'HTTP/1.1 200 ' (empty reason): accepted.", reuse_ok=True),
    Case("status_double_space",
         [b"HTTP/1.1  200 OK\r\nContent-Length: 2\r\n\r\nok"], BAD,
         "Two spaces before the status code: 502."),
    Case("status_http2",
         [b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok"], BAD,
         "HTTP/2.0 in an HTTP/1.1 status line: 502."),
    Case("status_http2_short",
         [b"HTTP/2 200\r\ncontent-length: 2\r\n\r\nok"], BAD,
         "HTTP/2 200 (the HTTP/2 text form): 502."),
    Case("status_lowercase_http",
         [b"http/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"], BAD,
         "http/1.1 (HTTP-name is case-sensitive, RFC 9112 2.3): 502."),
    Case("status_leading_crlf",
         [b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"], BAD,
         "An empty line before the status line: 502."),
    Case("http09_body_only",
         [b"<html>hello</html>\n", CLOSE], BAD,
         "An HTTP/0.9-style answer (a body, no status line): 502."),
    # ----- not HTTP/1.x at all -------------------------------------------
    Case("garbage",
         [b"\x8f\x03zq\xff\x00\x10GARBAGE\r\n\r\n"], BAD,
         "Binary garbage instead of a response: 502."),
    Case("http2_settings_frame",
         [b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64"], BAD,
         "An HTTP/2 SETTINGS frame (what an h2-only server sends first): 502."),
    Case("http2_preface",
         [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"], BAD,
         "The HTTP/2 connection preface as an answer: 502."),
    Case("tls_alert",
         [b"\x15\x03\x01\x00\x02\x02\x46"], BAD,
         "A TLS alert record (a TLS-only server on a plain connection): 502."),
]


# ---------------------------------------------------------------------------
# the tests

def framing_is_sound(tc, r):
    """Whatever the upstream said, the client never gets ambiguous framing."""
    cls = r.header_all("Content-Length")
    tes = r.header_all("Transfer-Encoding")
    tc.assertLessEqual(len(cls), 1, "several Content-Length: %s" % r.describe())
    tc.assertFalse(cls and tes, "Content-Length with Transfer-Encoding: %s" % r.describe())
    tc.assertIn(tes, ([], ["chunked"]), r.describe())
    for hop in ("Upgrade", "Keep-Alive", "Trailer", "TE", "Proxy-Connection"):
        tc.assertEqual(r.header_all(hop), [], "%s leaked: %s" % (hop, r.describe()))
    tc.assertIsNone(r.header("X-Smuggled"), "smuggled answer reached the client")


class MalformedUpstreamTests(GatewayTestCase):
    """One gateway, one HostileUpstream; one test per CASES entry (added
    below the class)."""

    maxDiff = 4000
    gw = None

    @classmethod
    def setUpClass(cls):
        cls.stub = HostileUpstream()
        upstreams = {"ping": upstream(cls.stub.address)}
        routes = [route("ping", "ping", path_prefix="/ping/", timeout=ROUTE_TIMEOUT)]
        for case in CASES:
            cls.stub.script("/c/%s/bad" % case.name, case.steps)
            upstreams["u_" + case.name] = upstream(cls.stub.address)
            opts = {"timeout": ROUTE_TIMEOUT}
            opts.update(case.route_opts)
            routes.append(route("r_" + case.name, "u_" + case.name,
                                path_prefix="/c/%s/" % case.name, **opts))
        cls.config = (upstreams, routes)
        cls.start_gateway()

    @classmethod
    def start_gateway(cls):
        port = free_port()
        cls.gw = Gateway(make_config(port, cls.config[0], cls.config[1], access_log="off"), port)
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        """The gateway drains and exits 0, with no sanitizer report (under an
        ASan/UBSan build a leak or a runtime error shows here)."""
        cls.stub.stop()
        if not cls.gw:
            return
        rc = cls.gw.stop()
        reports = [l for l in cls.gw.stderr_lines()
                   if "runtime error:" in l or "Sanitizer" in l]
        if rc != 0 or reports:
            raise AssertionError("the gateway exited with %s after the malformed-upstream cases;"
                                 " stderr tail:\n%s" % (rc, cls.gw.stderr_text(80)))

    def setUp(self):
        # A gateway that died in an earlier case (reported there) is
        # restarted, so that every case is judged on its own.
        if not self.gw.alive():
            self.gw.stop()
            type(self).start_gateway()

    def client(self):
        c = Conn(self.gw.port, timeout=READ_TIMEOUT)
        self.addCleanup(c.close)
        return c

    def assertAlive(self, what):
        if not self.gw.alive():
            self.fail("the gateway died %s (exit status %s); stderr tail:\n%s"
                      % (what, self.gw.proc.poll(), self.gw.stderr_text(60)))

    def read_bad_answer(self, case, conn):
        """Reads what the client gets for /c/NAME/bad and checks it against
        case.expect. Returns the Response."""
        path = "/c/%s/bad" % case.name
        exp = case.expect
        deadline = time.monotonic() + READ_TIMEOUT
        if isinstance(exp, Cut):
            r = conn._read_head(deadline)
            self.assertEqual(r.status, exp.status, r.describe())
            self.assertIsNone(r.header("X-Gateway-Error"), r.describe())
            framing_is_sound(self, r)
            self.stub.open_gates(path)
            try:
                conn._read_body(r, deadline, case.method == "HEAD", True, 1 << 20)
            except (ConnectionClosed, ProtocolError):
                pass
            else:
                if r.framing != "close" or not conn.reset:
                    self.fail("a broken-off upstream body reached the client as a complete"
                              " message (%s framing%s): %s"
                              % (r.framing, ", FIN" if r.framing == "close" else "",
                                 r.describe()))
            closed, extra = conn.wait_closed(2.0)
            self.assertTrue(closed, "client connection left open after the cut reply")
            return r
        try:
            r = conn.read_response(timeout=READ_TIMEOUT, head=(case.method == "HEAD"))
        except (ConnectionClosed, ProtocolError) as e:
            self.fail("no proper answer to the client: %s" % e)
        if isinstance(exp, Error):
            self.assertGatewayError(r, exp.status, exp.code)
        else:
            self.assertEqual(r.status, exp.status, r.describe())
            self.assertIsNone(r.header("X-Gateway-Error"), r.describe())
            if exp.body is not None:
                self.assertEqual(r.body, exp.body, r.describe())
        framing_is_sound(self, r)
        if case.check:
            case.check(self, r)
        self.stub.open_gates(path)
        return r

    def run_case(self, case):
        bad, nxt = "/c/%s/bad" % case.name, "/c/%s/next" % case.name
        self.addCleanup(self.stub.open_gates, bad)  # never leave the stub waiting
        conn = self.client()
        if case.warm:
            warm = "/c/%s/warm" % case.name
            conn.request("GET", warm)
            r0 = conn.read_response(timeout=READ_TIMEOUT)
            self.assertEqual((r0.status, r0.body), (200, GOOD_PREFIX + warm.encode()),
                             r0.describe())
        started = time.monotonic()
        conn.request(case.method, bad, version=case.version)
        r = self.read_bad_answer(case, conn)
        took = time.monotonic() - started
        if case.expect == Error(504, "upstream_timeout"):
            self.assertLess(took, ENDLESS_ROUTE_TIMEOUT_S + 2.0, "the 504 came late")
        self.assertAlive("answering %s" % bad)

        # (2) the connection that carried the bad answer is not reused
        bad_conn = self.stub.wait_request(bad)
        self.assertEqual(len(self.stub.conns_of(bad)), 1,
                         "the bad request reached the upstream more than once")
        if case.warm:
            self.assertEqual(bad_conn, self.stub.wait_request(warm),
                             "the bad answer was meant to come on a reused connection")
        if not case.reuse_ok:
            who = self.stub.wait_ended(bad_conn, CLOSE_WAIT)
            self.assertIsNotNone(who, "the gateway kept upstream connection %d open %.0fs after"
                                 " a bad answer" % (bad_conn, CLOSE_WAIT))
        if conn.eof or (r.header("Connection") or "").lower() == "close" or \
                case.version == "HTTP/1.0":
            conn = self.client()
        conn.request("GET", nxt)
        try:
            r2 = conn.read_response(timeout=READ_TIMEOUT)
        except (ConnectionClosed, ProtocolError) as e:
            self.fail("the request after the bad answer failed: %s" % e)
        self.assertEqual((r2.status, r2.body), (200, GOOD_PREFIX + nxt.encode()),
                         "the answer after the bad one is not its own: %s" % r2.describe())
        framing_is_sound(self, r2)
        if not case.reuse_ok:
            self.assertNotEqual(self.stub.wait_request(nxt), bad_conn,
                                "upstream connection %d reused after a bad answer" % bad_conn)

        # (3) alive, and an ordinary request is served
        self.assertAlive("after %s" % case.name)
        ping = "/ping/" + case.name
        r3 = fetch(self.gw.port, "GET", ping, timeout=READ_TIMEOUT)
        self.assertEqual((r3.status, r3.body), (200, GOOD_PREFIX + ping.encode()), r3.describe())
        self.assertEqual(self.stub.errors.get(bad, []), [])


def _make_test(case):
    def test(self):
        self.run_case(case)
    test.__name__ = "test_" + case.name
    test.__doc__ = case.doc
    if case.defect:
        test = unittest.expectedFailure(test)
    return test


for _case in CASES:
    assert not hasattr(MalformedUpstreamTests, "test_" + _case.name), _case.name
    setattr(MalformedUpstreamTests, "test_" + _case.name, _make_test(_case))
del _case

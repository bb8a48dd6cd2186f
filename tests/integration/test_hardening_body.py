"""Hardening (issue 11): memory a client or an upstream controls with bodies.

- Request bodies are buffered whole (evhttp reads them before the gateway
  sees the request): limits.max_buffered_body_bytes bounds the bodies held
  in the whole process. Past it, new bodies get 503 `shed` with Retry-After
  before a byte of them is read; the budget comes back when a request ends
  or its connection closes.
- A response of unknown length (no Content-Length, not chunked: read until
  the upstream closes) to an HTTP/1.0 client streams with backpressure and
  the connection closes at its end; cut off by the upstream, it is reset.
"""

import select
import socket
import struct
import threading
import time

from gwtest import (MEMORY_BOUNDS_APPLY, ConnectionClosed, GatewayTestCase, generated_sha256,
                    poll_until)
from stub_upstream import body_piece

KIB = 1 << 10
MIB = 1 << 20


def post_head(size, path="/up", chunked=False, version="HTTP/1.1"):
    framing = "Transfer-Encoding: chunked" if chunked else "Content-Length: %d" % size
    return ("POST %s %s\r\nHost: gw.test\r\n%s\r\n\r\n" % (path, version, framing)).encode()


def answered(conns, timeout):
    """The connections of conns with bytes to read within timeout seconds."""
    deadline = time.monotonic() + timeout
    got = set()
    while time.monotonic() < deadline:
        left = [c for c in conns if c not in got]
        if not left:
            break
        ready, _, _ = select.select([c.sock for c in left], [], [], 0.05)
        got |= {c for c in left if c.sock in ready}
    return got


class BodyBudgetTests(GatewayTestCase):
    """limits.max_buffered_body_bytes (gateway/body_budget.h)."""

    BODY = 2 * MIB
    BUDGET = 8 * MIB

    def start(self, workers=2, **limits):
        self.stub = self.start_stub("body", "echo")
        self.stub.set_path("/slow", "echo", delay=1.5)
        lim = {"max_body_bytes": "2m", "max_buffered_body_bytes": "8m"}
        lim.update(limits)
        self.gw = self.simple_gateway(self.stub, route_opts={"timeout": "20s"}, workers=workers,
                                      limits=lim)
        return self.gw

    def assertShed(self, r):
        self.assertGatewayError(r, 503, "shed")
        retry = r.header("Retry-After")
        self.assertTrue(retry is not None and retry.isdigit() and int(retry) >= 1,
                        "Retry-After of a shed answer: %r" % retry)
        self.assertEqual((r.header("Connection") or "").lower(), "close", r.describe())

    def upload_ok(self, size=None, timeout=10):
        size = self.BODY if size is None else size
        body = body_piece(0, size)
        r = self.fetch(self.gw, "POST", "/up", body=body, timeout=timeout)
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["body_len"], size)
        self.assertEqual(r.json()["body_sha256"], generated_sha256(size))

    def test_bodies_past_the_budget_are_shed_and_memory_stays_bounded(self):
        """24 clients (two workers) start 2 MiB uploads at once against an 8 MiB
        budget and send all but the last byte, in turns: 4 are read, 20 get
        503 shed with Retry-After at once (their bodies never read), the
        gateway's VmHWM grows by less than the budget + 16 MiB (it would
        hold 48 MiB unbounded); the 4 complete intact, and uploads work
        again afterwards."""
        gw = self.start()
        self.upload_ok(64 * KIB)  # warm up both the gateway and the stub
        hwm0 = gw.vm_hwm_kib()
        n = 24
        conns = [self.connect(gw, timeout=20) for _ in range(n)]
        for c in conns:
            c.send(post_head(self.BODY))
        want_shed = n - self.BUDGET // self.BODY
        shed = set()

        def all_shed():
            shed.update(answered(conns, 0.05))
            return len(shed) >= want_shed

        poll_until(all_shed, 3.0)
        shed.update(answered(conns, 0.2))  # and no more than those
        self.assertEqual(len(shed), want_shed,
                         "%d of %d uploads answered before their body, %d expected"
                         % (len(shed), n, want_shed))
        for c in shed:
            self.assertShed(c.read_response(timeout=5))
        admitted = [c for c in conns if c not in shed]
        piece = 256 * KIB
        for off in range(0, self.BODY - 1, piece):
            for c in admitted:
                c.send(body_piece(off, min(piece, self.BODY - 1 - off)))
        # all but one byte of each admitted body is on its way to the
        # gateway: give it a moment to read them (less if the bound breaks)
        bound_kib = (self.BUDGET + 16 * MIB) // KIB
        poll_until(lambda: gw.vm_hwm_kib() - hwm0 >= bound_kib, 0.5)
        grew = gw.vm_hwm_kib() - hwm0
        if MEMORY_BOUNDS_APPLY:
            self.assertLess(grew, bound_kib,
                            "VmHWM grew by %d KiB while %d bodies of %d bytes were sent (budget %d)"
                            % (grew, n, self.BODY, self.BUDGET))
        for c in admitted:
            c.send(body_piece(self.BODY - 1, 1))
        for c in admitted:
            r = c.read_response(timeout=10)
            self.assertStatus(r, 200)
            self.assertEqual(r.json()["body_sha256"], generated_sha256(self.BODY))
        # the budget is back: full-size uploads and bodiless requests go through
        for _ in range(5):
            self.upload_ok()
        self.assertStatus(self.fetch(gw, "GET", "/after"), 200)
        self.assertTrue(gw.wait_stderr(r"limits\.max_buffered_body_bytes 8388608: a 2097152-byte"
                                       r" body is shed", 1.0), gw.stderr_text())
        recs = [r for r in gw.access_records(n + 7) if r.get("error") == "shed"]
        self.assertEqual(len(recs), want_shed, "access log entries of shed uploads")
        self.assertTrue(all(r["status"] == 503 for r in recs), recs)

    def test_requests_without_a_body_are_never_shed_by_it(self):
        """With the budget spent, GETs (and an empty POST) still go through."""
        gw = self.start(workers=1)
        holders = [self.connect(gw, timeout=10) for _ in range(4)]
        for c in holders:
            c.send(post_head(self.BODY))
        c5 = self.connect(gw)
        c5.send(post_head(10))
        self.assertShed(c5.read_response())
        self.assertStatus(self.fetch(gw, "GET", "/x"), 200)
        self.assertStatus(self.fetch(gw, "POST", "/x", body=b""), 200)
        for c in holders:
            c.send(body_piece(0, self.BODY))
            self.assertStatus(c.read_response(timeout=10), 200)

    def test_chunked_body_counts_max_body_bytes_until_it_is_whole(self):
        """A chunked body takes max_body_bytes of the budget while it is read
        (its length is unknown), then only its real length once whole: four
        open chunked uploads fill the 8 MiB budget (a fifth body is shed);
        when one of them ends with 5 bytes and waits for its upstream, a 1
        MiB upload fits again."""
        gw = self.start(workers=1)
        chunked = [self.connect(gw, timeout=10) for _ in range(4)]
        for i, c in enumerate(chunked):
            c.send(post_head(0, path="/slow" if i == 0 else "/up", chunked=True))
            c.send(b"3\r\nabc\r\n")
        extra = self.connect(gw)
        extra.send(post_head(10))
        self.assertShed(extra.read_response())
        chunked[0].send(b"2\r\nde\r\n0\r\n\r\n")  # whole: 5 bytes, waits 1.5 s upstream
        self.assertEqual(len(self.stub.wait_requests(1, 2.0)), 1, "the slow request never came")
        t0 = time.monotonic()
        self.upload_ok(1 * MIB)  # 3 x 2 MiB + 5 bytes + 1 MiB <= 8 MiB
        self.assertLess(time.monotonic() - t0, 1.2, "the upload waited for the slow request")
        r = chunked[0].read_response(timeout=5)
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["body_len"], 5)
        for c in chunked[1:]:
            c.send(b"0\r\n\r\n")
            r = c.read_response(timeout=5)
            self.assertStatus(r, 200)
            self.assertEqual(r.json()["body_len"], 3)

    def test_budget_comes_back_when_uploads_are_abandoned_or_time_out(self):
        """Uploads that fill the budget and then die give it back: clients
        that close mid-body, and clients that stall past body_timeout (408)."""
        gw = self.start(workers=1, body_timeout="1s")
        for _ in range(2):  # abandoned, twice over: nothing leaks
            conns = [self.connect(gw) for _ in range(4)]
            for c in conns:
                c.send(post_head(self.BODY) + body_piece(0, 100 * KIB))
            probe = self.connect(gw)
            probe.send(post_head(10))
            self.assertShed(probe.read_response())
            for c in conns:
                c.close()
            self.assertTrue(poll_until(lambda: self.try_upload_ok(), 3.0),
                            "the budget did not come back after the clients closed")
        stalled = [self.connect(gw) for _ in range(4)]
        for c in stalled:
            c.send(post_head(self.BODY) + body_piece(0, 100 * KIB))
        for c in stalled:
            self.assertGatewayError(c.read_response(timeout=3), 408, "request_timeout")
        self.upload_ok()

    def try_upload_ok(self):
        """True when a full-size upload is served (False when shed: the
        gateway may reset a refused upload while its body is sent)."""
        c = self.connect(self.gw, timeout=10)
        c.send(post_head(self.BODY))
        if answered([c], 0.3):
            self.assertShed(c.read_response())
            return False
        c.send(body_piece(0, self.BODY))
        r = c.read_response(timeout=10)
        self.assertStatus(r, 200)
        return True


class CloseDelimitedUpstream:
    """An upstream that answers every request with a 200 whose body has no
    length (no Content-Length, not chunked) and ends when it closes: size
    generated bytes, sent in pieces after a pause (so the gateway sees the
    head before the body), or cut off by a reset after cut_after bytes."""

    def __init__(self, size, piece=256 * KIB, pause=0.05, cut_after=None):
        self.size, self.piece, self.pause, self.cut_after = size, piece, pause, cut_after
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.address = "127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                sock, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock):
        try:
            sock.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head:
                data = sock.recv(65536)
                if not data:
                    return
                head += data
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
            time.sleep(self.pause)
            end = self.size if self.cut_after is None else self.cut_after
            off = 0
            while off < end:
                n = min(self.piece, end - off)
                sock.sendall(body_piece(off, n))
                off += n
            if self.cut_after is not None:
                time.sleep(0.2)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        finally:
            sock.close()

    def close(self):
        self.stopping = True
        self.lsock.close()


class Http10CloseDelimitedTests(GatewayTestCase):
    def start_upstream(self, *args, **kw):
        up = CloseDelimitedUpstream(*args, **kw)
        self.addCleanup(up.close)
        return up

    def gateway(self, up):
        return self.simple_gateway(up.address, route_opts={"timeout": "20s"})

    def test_100_mib_body_streams_to_an_http10_client_in_bounded_memory(self):
        """100 MiB of unknown length reach an HTTP/1.0 client whole (sha256),
        without Content-Length or chunked coding, with Connection: close, and
        the connection closes at its end; the client reads slowly at first
        and the gateway's VmHWM grows by less than 32 MiB (it used to hold
        such a body whole, and gave up at 64 MiB)."""
        size = 100 * MIB
        up = self.start_upstream(size, piece=1 * MIB)
        gw = self.gateway(up)
        hwm0 = gw.vm_hwm_kib()
        c = self.connect(gw, timeout=60)
        c.send(b"GET /big HTTP/1.0\r\nHost: gw.test\r\n\r\n")
        self.assertTrue(c._fill(time.monotonic() + 10, "response head"))
        time.sleep(0.5)  # deliberate slow reader, not a wait for a condition
        r = c.read_response(timeout=60, store=False)
        self.assertStatus(r, 200)
        self.assertEqual(r.framing, "close", r.describe())
        self.assertEqual(r.header_all("Content-Length") + r.header_all("Transfer-Encoding"), [])
        self.assertEqual((r.header("Connection") or "").lower(), "close")
        self.assertFalse(c.reset, "the body ended with a reset")
        self.assertEqual(r.body_len, size)
        self.assertEqual(r.body_sha256, generated_sha256(size))
        grew = gw.vm_hwm_kib() - hwm0
        self.assertLess(grew, 32 * 1024, "VmHWM grew by %d KiB over a 100 MiB body" % grew)
        rec = gw.access_records(1)[-1]
        self.assertEqual((rec["status"], rec["bytes"]), (200, size), rec)

    def test_keepalive_http10_client_gets_connection_close(self):
        """An HTTP/1.0 client that asked for keep-alive gets Connection: close
        with a body of unknown length, and the connection closes after it;
        with a Content-Length answer its connection stays open."""
        up = self.start_upstream(300 * KIB)
        gw = self.gateway(up)
        c = self.connect(gw)
        c.send(b"GET /a HTTP/1.0\r\nHost: gw.test\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response(timeout=10)
        self.assertStatus(r, 200)
        self.assertEqual(r.framing, "close", r.describe())
        self.assertEqual((r.header("Connection") or "").lower(), "close", r.describe())
        self.assertEqual(r.body, body_piece(0, 300 * KIB))
        self.assertTrue(c.eof and not c.reset, "closed by a reset")

        stub = self.start_stub("cl", "hello")
        gw2 = self.simple_gateway(stub)
        c2 = self.connect(gw2)
        for i in range(2):
            c2.send(b"GET /k%d HTTP/1.0\r\nHost: gw.test\r\nConnection: keep-alive\r\n\r\n" % i)
            r = c2.read_response()
            self.assertStatus(r, 200)
            self.assertEqual(r.framing, "length")
            self.assertEqual((r.header("Connection") or "").lower(), "keep-alive", r.describe())

    def test_chunked_upstream_body_streams_close_delimited_to_http10(self):
        """A chunked upstream body of 3 MiB reaches an HTTP/1.0 client
        de-chunked, close-delimited, whole."""
        size = 3 * MIB
        stub = self.start_stub("chunked", "size", size=size, chunked=True, piece=100 * KIB)
        gw = self.simple_gateway(stub)
        c = self.connect(gw, timeout=20)
        c.send(b"GET /c HTTP/1.0\r\nHost: gw.test\r\n\r\n")
        r = c.read_response(timeout=20, store=False)
        self.assertStatus(r, 200)
        self.assertEqual(r.framing, "close", r.describe())
        self.assertEqual((r.body_len, r.body_sha256), (size, generated_sha256(size)))
        self.assertTrue(c.eof and not c.reset, "closed by a reset")

    def test_http11_client_still_gets_it_chunked(self):
        """An HTTP/1.1 client gets the same body chunked, on a kept connection."""
        up = self.start_upstream(300 * KIB)
        gw = self.gateway(up)
        c = self.connect(gw)
        for i in range(2):
            c.send(b"GET /c%d HTTP/1.1\r\nHost: gw.test\r\n\r\n" % i)
            r = c.read_response(timeout=10)
            self.assertStatus(r, 200)
            self.assertEqual(r.framing, "chunked")
            self.assertEqual(r.body, body_piece(0, 300 * KIB))

    def test_body_cut_by_the_upstream_resets_the_http10_client(self):
        """A close-delimited body the upstream cuts off (reset) is not passed
        off as whole: the HTTP/1.0 client's connection is reset, not closed."""
        up = self.start_upstream(1 * MIB, piece=64 * KIB, cut_after=128 * KIB)
        gw = self.gateway(up)
        c = self.connect(gw, timeout=10)
        c.send(b"GET /cut HTTP/1.0\r\nHost: gw.test\r\n\r\n")
        try:
            r = c.read_response(timeout=10, store=False)
        except ConnectionClosed as e:
            self.fail("no response head before the connection ended: %s" % e)
        self.assertStatus(r, 200)
        self.assertEqual(r.framing, "close")
        self.assertLessEqual(r.body_len, 128 * KIB)
        self.assertTrue(c.reset, "a cut close-delimited body ended with a clean close"
                        " (%d bytes): the client takes it as whole" % r.body_len)
        rec = gw.access_records(1)[-1]
        self.assertEqual(rec["error"], "upstream_unavailable", rec)

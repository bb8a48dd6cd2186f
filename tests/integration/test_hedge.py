"""Hedged requests (route `retry.hedge`, README "Hedged requests").

A try with no response head `after` its start is sent to the other server
as well; the first usable head answers, the other try's connection is
closed. Two servers, round robin, and the config of the brief:

    retry: {attempts: 3, per_try_timeout: 5s, hedge: {after: 50ms}}
    timeout: 10s

Every server is a real socket on loopback: a stub (tests/stubs), or a
MuteServer that accepts connections and reads requests but never answers
(what a SIGSTOPped server looks like to the gateway, with counts). Bounds
on response times are functional (a hedge answered, not the 2 s or 5 s the
slow try would have taken), never tight timing. Every wait is a poll with a
deadline.
"""

import socket
import threading
import time

from admintest import AdminTestCase
from gwtest import generated_sha256, poll_until, route, upstream

ROUTE_TIMEOUT = "10s"
# A hedge answers in about `after` + a healthy server's latency (~50 ms);
# an unhedged try to a dead server would take per_try_timeout (5 s).
HEDGED_BOUND = 2.0


def hedge_retry(**over):
    conf = {"attempts": 3, "per_try_timeout": "5s", "hedge": {"after": "50ms"}}
    conf.update(over)
    return conf


class MuteServer:
    """Accepts TCP connections and reads whatever comes, never writes a
    byte: connects succeed, requests vanish. Counts connections, request
    heads and the connections the peer closed."""

    def __init__(self):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self._lock = threading.Lock()
        self._conns = []
        self._heads = 0
        self._closed = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self):
        while True:
            try:
                sock, _ = self.lsock.accept()
            except OSError:
                return
            with self._lock:
                if self._stopping:
                    sock.close()
                    return
                self._conns.append(sock)
            threading.Thread(target=self._read, args=(sock,), daemon=True).start()

    def _read(self, sock):
        buf = b""
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                with self._lock:
                    self._closed += 1
                return
            buf += data
            n = buf.count(b"\r\n\r\n")
            if n:
                buf = buf[buf.rfind(b"\r\n\r\n") + 4:]
                with self._lock:
                    self._heads += n

    @property
    def connections(self):
        with self._lock:
            return len(self._conns)

    @property
    def requests(self):
        """Request heads received (the gateway's GETs carry no body)."""
        with self._lock:
            return self._heads

    @property
    def peer_closes(self):
        with self._lock:
            return self._closed

    def close(self):
        with self._lock:
            self._stopping = True
            conns = list(self._conns)
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        for s in conns:
            try:
                s.close()
            except OSError:
                pass
        self._thread.join(2)


class HedgeTestCase(AdminTestCase):
    def mute_server(self):
        m = MuteServer()
        self.addCleanup(m.close)
        return m

    def hedge_gateway(self, servers, retry=None, upstream_opts=None, path_prefix="/"):
        """One upstream u (round robin) of servers, one route r."""
        return self.start_admin_gateway(
            {"u": upstream(*servers, balance="round_robin", **(upstream_opts or {}))},
            [route("r", "u", path_prefix=path_prefix, timeout=ROUTE_TIMEOUT,
                   retry=retry or hedge_retry())])

    def hedges(self, gw):
        """gateway_hedges_total{route="r"}, checked against /status."""
        m = self.metrics(gw).value("gateway_hedges_total", route="r")
        self.assertIsNotNone(m, "no gateway_hedges_total{route=\"r\"} in /metrics")
        st = self.route_status(gw, "r")
        self.assertIn("hedges", st, "/status routes[] has no hedges: %r" % st)
        self.assertEqual(int(m), st["hedges"], "/metrics and /status disagree on hedges")
        return int(m)

    def budget_exhausted(self, gw):
        v = self.metrics(gw).value("gateway_retry_budget_exhausted_total", route="r")
        self.assertIsNotNone(v, "no gateway_retry_budget_exhausted_total{route=\"r\"}")
        return int(v)

    def timed_fetch(self, gw, method, path, headers=(), body=None, timeout=8.0):
        t0 = time.monotonic()
        r = self.fetch(gw, method, path, headers, body, timeout=timeout)
        return r, time.monotonic() - t0

    def records_by_path(self, gw, n, prefix, lines=None):
        """The access log records of the n requests to prefix*, by path,
        once the log has `lines` lines (default n)."""
        recs = [r for r in gw.access_records(lines or n, timeout=5.0)
                if r.get("path", "").startswith(prefix)]
        if len(recs) < n:
            self.fail("%d access log records for %s*, expected %d; stdout:\n%s"
                      % (len(recs), prefix, n, "\n".join(gw.stdout_lines()[-20:])))
        return {r["path"]: r for r in recs}

    def assert_hedged_requests(self, gw, healthy, n, prefix, dead_requests):
        """After n GETs to prefix%d, each answered by healthy: hedges_total
        is the number of requests logged with 2 tries, about half of them,
        each answered by healthy; dead_requests() (the requests the dead or
        slow server received) equals the hedges."""
        recs = self.records_by_path(gw, n, prefix)
        hedged = sorted(p for p, r in recs.items() if r["tries"] == 2)
        for p, r in sorted(recs.items()):
            self.assertEqual((r["status"], r["server"]), (200, healthy.address),
                             "access log record %r" % r)
            self.assertIn(r["tries"], (1, 2), "access log record %r" % r)
        total = self.hedges(gw)
        self.assertEqual(total, len(hedged),
                         "gateway_hedges_total %d, but %d requests were logged with 2 tries"
                         % (total, len(hedged)))
        self.assertTrue(n * 0.3 <= len(hedged) <= n * 0.7,
                        "%d of %d requests hedged; round robin over two servers should send"
                        " about half of the first tries to the dead one" % (len(hedged), n))
        self.assertEqual(dead_requests(), total,
                         "the dead server received %d requests; every one of them (and only"
                         " they) should have been hedged (%d hedges)" % (dead_requests(), total))
        self.assertEqual(len(healthy.app_requests), n,
                         "the healthy server should answer each request exactly once")
        return hedged


class HedgeBasicsTests(HedgeTestCase):
    def test_black_holed_server_is_hedged(self):
        """One server accepts and never answers: all 20 GETs answer 200
        well before per_try_timeout; the ones whose first try went to the
        dead server show 2 tries and the healthy server in the access log,
        and the gateway closes every connection it lost to the dead one."""
        mute = self.mute_server()
        fast = self.start_stub("fast", "echo")
        gw = self.hedge_gateway([mute.address, fast])
        for i in range(20):
            r, took = self.timed_fetch(gw, "GET", "/bh/%d" % i)
            self.assertStatus(r, 200, "request %d" % i)
            self.assertEqual(r.json()["server"], "fast")
            self.assertLess(took, HEDGED_BOUND, "request %d took %.2fs: not hedged" % (i, took))
        self.assert_hedged_requests(gw, fast, 20, "/bh/", lambda: mute.requests)
        self.assertEqual(mute.connections, mute.requests,
                         "a connection to the dead server was reused after losing a race")
        self.assertTrue(poll_until(lambda: mute.peer_closes == mute.connections, 3.0),
                        "the gateway closed %d of the %d connections it lost to the dead server"
                        % (mute.peer_closes, mute.connections))

    def test_two_second_slow_server_is_hedged(self):
        """One server answers after 2 s: every GET is answered by the other
        within a fraction of that, the slow server's try is abandoned (its
        connection closed during the delay)."""
        slow = self.start_stub("slow", "echo", delay=2.0)
        fast = self.start_stub("fast", "echo")
        gw = self.hedge_gateway([slow, fast])
        for i in range(20):
            r, took = self.timed_fetch(gw, "GET", "/slow/%d" % i)
            self.assertStatus(r, 200, "request %d" % i)
            self.assertEqual(r.json()["server"], "fast")
            self.assertLess(took, 1.5, "request %d took %.2fs: the slow server answered it"
                            % (i, took))
        self.assert_hedged_requests(gw, fast, 20, "/slow/", lambda: len(slow.app_requests))
        n = len(slow.app_requests)
        closed = poll_until(lambda: len([c for c in slow.peer_closes if c[2]]) >= n, 3.0)
        self.assertTrue(closed, "the gateway closed %d of the %d connections it lost to the"
                        " slow server before its answer: %r" % (
                            len([c for c in slow.peer_closes if c[2]]), n, slow.peer_closes))

    def test_failed_try_lets_the_running_hedge_carry_on(self):
        """One server waits 300 ms and then closes without an answer, the
        other answers after 600 ms. Whichever gets the first try, the hedge
        is the retry: each request makes exactly 2 tries (no third one, with
        attempts 3) and is answered 200 by the good server."""
        bad = self.start_stub("bad", "close", delay=0.3)
        good = self.start_stub("good", "echo", delay=0.6)
        gw = self.hedge_gateway([bad, good])
        for i in range(2):
            r, took = self.timed_fetch(gw, "GET", "/carry/%d" % i)
            self.assertStatus(r, 200, "request %d" % i)
            self.assertEqual(r.json()["server"], "good")
            self.assertLess(took, HEDGED_BOUND)
        recs = self.records_by_path(gw, 2, "/carry/")
        self.assertEqual(sorted(r["tries"] for r in recs.values()), [2, 2], recs)
        self.assertEqual((len(bad.app_requests), len(good.app_requests)), (2, 2),
                         "each request should reach each server exactly once (the hedge"
                         " replaces the retry)")
        self.assertEqual(self.hedges(gw), 2)


class HedgeMethodTests(HedgeTestCase):
    def test_post_without_idempotency_key_is_never_hedged(self):
        """Both servers 2 s slow: a POST (and a PATCH) without
        Idempotency-Key waits for its one try (200 after ~2 s), nothing
        reaches the other server. A POST with the key to a 2 s server and a
        300 ms server is hedged: both receive it, with its key and body, and
        it is answered in well under 2 s."""
        a = self.start_stub("a", "echo", delay=2.0)
        b = self.start_stub("b", "echo", delay=2.0)
        gw = self.hedge_gateway([a, b])
        for i, method in enumerate(("POST", "PATCH")):
            before = len(a.app_requests) + len(b.app_requests)
            r, took = self.timed_fetch(gw, method, "/pay/%d" % i, body=b"amount=5")
            self.assertStatus(r, 200, method)
            self.assertGreaterEqual(took, 1.9, "%s answered in %.2fs by a 2 s server" % (method, took))
            self.assertEqual(len(a.app_requests) + len(b.app_requests), before + 1,
                             "the %s without Idempotency-Key reached a second server" % method)
            self.assertEqual(self.hedges(gw), 0, "%s without Idempotency-Key hedged" % method)
        recs = self.records_by_path(gw, 2, "/pay/")
        self.assertEqual([r["tries"] for _, r in sorted(recs.items())], [1, 1])

        b.set("echo", delay=0.3)
        r, took = self.timed_fetch(gw, "POST", "/pay/key", headers=[("Idempotency-Key", "k-42")],
                                   body=b"amount=7")
        self.assertStatus(r, 200)
        self.assertLess(took, 1.5, "the POST with Idempotency-Key was not hedged (%.2fs)" % took)
        self.assertEqual(r.json()["server"], "b")
        self.assertEqual(self.hedges(gw), 1)
        for s in (a, b):
            got = [q for q in s.app_requests if q.path == "/pay/key"]
            self.assertEqual(len(got), 1, "server %s received the keyed POST %d times"
                             % (s.name, len(got)))
            self.assertEqual((got[0].method, got[0].header("Idempotency-Key"), got[0].body),
                             ("POST", "k-42", b"amount=7"))
        self.assertEqual(self.records_by_path(gw, 3, "/pay/")["/pay/key"]["tries"], 2)


class HedgeBudgetTests(HedgeTestCase):
    def test_empty_budget_means_no_hedge(self):
        """budget {ratio: 0, min_per_second: 0}: nothing is hedged; requests
        whose try went to the 1 s server wait for it, and each refused hedge
        counts in gateway_retry_budget_exhausted_total."""
        slow = self.start_stub("slow", "echo", delay=1.0)
        fast = self.start_stub("fast", "echo")
        gw = self.hedge_gateway([slow, fast], retry=hedge_retry(
            budget={"ratio": 0, "min_per_second": 0}))
        slow_served = 0
        for i in range(4):
            r, took = self.timed_fetch(gw, "GET", "/budget/%d" % i)
            self.assertStatus(r, 200, "request %d" % i)
            if r.json()["server"] == "slow":
                slow_served += 1
                self.assertGreaterEqual(took, 0.95, "the slow server answered in %.2fs" % took)
        self.assertGreaterEqual(slow_served, 1, "no request went to the slow server")
        self.assertEqual(self.hedges(gw), 0, "hedged with an empty retry budget")
        self.assertEqual(self.budget_exhausted(gw), slow_served,
                         "one refused hedge per request stuck on the slow server")
        self.assertEqual(len(slow.app_requests) + len(fast.app_requests), 4,
                         "a hedge reached a server")
        recs = self.records_by_path(gw, 4, "/budget/")
        self.assertEqual(sorted(r["tries"] for r in recs.values()), [1, 1, 1, 1])


class HedgeLoserTests(HedgeTestCase):
    def test_losing_try_connection_is_closed(self):
        """The current try to a 30 s server loses to the hedge: the gateway
        closes that connection (the stub sees the close during its delay)
        right after the answer, and never reuses it."""
        slow = self.start_stub("slow", "echo", delay=30)
        fast = self.start_stub("fast", "echo")
        gw = self.hedge_gateway([slow, fast])
        for i in range(4):
            r, took = self.timed_fetch(gw, "GET", "/lose/%d" % i)
            self.assertStatus(r, 200)
            self.assertLess(took, HEDGED_BOUND)
            if slow.app_requests:
                break
        self.assertEqual(len(slow.app_requests), 1, "no request went to the slow server")
        answered = time.monotonic()
        entry = slow.wait_peer_close(conn_id=slow.app_requests[0].conn_id, timeout=3.0)
        self.assertIsNotNone(entry, "the gateway kept the losing connection to the slow server"
                                    " open (30 s delay)")
        self.assertTrue(entry[2], "closed, but not during the delay: %r" % (entry,))
        self.assertLess(entry[1] - answered, 1.0)
        self.assertEqual(self.hedges(gw), 1)
        # The next requests never reuse it: each one to slow is a new connection.
        for i in range(2):
            r, _ = self.timed_fetch(gw, "GET", "/lose/after/%d" % i)
            self.assertStatus(r, 200)
        ids = [q.conn_id for q in slow.app_requests]
        self.assertEqual(len(ids), len(set(ids)), "a connection that lost a race was reused: %r"
                         % ids)

    def test_losing_hedge_connection_is_closed(self):
        """Both servers answer after 500 ms: the first try answers ~50 ms
        before the hedge would; the hedge's connection is closed (during its
        delay), the winner's is kept for the next request."""
        a = self.start_stub("a", "echo", delay=0.5)
        b = self.start_stub("b", "echo", delay=0.5)
        gw = self.hedge_gateway([a, b])
        r, took = self.timed_fetch(gw, "GET", "/race")
        self.assertStatus(r, 200)
        self.assertEqual(self.hedges(gw), 1)
        self.assertEqual((len(a.app_requests), len(b.app_requests)), (1, 1))
        winner = a if r.json()["server"] == "a" else b
        loser = b if winner is a else a

        def closes():
            return [c for c in loser.peer_closes if c[0] == loser.app_requests[0].conn_id]
        self.assertTrue(poll_until(closes, 3.0),
                        "the losing try's connection to %s was not closed" % loser.name)
        self.assertEqual(winner.peer_closes, [],
                         "the winner's connection was closed: %r" % winner.peer_closes)


class HedgeOutlierTests(HedgeTestCase):
    def test_black_holed_server_is_ejected_after_lost_races(self):
        """outlier_detection {consecutive_failures: 3}: three lost races
        eject the black-holed server; from then on nothing is hedged and
        nothing reaches it."""
        mute = self.mute_server()
        fast = self.start_stub("fast", "echo")
        gw = self.hedge_gateway([mute.address, fast], upstream_opts={"outlier_detection": {
            "consecutive_failures": 3, "base_ejection_time": "30s", "max_ejection_percent": 50}})

        def ejected():
            return self.server_status(gw, "u", mute.address)["ejected"]
        n = 0
        while not ejected():
            self.assertLess(n, 12, "the black-holed server was not ejected after %d requests"
                            " (%d hedges); /status: %r"
                            % (n, self.hedges(gw), self.upstream_status(gw, "u")))
            r, took = self.timed_fetch(gw, "GET", "/od/%d" % n)
            self.assertStatus(r, 200)
            self.assertLess(took, HEDGED_BOUND)
            n += 1
        self.assertEqual(self.hedges(gw), 3, "ejection should follow exactly 3 lost races")
        self.assertEqual(mute.requests, 3)
        hit = gw.wait_stderr(r"upstream u: %s ejected for 30s \(3 consecutive failures"
                             % mute.address, 2.0)
        self.assertTrue(hit, "no ejection line; stderr:\n%s" % gw.stderr_text())
        # Ejected: no more hedges, no more requests to it, 1 try each.
        for i in range(10):
            r, took = self.timed_fetch(gw, "GET", "/od/after/%d" % i)
            self.assertStatus(r, 200)
            self.assertLess(took, 1.0)
        self.assertEqual(self.hedges(gw), 3, "requests hedged after the ejection")
        self.assertEqual(mute.requests, 3, "the ejected server received requests")
        recs = self.records_by_path(gw, n + 10, "/od/")
        after = [r for p, r in recs.items() if p.startswith("/od/after/")]
        self.assertEqual([r["tries"] for r in after], [1] * 10)
        self.assertTrue(self.server_status(gw, "u", mute.address)["ejected"])


class HedgeStreamTests(HedgeTestCase):
    SIZE = 8 << 20

    def test_streamed_response_after_a_hedge_is_whole(self):
        """The fast server streams 8 MiB chunked; a request whose first try
        went to the black-holed server is answered by the hedge whole
        (sha256), and the keep-alive connection stays usable."""
        mute = self.mute_server()
        fast = self.start_stub("fast", "size", size=self.SIZE, chunked=True, piece=65536)
        gw = self.hedge_gateway([mute.address, fast])
        c = self.connect(gw, timeout=20)
        hedged = False
        for i in range(4):
            c.request("GET", "/big/%d" % i)
            r = c.read_response(timeout=20, store=False)
            self.assertStatus(r, 200, "request %d" % i)
            self.assertEqual(r.framing, "chunked")
            self.assertEqual((r.body_len, r.body_sha256), (self.SIZE, generated_sha256(self.SIZE)),
                             "request %d: body differs" % i)
            if self.hedges(gw) > 0:
                hedged = True
                break
        self.assertTrue(hedged, "no request of 4 was hedged")
        self.assertEqual(mute.requests, 1)
        recs = self.records_by_path(gw, i + 1, "/big/")
        rec = recs["/big/%d" % i]
        self.assertEqual((rec["status"], rec["tries"], rec["server"], rec["bytes"]),
                         (200, 2, fast.address, self.SIZE))
        fast.set("echo")
        c.request("GET", "/big/after")
        r = c.read_response(timeout=5)
        self.assertStatus(r, 200, "the connection after the hedged stream")

    def test_hedge_losing_to_a_streaming_head_is_cancelled(self):
        """after: 300ms. Both servers wait 500 ms, then stream 1 MiB chunked
        over ~0.6 s. The first try's head comes ~300 ms before the hedge's:
        the first try wins and streams; the hedge must be cancelled then
        (its connection closed during its delay), not take over the reply
        when its own head comes while the first body is still streaming."""
        size = 1 << 20
        opts = dict(size=size, chunked=True, piece=32768, gap=0.02, delay=0.5)
        a = self.start_stub("a", "size", **opts)
        b = self.start_stub("b", "size", **opts)
        gw = self.hedge_gateway([a, b], retry=hedge_retry(hedge={"after": "300ms"}))
        c = self.connect(gw, timeout=10)
        c.request("GET", "/stream")
        r = c.read_response(timeout=10, store=False)
        self.assertStatus(r, 200)
        self.assertEqual((r.body_len, r.body_sha256), (size, generated_sha256(size)),
                         "the streamed body is not the one the server sent")
        self.assertEqual(self.hedges(gw), 1)
        # Exactly one response on the connection: the next request gets its own.
        a.set("echo")
        b.set("echo")
        c.request("GET", "/stream/after")
        r2 = c.read_response(timeout=5)
        self.assertStatus(r2, 200, "the request after the stream")
        self.assertEqual(r2.json()["path"], "/stream/after")
        # The first try answered: the hedge was closed during its delay.
        first, hedge = sorted((a, b), key=lambda s: s.app_requests[0].time)
        rec = self.records_by_path(gw, 1, "/stream", lines=2)["/stream"]
        self.assertEqual((rec["tries"], rec["bytes"]), (2, size), rec)
        if rec["server"] == first.address:
            closed = poll_until(lambda: [e for e in hedge.peer_closes if e[2]], 3.0)
            self.assertTrue(closed, "the losing hedge's connection to %s was not closed during"
                            " its delay: %r" % (hedge.name, hedge.peer_closes))


class HedgeAutoTests(HedgeTestCase):
    def test_auto_delay_still_hedges_a_black_hole(self):
        """after: auto. Warm-up traffic over more than a second teaches the
        route its (fast) latency; then one server stops answering (30 s
        delay): its requests are still hedged and answered quickly."""
        a = self.start_stub("a", "echo")
        b = self.start_stub("b", "echo")
        gw = self.hedge_gateway([a, b], retry=hedge_retry(hedge={"after": "auto"}))
        t0 = time.monotonic()
        n = 0
        while n < 60 or time.monotonic() - t0 < 1.3:
            self.assertLess(n, 2000)
            r, _ = self.timed_fetch(gw, "GET", "/warm/%d" % n)
            self.assertStatus(r, 200)
            n += 1
            time.sleep(0.01)
        warm_hedges = self.hedges(gw)
        a.set("echo", delay=30)
        before_a = len(a.app_requests)
        times = []
        for i in range(10):
            r, took = self.timed_fetch(gw, "GET", "/auto/%d" % i)
            self.assertStatus(r, 200, "request %d" % i)
            self.assertEqual(r.json()["server"], "b")
            self.assertLess(took, HEDGED_BOUND, "request %d took %.2fs" % (i, took))
            times.append(took)
        # The gateway's count first: the stalled stub may record a request
        # only after the hedge's answer came back (a busy machine).
        hedged = self.hedges(gw) - warm_hedges
        self.assertGreaterEqual(hedged, 3, "round robin sent only %d of 10 to the stalled server"
                                % hedged)
        poll_until(lambda: len(a.app_requests) - before_a >= hedged, 5.0)
        to_a = len(a.app_requests) - before_a
        self.assertEqual(hedged, to_a,
                         "every request whose try went to the stalled server should be hedged")
        recs = self.records_by_path(gw, 10, "/auto/", lines=n + 10)
        self.assertEqual(sum(1 for r in recs.values() if r["tries"] == 2), to_a)

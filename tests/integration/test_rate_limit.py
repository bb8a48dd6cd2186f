"""Rate limits per route (SPEC sections 2, 4 and 5): token buckets keyed by
a header, the client address or the whole route; 429 rate_limited with
Retry-After; bounded memory whatever the number of distinct keys.

Limits use `per: 1m` (or 1h) so that no token comes back while a test runs:
every count is then exact, and nothing depends on timing. A client from
another address binds its socket to 127.0.0.2 (all of 127/8 is loopback).
"""

import re
import socket
import threading
import time
from collections import Counter

from gwtest import (Conn, GatewayTestCase, free_port, refused_address, route, run_gateway_cmd, upstream,
                    write_file)


class ConnFrom(Conn):
    """A Conn whose socket is bound to a source address of our choice."""

    def __init__(self, port, source, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.closed_locally = False
        self.throttle = None


def dead_address():
    """A loopback address where connects are refused (gwtest.refused_address)."""
    return refused_address()


class RateLimitTestCase(GatewayTestCase):
    def setUp(self):
        self.stub = self.start_stub("u", "echo")

    def limited_gateway(self, routes, **conf):
        return self.start_gateway({"u": upstream(self.stub)}, routes, access_log="off", **conf)

    def get(self, gw, path, headers=(), source="127.0.0.1", conn=None):
        """One request, on conn or on a new connection from source."""
        c = conn
        if c is None:
            c = ConnFrom(gw.port, source)
            self.addCleanup(c.close)
        c.request("GET", path, list(headers))
        return c.read_response()

    def assertPassed(self, resp, what=""):
        self.assertStatus(resp, 200, what)
        self.assertNotGatewayError(resp)

    def assertLimited(self, resp, max_retry_after=None, min_retry_after=1, what=""):
        """429 rate_limited, Retry-After whole seconds in [min, max], connection kept."""
        if resp.status != 429:
            self.fail("expected 429 rate_limited %s, got %s" % (what, resp.describe()))
        self.assertGatewayError(resp, 429, "rate_limited")
        ra = resp.header("Retry-After")
        self.assertIsNotNone(ra, "429 without Retry-After: %s" % resp.describe())
        self.assertRegex(ra, r"^\d+$")
        self.assertGreaterEqual(int(ra), min_retry_after, "Retry-After %s" % ra)
        if max_retry_after is not None:
            self.assertLessEqual(int(ra), max_retry_after, "Retry-After %s" % ra)
        self.assertNotIn("close", [v.lower() for v in resp.header_all("Connection")],
                         "a 429 must keep the connection: %s" % resp.describe())
        return int(ra)


class RateLimitKeyTests(RateLimitTestCase):
    def test_by_header_separate_buckets_and_shared_bucket_without_header(self):
        """rate 5 per 1m, burst 5, by header:X-Api-Key: key A passes 5 times,
        then 429 (Retry-After: the next token comes 12 s after the bucket
        emptied) without reaching the upstream; key B has its own bucket;
        requests without the header share one bucket."""
        gw = self.limited_gateway([route("r", "u", rate_limit={
            "rate": 5, "per": "1m", "burst": 5, "by": "header:X-Api-Key"})])
        c = self.connect(gw)
        for i in range(5):
            self.assertPassed(self.get(gw, "/a/%d" % i, [("X-Api-Key", "A")], conn=c),
                              "key A, request %d of its burst of 5" % (i + 1))
        seen = len(self.stub.requests)
        r = self.get(gw, "/a/6", [("X-Api-Key", "A")], conn=c)
        # Next token 60/5 = 12 s after the 5th request; this test is far
        # quicker than the 2 s that would bring it under 10.
        self.assertLimited(r, min_retry_after=10, max_retry_after=12, what="key A, 6th request")
        self.assertEqual(len(self.stub.requests), seen, "a limited request reached the upstream")
        # Same connection (kept alive): key B has its own bucket.
        for i in range(5):
            self.assertPassed(self.get(gw, "/b/%d" % i, [("X-Api-Key", "B")], conn=c), "key B")
        self.assertLimited(self.get(gw, "/b/6", [("X-Api-Key", "B")], conn=c), 12)
        # A is still limited, from another connection, whatever the header
        # name's case; a key differing only in case is another key.
        self.assertLimited(self.get(gw, "/a/7", [("x-api-key", "A")]), 12)
        self.assertPassed(self.get(gw, "/a/8", [("X-Api-Key", "a")]), "key 'a' (not 'A')")
        # No header: one shared bucket, whatever the connection.
        for i in range(5):
            self.assertPassed(self.get(gw, "/none/%d" % i), "no key, request %d" % (i + 1))
        self.assertLimited(self.get(gw, "/none/6"), 12, what="6th request without a key")
        self.assertLimited(self.get(gw, "/none/7", source="127.0.0.2"), 12,
                           what="no key from another address")
        self.assertPassed(self.get(gw, "/c", [("X-Api-Key", "C")]), "key C")
        self.assertEqual(len(self.stub.requests), 5 + 5 + 1 + 5 + 1)

    def test_burst_defaults_to_rate_and_can_exceed_it(self):
        gw = self.limited_gateway([
            route("dflt", "u", path_prefix="/dflt", rate_limit={"rate": 3, "per": "1m"}),
            route("big", "u", path_prefix="/big",
                  rate_limit={"rate": 1, "per": "1m", "burst": 4, "by": "route"})])
        c = self.connect(gw)
        for i in range(3):
            self.assertPassed(self.get(gw, "/dflt/%d" % i, conn=c), "default burst = rate 3")
        self.assertLimited(self.get(gw, "/dflt/3", conn=c), 20)
        for i in range(4):
            self.assertPassed(self.get(gw, "/big/%d" % i, conn=c), "burst 4 at rate 1")
        self.assertLimited(self.get(gw, "/big/4", conn=c), 60, min_retry_after=50)

    def test_by_client_ip(self):
        """rate 3 per 1m by client_ip: every connection from 127.0.0.1 (and
        any X-Forwarded-For or X-Api-Key it sends) shares one bucket;
        127.0.0.2 has its own. A route without `by` keys by client_ip too."""
        gw = self.limited_gateway([
            route("ip", "u", path_prefix="/ip",
                  rate_limit={"rate": 3, "per": "1m", "burst": 3, "by": "client_ip"}),
            route("dflt", "u", path_prefix="/dflt", rate_limit={"rate": 2, "per": "1m"})])
        for i in range(3):
            self.assertPassed(self.get(gw, "/ip/%d" % i, [("X-Forwarded-For", "10.0.0.%d" % i),
                                                          ("X-Api-Key", "k%d" % i)]),
                              "127.0.0.1, request %d" % (i + 1))
        self.assertLimited(self.get(gw, "/ip/3", [("X-Forwarded-For", "10.0.0.99")]), 20,
                           what="4th request from 127.0.0.1 (X-Forwarded-For is not the key)")
        for i in range(3):
            self.assertPassed(self.get(gw, "/ip/b%d" % i, source="127.0.0.2"),
                              "127.0.0.2, request %d" % (i + 1))
        self.assertLimited(self.get(gw, "/ip/b3", source="127.0.0.2"), 20)
        self.assertLimited(self.get(gw, "/ip/4"), 20, what="127.0.0.1 still limited")
        # The default key (client_ip), and a bucket per route: /dflt is fresh.
        for src in ("127.0.0.1", "127.0.0.2"):
            for i in range(2):
                self.assertPassed(self.get(gw, "/dflt/%d" % i, source=src), src)
            self.assertLimited(self.get(gw, "/dflt/2", source=src), 30, what=src)
        self.assertEqual(len(self.stub.requests), 3 + 3 + 2 + 2)

    def test_by_route(self):
        """by: route: one bucket for the route, whoever sends; each route its
        own bucket; a route without rate_limit is not limited."""
        rl = {"rate": 2, "per": "1m", "burst": 2, "by": "route"}
        gw = self.limited_gateway([route("a", "u", path_prefix="/a", rate_limit=rl),
                                   route("b", "u", path_prefix="/b", rate_limit=rl),
                                   route("free", "u", path_prefix="/free")])
        self.assertPassed(self.get(gw, "/a/1", [("X-Api-Key", "x")]))
        self.assertPassed(self.get(gw, "/a/2", source="127.0.0.2"))
        self.assertLimited(self.get(gw, "/a/3", [("X-Api-Key", "y")]), 30)
        self.assertLimited(self.get(gw, "/a/4", source="127.0.0.2"), 30)
        self.assertPassed(self.get(gw, "/b/1", source="127.0.0.2"), "route b has its own bucket")
        self.assertPassed(self.get(gw, "/b/2"))
        self.assertLimited(self.get(gw, "/b/3"), 30)
        c = self.connect(gw)
        for i in range(20):
            self.assertPassed(self.get(gw, "/free/%d" % i, conn=c), "unlimited route")


# ---------------------------------------------------------------------------
# memory

KEY_PAD = "k" * 240
_CL = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.I)


def blast(port, keys, tag=lambda key: None, path=b"/m", conns=4, batch=100, timeout=30.0):
    """Sends one GET per key (X-Api-Key: key), pipelined in batches on
    `conns` keep-alive connections in threads; returns a Counter of
    (tag(key), status) for the responses. A connection the gateway closes,
    or any client failure, is an entry ("error", "...") in the counter."""
    total = Counter()
    lock = threading.Lock()
    parts = [keys[i::conns] for i in range(conns)]

    def run(part):
        counts = Counter()
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = bytearray()
            for i in range(0, len(part), batch):
                chunk = part[i:i + batch]
                s.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: gw.test\r\nX-Api-Key: %s\r\n\r\n"
                                   % (path, k.encode()) for k in chunk))
                got = 0
                while got < len(chunk):
                    end = buf.find(b"\r\n\r\n")
                    if end >= 0:
                        head = bytes(buf[:end])
                        m = _CL.search(head)
                        need = end + 4 + (int(m.group(1)) if m else 0)
                        if len(buf) >= need:
                            counts[(tag(chunk[got]), int(head[9:12]))] += 1
                            del buf[:need]
                            got += 1
                            continue
                    data = s.recv(1 << 20)
                    if not data:
                        raise ConnectionError("closed by the gateway after %d responses"
                                              % sum(counts.values()))
                    buf += data
            s.close()
        except Exception as e:  # noqa: BLE001 - counted, reported by the test
            counts[("error", str(e))] += 1
        with lock:
            total.update(counts)

    threads = [threading.Thread(target=run, args=(p,), daemon=True) for p in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout * 4)
    return total


# Bound on VmHWM growth over 100 000 new distinct keys, measured after a
# warm-up that already sent 2 x max_keys distinct keys (so the table is full
# and evicting, and the allocator, or ASan's quarantine, has reached its
# steady state). Storing every key would take at least 100 000 x 250 bytes
# of key text alone = 24 MiB (more with per-entry overhead); a table bounded
# at 10 000 keys holds at most ~2.5 MiB of key text in all (and nothing at
# all grows when it stores hashes in memory allocated up front).
MAX_GROWTH_KIB = 12 * 1024
BUSY_EVERY = 500  # the busy key is used again after every 500 new keys


class RateLimitMemoryTests(RateLimitTestCase):
    def test_memory_bounded_under_100k_distinct_keys(self):
        """max_keys 10000, by header:X-Api-Key, rate 1 per 1h: 20 000
        distinct 250-byte keys (warm-up), then 100 000 more, pipelined on 4
        connections, with a key emptied at the start used again after every
        500 of them (warm-up included). No request with a new key is limited; the busy key is
        limited every time; VmHWM grows by less than 12 MiB over the 100 000;
        the gateway lives on. The upstream is a refused port behind a
        breaker that opens on the first failure: a request that passed the
        limit is answered 503 circuit_open at once (502 for the first)."""
        gw = self.start_gateway(
            {"dead": upstream(dead_address())},
            [route("m", "dead", path_prefix="/m",
                   circuit_breaker={"consecutive_failures": 1, "min_requests": 1,
                                    "open_duration": "5m", "max_open_duration": "10m"},
                   rate_limit={"rate": 1, "per": "1h", "burst": 1, "by": "header:X-Api-Key",
                               "max_keys": 10000})],
            access_log="off")
        busy_key = "busy-" + KEY_PAD
        busy = [("X-Api-Key", busy_key)]
        c = self.connect(gw, timeout=10)
        first = self.get(gw, "/m/busy", busy, conn=c)
        self.assertIn(first.status, (502, 503), "the busy key's first request: %s"
                      % first.describe())
        self.assertLimited(self.get(gw, "/m/busy", busy, conn=c), 3600, min_retry_after=3000)

        def keys_with_busy(prefix, n):
            keys = []
            for i in range(n):
                if i % BUSY_EVERY == 0:
                    keys.append(busy_key)
                keys.append("%s%06d-%s" % (prefix, i, KEY_PAD))
            return keys

        def tag(k):
            return "busy" if k == busy_key else "new"

        t0 = time.monotonic()
        warm = blast(gw.port, keys_with_busy("w", 20000), tag=tag)
        self.assertEqual((warm[("new", 503)] + warm[("new", 502)], warm[("busy", 429)]),
                         (20000, 20000 // BUSY_EVERY), "warm-up answers: %r" % warm)
        hwm0 = gw.vm_hwm_kib()

        got = blast(gw.port, keys_with_busy("n", 100000), tag=tag)
        took = time.monotonic() - t0
        hwm1 = gw.vm_hwm_kib()

        self.assertTrue(gw.alive(), "the gateway died")
        errors = {k: n for k, n in got.items() if k[0] == "error"}
        self.assertEqual(errors, {}, "client-side failures")
        self.assertEqual(got[("new", 503)] + got[("new", 502)], 100000,
                         "answers to 100 000 requests with new keys (a 429 limits a key that"
                         " never sent anything before): %r" % got)
        self.assertEqual(got[("busy", 429)], 100000 // BUSY_EVERY,
                         "the busy key (emptied at the start, used after every %d new keys)"
                         " must stay limited: %r" % (BUSY_EVERY, got))
        self.assertLimited(self.get(gw, "/m/busy", busy, conn=c), 3600, min_retry_after=3000)
        self.assertEqual(self.get(gw, "/m/fresh", [("X-Api-Key", "fresh")]).status, 503)
        self.assertLess(hwm1 - hwm0, MAX_GROWTH_KIB,
                        "VmHWM grew from %d to %d KiB (+%d KiB) over 100 000 distinct keys with"
                        " max_keys 10000 (%.1fs)" % (hwm0, hwm1, hwm1 - hwm0, took))


    def test_limited_key_not_forgiven_by_a_flood_of_new_keys(self):
        """burst 2, max_keys 1000: a key that was limited stays limited after
        5 000 other keys went by, although it was not used meanwhile (a new
        key costs its sender a request and leaves its bucket fuller than a
        limited one: evicting those first keeps the limit of the limited
        key; otherwise flooding would reset anyone's limit)."""
        gw = self.start_gateway(
            {"u": upstream(self.stub)},
            [route("m", "u", path_prefix="/m",
                   rate_limit={"rate": 2, "per": "1h", "burst": 2, "by": "header:X-Api-Key",
                               "max_keys": 1000})],
            access_log="off")
        self.stub.set("fixed", status=204)
        c = self.connect(gw)
        key = [("X-Api-Key", "drained")]
        for _ in range(2):
            self.assertEqual(self.get(gw, "/m/d", key, conn=c).status, 204)
        self.assertLimited(self.get(gw, "/m/d", key, conn=c), 1800, min_retry_after=1000)
        got = blast(gw.port, ["f%05d-%s" % (i, KEY_PAD) for i in range(5000)], path=b"/m/f")
        self.assertEqual(dict(got), {(None, 204): 5000})
        self.assertLimited(self.get(gw, "/m/d", key, conn=c), 1800, min_retry_after=1000,
                           what="a limited key after 5 000 new keys")


# ---------------------------------------------------------------------------
# configuration errors

CONF = """\
listen:
  - "127.0.0.1:{port}"
workers: 1
upstreams:
  u:
    servers: ["127.0.0.1:9001"]
routes:
  - name: r
    match: {{ path_prefix: / }}
    upstream: u
    rate_limit:
{rl}
"""
FIRST_RL_LINE = 12  # the line of the first rate_limit key
LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<msg>\S.*)$")


class RateLimitConfigTests(GatewayTestCase):
    def check(self, *lines):
        text = CONF.format(port=free_port(), rl="".join("      %s\n" % l for l in lines))
        path = write_file(text, "rl-conf")
        return path, run_gateway_cmd(["-t", "-c", path])

    def assertInvalid(self, lines, line, col=None, words=()):
        path, p = self.check(*lines)
        self.assertEqual(p.returncode, 1, "exit status for %r; stderr %r" % (lines, p.stderr))
        located = [m for m in map(LOCATED.match, p.stderr.splitlines()) if m]
        self.assertTrue(located, "no FILE:LINE:COL: message on stderr for %r: %r"
                        % (lines, p.stderr))
        m = located[0]
        self.assertEqual(m["file"], path)
        self.assertEqual(int(m["line"]), line, "line of %r for %r" % (m.group(0), lines))
        if col is not None:
            self.assertEqual(int(m["col"]), col, "column of %r for %r" % (m.group(0), lines))
        for w in words:
            self.assertIn(w, m["msg"], "message for %r" % (lines,))

    def test_valid(self):
        for lines in (["rate: 100"],
                      ["rate: 5", "per: 1m", "burst: 50", "by: client_ip", "max_keys: 10"],
                      ["rate: 1", "per: 1h", "by: route"],
                      ["rate: 2", "by: header:X-Api-Key"]):
            _, p = self.check(*lines)
            self.assertEqual(p.returncode, 0, "%r refused: %r" % (lines, p.stderr))

    def test_missing_rate(self):
        # Reported at the rate_limit key (line 11) or its first key (12).
        path, p = self.check("per: 1s", "burst: 5")
        self.assertEqual(p.returncode, 1, p.stderr)
        located = [m for m in map(LOCATED.match, p.stderr.splitlines()) if m]
        self.assertTrue(located, p.stderr)
        self.assertIn(int(located[0]["line"]), (FIRST_RL_LINE - 1, FIRST_RL_LINE), p.stderr)
        self.assertIn("rate", located[0]["msg"])

    def test_zero_and_negative_rate(self):
        self.assertInvalid(["rate: 0"], FIRST_RL_LINE, words=["rate"])
        self.assertInvalid(["rate: -5"], FIRST_RL_LINE, words=["rate"])
        self.assertInvalid(["rate: lots"], FIRST_RL_LINE, words=["rate"])

    def test_bad_by(self):
        self.assertInvalid(["rate: 5", 'by: "header:"'], FIRST_RL_LINE + 1, words=["by"])
        self.assertInvalid(["rate: 5", "by: cookie"], FIRST_RL_LINE + 1, words=["by"])

    def test_other_bad_values(self):
        self.assertInvalid(["rate: 5", "burst: 0"], FIRST_RL_LINE + 1, words=["burst"])
        self.assertInvalid(["rate: 5", "per: 0s"], FIRST_RL_LINE + 1, words=["per"])
        self.assertInvalid(["rate: 5", "max_keys: 0"], FIRST_RL_LINE + 1, words=["max_keys"])

    def test_unknown_key(self):
        self.assertInvalid(["rate: 5", "brust: 10"], FIRST_RL_LINE + 1, col=7, words=["brust"])

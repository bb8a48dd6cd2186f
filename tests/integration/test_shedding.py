"""Load shedding by priority, the hard in-flight ceiling, dry run, and the
upstream priority queue behind `concurrency_limit` (SPEC sections 2, 4, 5
and 6).

Routes of three priorities share one upstream stub: /crit (critical), /norm
(no `priority`: the default, normal) and /shed (sheddable). The overload
level is forced through Redis (gw:ops:shed_level, a profile's shed_level),
or raised by requests held in flight at a stub that delays its answer to one
path only (set_path), so that the probe requests on the other paths are
answered at once. Nothing is asserted about durations: only statuses,
counts and the order in which the upstream received requests. Every wait is
a poll with a deadline, or the end of a request the test started.

Redis: the suite's redis-server (GATEWAY_TEST_REDIS), or one started for
this process (redistest.shared_redis_address), with a key prefix per test.
"""

import re
import threading

from gwtest import (Conn, GatewayTestCase, Response, free_port, poll_until, route,
                    run_gateway_cmd, upstream, write_file)
from redistest import Redis, shared_redis_address, unique_prefix

# How long requests held in flight stay at the stub. Long enough for every
# check a test makes while they are held (a failure says so when they were
# not), short enough to keep the file quick.
HOLD = 3.0


def three_routes(upstream_name="u", **opts):
    """/crit critical, /norm normal (by default: no `priority` key), /shed sheddable."""
    return [route("crit", upstream_name, path_prefix="/crit", priority="critical", **opts),
            route("norm", upstream_name, path_prefix="/norm", **opts),
            route("shed", upstream_name, path_prefix="/shed", priority="sheddable", **opts)]


class Holder:
    """Requests sent each on its own connection from a thread, held in
    flight (by a delaying stub) until they end by themselves."""

    def __init__(self, port, path, n, timeout=30.0, headers=()):
        self.results = [None] * n
        self.threads = []
        for i in range(n):
            t = threading.Thread(target=self._run, args=(port, path, i, timeout, headers),
                                 daemon=True)
            t.start()
            self.threads.append(t)

    def _run(self, port, path, i, timeout, headers):
        try:
            with Conn(port, timeout=timeout) as c:
                c.request("GET", path, list(headers))
                self.results[i] = c.read_response(timeout)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.results[i] = e

    def finished(self):
        return [r for r in self.results if r is not None]

    def join(self, timeout=30.0):
        for t in self.threads:
            t.join(timeout)
        return list(self.results)


class ShedTestCase(GatewayTestCase):
    def setUp(self):
        self.stub = self.start_stub("u", "echo")

    def get(self, c, path, headers=()):
        c.request("GET", path, list(headers))
        return c.read_response()

    def status_on(self, c, path):
        return self.get(c, path).status

    def assertShed(self, resp, retry_after=(2, 3)):
        """503 shed with the JSON body, Retry-After in retry_after, and the
        connection kept alive (no Connection: close)."""
        self.assertGatewayError(resp, 503, "shed")
        ra = resp.header("Retry-After")
        self.assertIsNotNone(ra, "shed answer without Retry-After: %s" % resp.describe())
        self.assertRegex(ra, r"^\d+$", "Retry-After is not whole seconds")
        self.assertIn(int(ra), retry_after, "Retry-After %s for retry_after 2s +-20%%, rounded up"
                      % ra)
        self.assertNotIn("close", [v.lower() for v in resp.header_all("Connection")],
                         "a shed answer must keep the connection: %s" % resp.describe())

    def assertServed(self, resp, what=""):
        self.assertStatus(resp, 200, what)
        self.assertNotGatewayError(resp)

    def hold(self, gw, path, n, total):
        """Starts n requests to path (which the stub delays) and waits until
        the stub has received `total` requests to it."""
        h = Holder(gw.port, path, n)
        got = poll_until(lambda: len([r for r in self.stub.requests if r.path == path]) >= total,
                         10.0)
        if not got:
            self.fail("the stub received %d of %d held requests to %s"
                      % (len([r for r in self.stub.requests if r.path == path]), total, path))
        return h

    def assertStillHeld(self, *holders):
        done = [r for h in holders for r in h.finished()]
        if done:
            self.fail("requests meant to stay in flight for %.1fs ended already (slow machine?):"
                      " %r" % (HOLD, done[:3]))


class ForcedLevelTests(ShedTestCase):
    def redis_gateway(self, routes=None, **conf):
        self.prefix = unique_prefix()
        self.r = Redis(shared_redis_address())
        self.addCleanup(self.r.close)
        self.addCleanup(self.cleanup_keys)
        return self.start_gateway({"u": upstream(self.stub)}, routes or three_routes(),
                                  access_log="off",
                                  redis={"address": shared_redis_address(), "prefix": self.prefix,
                                         "poll_interval": "5s"}, **conf)

    def cleanup_keys(self):
        self.r.cmd("DEL", self.prefix + "ops:shed_level", self.prefix + "ops:profile")

    def announce(self):
        self.r.cmd("PUBLISH", self.prefix + "events", "x")

    def wait_status(self, c, path, status, timeout=2.0):
        if not poll_until(lambda: self.status_on(c, path) == status, timeout, interval=0.01):
            self.fail("%s did not answer %d within %.1fs (last: %s)"
                      % (path, status, timeout, self.get(c, path).describe()))

    def test_forced_levels_shed_by_priority_and_auto_restores(self):
        """shed_level 1 sheds /shed only; 2 sheds /norm too; critical is
        always served; a shed answer has every property of SPEC section 4,
        keeps the connection and makes no upstream request; auto (key
        deleted) serves everything again."""
        gw = self.redis_gateway()
        c = self.connect(gw)
        for p in ("/crit/a", "/norm/a", "/shed/a"):
            self.assertServed(self.get(c, p), p + " at level 0")

        self.r.cmd("SET", self.prefix + "ops:shed_level", "1")
        self.announce()
        self.wait_status(c, "/shed/a", 503)
        seen = len(self.stub.requests)
        retry_afters = set()
        for i in range(40):
            r = self.get(c, "/shed/x%d" % i)
            self.assertShed(r)
            retry_afters.add(int(r.header("Retry-After")))
        self.assertEqual(len(self.stub.requests), seen, "a shed request reached the upstream")
        self.assertEqual(retry_afters, {2, 3},
                         "40 shed answers with retry_after 2s +-20%% (rounded up) should show"
                         " both 2 and 3: saw %r" % sorted(retry_afters))
        # The log says so as it happens, once a second at most, not 41 lines.
        shed_lines = [l for l in gw.stderr_lines() if "shedding: refused a request" in l]
        self.assertGreaterEqual(len(shed_lines), 1, gw.stderr_text())
        self.assertLess(len(shed_lines), 10)
        self.assertIn("route shed (sheddable)", shed_lines[0])
        # The same connection serves the next requests (keep-alive).
        self.assertServed(self.get(c, "/norm/b"), "normal at level 1")
        self.assertServed(self.get(c, "/crit/b"), "critical at level 1")
        self.assertEqual(len(self.stub.requests), seen + 2)

        self.r.cmd("SET", self.prefix + "ops:shed_level", "2")
        self.announce()
        self.wait_status(c, "/norm/c", 503)
        seen = len(self.stub.requests)
        self.assertShed(self.get(c, "/norm/d"))
        self.assertShed(self.get(c, "/shed/d"))
        self.assertEqual(len(self.stub.requests), seen, "a shed request reached the upstream")
        self.assertServed(self.get(c, "/crit/d"), "critical at level 2")
        self.assertEqual(len(self.stub.requests), seen + 1)
        # A new connection: the same answers.
        c2 = self.connect(gw)
        self.assertShed(self.get(c2, "/norm/e"))
        self.assertServed(self.get(c2, "/crit/e"))

        self.r.cmd("DEL", self.prefix + "ops:shed_level")
        self.announce()
        self.wait_status(c, "/norm/f", 200)
        self.wait_status(c, "/shed/f", 200)
        for p in ("/crit/g", "/norm/g", "/shed/g"):
            self.assertServed(self.get(c, p), p + " back to auto")

    def test_forced_level_0_and_auto_shed_nothing(self):
        """shed_level "0" and "auto" are valid values: nothing is shed."""
        gw = self.redis_gateway()
        c = self.connect(gw)
        for value in ("0", "auto"):
            self.r.cmd("SET", self.prefix + "ops:shed_level", "2")
            self.announce()
            self.wait_status(c, "/norm/a", 503)
            self.r.cmd("SET", self.prefix + "ops:shed_level", value)
            self.announce()
            self.wait_status(c, "/norm/a", 200)
            self.assertServed(self.get(c, "/shed/a"), "sheddable with shed_level %s" % value)

    def test_profile_with_shed_level_2_sheds_normal(self):
        gw = self.redis_gateway(profiles={"peak": {"shed_level": 2}})
        c = self.connect(gw)
        self.assertServed(self.get(c, "/norm/a"))
        self.r.cmd("SET", self.prefix + "ops:profile", "peak")
        self.announce()
        self.wait_status(c, "/norm/a", 503)
        seen = len(self.stub.requests)
        self.assertShed(self.get(c, "/norm/b"))
        self.assertShed(self.get(c, "/shed/b"))
        self.assertEqual(len(self.stub.requests), seen)
        self.assertServed(self.get(c, "/crit/b"), "critical under profile peak")
        self.r.cmd("DEL", self.prefix + "ops:profile")
        self.announce()
        self.wait_status(c, "/norm/c", 200)
        self.assertServed(self.get(c, "/shed/c"))


class InflightTests(ShedTestCase):
    def test_hard_ceiling_sheds_critical_at_max_inflight(self):
        """max_inflight 2, two critical requests held at the upstream: a
        third critical request is shed before either of them ends, without
        reaching the upstream; once they ended, critical is served again."""
        self.stub.set_path("/crit/hold", "echo", delay=HOLD)
        gw = self.start_gateway({"u": upstream(self.stub)}, three_routes(),
                                shedding={"max_inflight": 2})
        h = self.hold(gw, "/crit/hold", 2, 2)
        c = self.connect(gw)
        r = self.get(c, "/crit/third")
        self.assertStillHeld(h)
        self.assertShed(r)
        self.assertEqual([q.path for q in self.stub.requests], ["/crit/hold"] * 2,
                         "the shed request reached the upstream")
        for i, res in enumerate(h.join()):
            self.assertIsInstance(res, Response, "held request %d: %r" % (i, res))
            self.assertServed(res, "held request %d" % i)
        # In flight is back to 0: critical is served (on the same connection).
        if not poll_until(lambda: self.status_on(c, "/crit/after") == 200, 2.0):
            self.fail("critical still refused after the held requests ended: %s"
                      % self.get(c, "/crit/after").describe())
        # 2 of 2 in flight raised the level to 2; it falls back (one step per
        # second of calm) and normal traffic is served again.
        if not poll_until(lambda: self.status_on(c, "/norm/after") == 200, 5.0, interval=0.05):
            self.fail("the overload level never fell back: %s"
                      % self.get(c, "/norm/after").describe())

    def test_inflight_thresholds_70_and_85_percent(self):
        """max_inflight 10. Held critical requests: 5 -> nothing shed; 7
        (70%) -> sheddable shed, normal served; 9 (85% and more) -> normal
        shed too, critical still served."""
        self.stub.set_path("/crit/hold", "echo", delay=HOLD)
        gw = self.start_gateway({"u": upstream(self.stub)}, three_routes(),
                                shedding={"max_inflight": 10})
        c = self.connect(gw)
        # Sheddable first at each stage: a request being served is in flight
        # too and could raise the (sticky) sampled level for the next check.
        h1 = self.hold(gw, "/crit/hold", 5, 5)
        r_shed5, r_norm5 = self.get(c, "/shed/5"), self.get(c, "/norm/5")
        h2 = self.hold(gw, "/crit/hold", 2, 7)
        r_shed7, r_norm7 = self.get(c, "/shed/7"), self.get(c, "/norm/7")
        h3 = self.hold(gw, "/crit/hold", 2, 9)
        r_norm9, r_shed9, r_crit9 = (self.get(c, "/norm/9"), self.get(c, "/shed/9"),
                                     self.get(c, "/crit/9"))
        self.assertStillHeld(h1, h2, h3)
        self.assertServed(r_shed5, "sheddable with 5/10 in flight")
        self.assertServed(r_norm5, "normal with 5/10 in flight")
        self.assertShed(r_shed7)
        self.assertServed(r_norm7, "normal with 7/10 in flight")
        self.assertShed(r_norm9)
        self.assertShed(r_shed9)
        self.assertServed(r_crit9, "critical with 9/10 in flight")
        paths = [q.path for q in self.stub.requests if q.path != "/crit/hold"]
        self.assertEqual(paths, ["/shed/5", "/norm/5", "/norm/7", "/crit/9"],
                         "requests that reached the upstream")
        for res in h1.join() + h2.join() + h3.join():
            self.assertIsInstance(res, Response, repr(res))
            self.assertServed(res)

    def test_dry_run_sheds_nothing_and_logs(self):
        """As the hard-ceiling test with dry_run: the third critical request
        is served and stderr says "shedding dry run"."""
        self.stub.set_path("/crit/hold", "echo", delay=HOLD)
        gw = self.start_gateway({"u": upstream(self.stub)}, three_routes(),
                                shedding={"max_inflight": 2, "dry_run": True})
        h = self.hold(gw, "/crit/hold", 2, 2)
        h3 = self.hold(gw, "/crit/hold", 1, 3)
        c = self.connect(gw)
        r_shed = self.get(c, "/shed/x")  # 4 in flight of 2: would be shed
        self.assertStillHeld(h)
        for i, res in enumerate(h.join() + h3.join()):
            self.assertIsInstance(res, Response, "held request %d: %r" % (i, res))
            self.assertServed(res, "held request %d in dry run" % i)
        self.assertServed(r_shed, "sheddable over max_inflight in dry run")
        self.assertEqual(len(self.stub.requests), 4)
        found = gw.wait_stderr("shedding dry run", timeout=3.0)
        self.assertTrue(found, "no 'shedding dry run' line on stderr:\n%s" % gw.stderr_text())
        # At most once a second per worker: the two would-be sheds, well within
        # a second of each other, give one line.
        lines = [l for l in gw.stderr_lines() if "shedding dry run" in l]
        self.assertLessEqual(len(lines), 2, "dry-run log lines: %r" % lines)


def run_threads(fns):
    """Starts one thread per callable; returns (threads, results list)."""
    results = [None] * len(fns)

    def run(i):
        try:
            results[i] = fns[i]()
        except Exception as e:  # noqa: BLE001 - reported by the test
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(fns))]
    for t in threads:
        t.start()
    return threads, results


def one_request(port, path, timeout=30.0):
    with Conn(port, timeout=timeout) as c:
        c.request("GET", path)
        return c.read_response(timeout)


class PriorityQueueTests(ShedTestCase):
    def queue_gateway(self, limit, target, timeout, delay):
        self.stub.set("echo", delay=delay)
        self.probe = self.start_stub("probe", "echo")
        routes = [route("crit", "u", path_prefix="/crit", priority="critical", timeout=timeout),
                  route("shed", "u", path_prefix="/shed", priority="sheddable", timeout=timeout),
                  route("probe", "p", path_prefix="/probe")]
        return self.start_gateway({"u": upstream(self.stub, concurrency_limit=limit),
                                   "p": upstream(self.probe)}, routes,
                                  shedding={"target_queue_delay": target}, access_log="off")

    def send_all(self, gw, paths):
        """Sends each request on its own connection; returns the connections
        (the responses are read later, each in a thread)."""
        conns = []
        for p in paths:
            c = Conn(gw.port, timeout=30.0)
            self.addCleanup(c.close)
            c.request("GET", p)
            conns.append(c)
        # A barrier of sorts: an answer from another upstream, after every
        # request above was written, so the single worker has read them.
        self.assertServed(self.fetch(gw, "GET", "/probe"), "probe")
        return conns

    def read_all(self, conns):
        threads, results = run_threads([lambda c=c: c.read_response(30.0) for c in conns])
        return threads, results

    def test_critical_jumps_the_queue_of_sheddable(self):
        """concurrency_limit 4, 40 slow sheddable requests queued, then 4
        critical: the upstream receives the 4 critical ones before more than
        8 sheddable requests (4 already in progress, at most 4 more that may
        have started meanwhile); all 44 are served."""
        gw = self.queue_gateway(4, "10s", "30s", 0.3)
        shed = self.send_all(gw, ["/shed/%d" % i for i in range(40)])
        got = self.stub.wait_requests(4, timeout=5.0)
        self.assertGreaterEqual(len(got), 4, "the upstream never received 4 requests")
        crit = self.send_all(gw, ["/crit/%d" % i for i in range(4)])
        t1, r_shed = self.read_all(shed)
        t2, r_crit = self.read_all(crit)
        for t in t1 + t2:
            t.join(60)
        order = [q.path for q in self.stub.requests]
        self.assertEqual(len(order), 44, "requests at the upstream: %r" % order)
        last_crit = max(i for i, p in enumerate(order) if p.startswith("/crit/"))
        shed_before = sum(1 for p in order[:last_crit] if p.startswith("/shed/"))
        self.assertLessEqual(shed_before, 8,
                             "the critical requests did not jump the queue: upstream order %r"
                             % order)
        bad = [(i, r if isinstance(r, Exception) else r.describe())
               for i, r in enumerate(r_shed + r_crit)
               if isinstance(r, Exception) or r.status != 200]
        self.assertEqual(bad, [], "requests not served (0-39 sheddable, 40-43 critical)")
        # FIFO within a class: the sheddable requests reached the upstream in
        # the order they were sent, give or take the concurrency window (two
        # requests dispatched together on two upstream connections may be
        # recorded by the stub's threads in either order).
        shed_order = [int(p.rsplit("/", 1)[1]) for p in order if p.startswith("/shed/")]
        displaced = max(abs(pos - n) for pos, n in enumerate(shed_order))
        self.assertLess(displaced, 4, "queued sheddable requests not served FIFO: %r" % shed_order)

    def test_standing_queue_sheds_sheddable_never_critical_no_504(self):
        """CoDel: concurrency_limit 2, 0.5 s upstream, target_queue_delay
        50ms, 30 sheddable requests at once: the queue stands above target,
        so some of them are answered 503 shed (never 504, the deadline is 10s)
        and never reach the upstream; 4 critical requests sent meanwhile are
        all served."""
        gw = self.queue_gateway(2, "50ms", "10s", 0.5)
        shed = self.send_all(gw, ["/shed/%d" % i for i in range(30)])
        self.assertGreaterEqual(len(self.stub.wait_requests(2, timeout=5.0)), 2)
        crit = self.send_all(gw, ["/crit/%d" % i for i in range(4)])
        t1, r_shed = self.read_all(shed)
        t2, r_crit = self.read_all(crit)
        for t in t1 + t2:
            t.join(60)
        errors = [r for r in r_shed + r_crit if isinstance(r, Exception)]
        self.assertEqual(errors, [], "client errors")
        for i, r in enumerate(r_crit):
            self.assertServed(r, "critical request %d" % i)
        statuses = [r.status for r in r_shed]
        self.assertNotIn(504, statuses, "a queued request timed out: %r" % statuses)
        shed_answers = [r for r in r_shed if r.status == 503]
        self.assertTrue(shed_answers, "nothing was shed from a standing queue: %r" % statuses)
        for r in shed_answers:
            self.assertShed(r)
        self.assertEqual(set(statuses), {200, 503}, "statuses: %r" % statuses)
        served = [p for p in (q.path for q in self.stub.requests) if p.startswith("/shed/")]
        self.assertEqual(len(served), statuses.count(200),
                         "sheddable requests at the upstream vs answered 200")
        self.assertEqual(len([q for q in self.stub.requests if q.path.startswith("/crit/")]), 4)


# ---------------------------------------------------------------------------
# configuration errors

CONF = """\
listen:
  - "127.0.0.1:{port}"
workers: 1
shedding:
  max_inflight: {max_inflight}
  {shed_extra}
upstreams:
  u:
    servers: ["127.0.0.1:9001"]
    concurrency_limit: {climit}
routes:
  - name: r
    match: {{ path_prefix: / }}
    upstream: u
    priority: {priority}
"""
# Lines of the keys above: shed_extra 6, concurrency_limit 10, priority 15.
GOOD = {"max_inflight": 100, "shed_extra": "dry_run: false", "climit": "off",
        "priority": "normal"}
LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<msg>\S.*)$")


class ShedConfigTests(GatewayTestCase):
    def check(self, **change):
        values = dict(GOOD, **change)
        text = CONF.format(port=free_port(), **values)
        path = write_file(text, "shed-conf")
        return path, run_gateway_cmd(["-t", "-c", path])

    def assertInvalid(self, line, col=None, message=None, **change):
        path, p = self.check(**change)
        self.assertEqual(p.returncode, 1, "exit status for %r; stderr %r" % (change, p.stderr))
        located = [m for m in map(LOCATED.match, p.stderr.splitlines()) if m]
        self.assertTrue(located, "no FILE:LINE:COL: message on stderr for %r: %r"
                        % (change, p.stderr))
        m = located[0]
        self.assertEqual(m["file"], path)
        self.assertEqual(int(m["line"]), line, "line of %r for %r" % (m.group(0), change))
        if col is not None:
            self.assertEqual(int(m["col"]), col, "column of %r for %r" % (m.group(0), change))
        if message is not None:
            self.assertIn(message, m["msg"])
        return m["msg"]

    def test_valid_values_pass(self):
        for change in ({}, {"climit": "adaptive"}, {"climit": 8}, {"priority": "critical"},
                       {"priority": "sheddable"},
                       {"shed_extra": "target_queue_delay: 1m"},
                       {"shed_extra": "max_loop_lag: 10ms"},
                       {"shed_extra": "retry_after: 5s"},
                       {"shed_extra": "dry_run: true"}):
            _, p = self.check(**change)
            self.assertEqual(p.returncode, 0, "%r refused: %r" % (change, p.stderr))

    def test_unknown_priority(self):
        msg = self.assertInvalid(15, message="expected critical, normal or sheddable",
                                 priority="urgent")
        self.assertIn("urgent", msg)

    def test_bad_concurrency_limits(self):
        self.assertIn("concurrency_limit", self.assertInvalid(10, climit=0))
        self.assertIn("concurrency_limit", self.assertInvalid(10, climit="fast"))
        self.assertIn("concurrency_limit", self.assertInvalid(10, climit=-3))

    def test_unknown_shedding_key(self):
        msg = self.assertInvalid(6, col=3, shed_extra="max_infligth: 5")
        self.assertIn("max_infligth", msg)

    def test_out_of_range_shedding_values(self):
        self.assertInvalid(5, max_inflight=0)
        self.assertInvalid(6, shed_extra="target_queue_delay: 5m")
        self.assertInvalid(6, shed_extra="retry_after: soon")
        self.assertInvalid(6, shed_extra="dry_run: maybe")

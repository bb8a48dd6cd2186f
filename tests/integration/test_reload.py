"""Config reload (SPEC section 9 and the admin contract): POST /reload and
SIGHUP; refused invalid configs (FILE:LINE:COL errors, old config serving);
routes added and removed; breaker and outlier state kept for routes and
upstreams that keep their names; listeners added and removed without
disturbing the others; 20 reloads under keep-alive load without a failed
request and without leaking descriptors or memory.

Every wait is a poll with a deadline, or the end of a request the test
started.
"""

import re
import signal
import threading

from admintest import AdminTestCase
from gwtest import (Conn, HttpError, connect_refused, free_port, poll_until, route,
                    upstream)

FAST_BACKOFF = {"base": "1ms", "max": "5ms"}


class ReloadTestCase(AdminTestCase):
    def conf_with(self, gw, routes=None, upstreams=None, **top):
        """gw's current config dict with some parts replaced."""
        conf = dict(gw.config_dict)
        if routes is not None:
            conf["routes"] = routes
        if upstreams is not None:
            conf["upstreams"] = upstreams
        conf.update(top)
        return conf

    def reload_ok(self, gw, conf):
        body = self.reload_with(gw, conf, 200)
        self.assertIs(body.get("ok"), True, "POST /reload answer %r" % body)
        self.assertIsInstance(body.get("config"), dict, "POST /reload answer %r" % body)
        gw.config_dict = conf
        return body

    def wait_answer(self, gw, path, status, code=None, timeout=2.0, port=None):
        """Polls (new connection each time) until path answers status (and
        X-Gateway-Error code); returns that Response."""
        last = []

        def check():
            r = fetch_port(port or gw.port, path)
            last[:] = [r]
            return r if (r.status == status and r.header("X-Gateway-Error") == code) else None
        r = poll_until(check, timeout, interval=0.02)
        if not r:
            self.fail("%s never answered %d %s within %.1fs; last: %s"
                      % (path, status, code or "", timeout, last[0].describe() if last else None))
        return r


def fetch_port(port, path):
    with Conn(port) as c:
        c.request("GET", path)
        return c.read_response()


class InvalidReloadTests(ReloadTestCase):
    def test_post_reload_invalid_is_refused_and_old_config_serves(self):
        stub = self.start_stub("u", "echo")
        gw = self.start_admin_gateway({"u": upstream(stub)},
                                      [route("a", "u", path_prefix="/a")])
        before = gw.admin.json("/status")["config"]
        c = self.connect(gw)
        c.request("GET", "/a/1")
        self.assertStatus(c.read_response(), 200)
        # A route naming an unknown upstream and an unknown key.
        bad = self.conf_with(gw, routes=[route("a", "u", path_prefix="/a"),
                                         route("b", "missing", path_prefix="/b")])
        bad["upstreams"] = {"u": upstream(stub, no_such_key=1)}
        body = self.reload_with(gw, bad, expect=400)
        self.assertIs(body.get("ok"), False, body)
        errors = body.get("errors")
        self.assertTrue(isinstance(errors, list) and len(errors) >= 2,
                        "two errors expected (unknown upstream, unknown key): %r" % errors)
        for e in errors:
            self.assertRegex(e, r"^%s:\d+:\d+: \S" % re.escape(gw.config_path))
        lines = gw.config_text.splitlines()
        err_lines = sorted(int(e[len(gw.config_path) + 1:].split(":", 1)[0]) for e in errors)
        for n in err_lines:
            self.assertTrue(1 <= n <= len(lines), "error line %d out of the file" % n)
        want = {next(i + 1 for i, l in enumerate(lines) if "no_such_key" in l),
                next(i + 1 for i, l in enumerate(lines) if "missing" in l)}
        self.assertTrue(want <= set(err_lines), "errors should point at lines %r: %r"
                        % (sorted(want), errors))
        # The old config serves, on the old connection and on new ones.
        c.request("GET", "/a/2")
        self.assertStatus(c.read_response(), 200)
        self.assertStatus(self.fetch(gw, "GET", "/a/3"), 200)
        self.assertGatewayError(self.fetch(gw, "GET", "/b/1"), 404, "no_route")
        after = gw.admin.json("/status")["config"]
        self.assertEqual(after["hash"], before["hash"], "the refused config replaced the old one")
        self.assertEqual(after["reloads"], before["reloads"])
        self.assertTrue(isinstance(after["last_reload_error"], str) and after["last_reload_error"],
                        "config.last_reload_error after a refused reload: %r" % after)
        self.assertTrue(gw.wait_stderr(re.escape(gw.config_path) + r":\d+:\d+: ", timeout=2.0),
                        "the refused reload's errors are not logged:\n%s" % gw.stderr_text())
        m = self.metrics(gw)
        self.assertEqual(m.value("gateway_reloads_total", result="error"), 1)
        self.assertEqual(m.total("gateway_reloads_total", result="ok"), 0)

    def test_sighup_invalid_logs_and_keeps_serving(self):
        stub = self.start_stub("u", "echo")
        gw = self.start_admin_gateway({"u": upstream(stub)},
                                      [route("a", "u", path_prefix="/a")])
        gw.rewrite_config(gw.config_text.replace("path_prefix: /a", "path_prefix: 12\n"
                                                 "    bogus: [1, 2"))
        mark = len(gw.stderr_lines())
        gw.proc.send_signal(signal.SIGHUP)
        found = gw.wait_stderr(re.escape(gw.config_path) + r":\d+:\d+: ", timeout=3.0,
                               start=mark)
        self.assertTrue(found, "no FILE:LINE:COL error logged after SIGHUP with an invalid"
                               " file:\n%s" % gw.stderr_text())
        self.assertTrue(gw.alive(), "the gateway died on SIGHUP with an invalid file")
        self.assertStatus(self.fetch(gw, "GET", "/a/x"), 200)
        st = gw.admin.json("/status")
        self.assertIsInstance(st["config"]["last_reload_error"], str)
        self.assertEqual(st["config"]["reloads"], 0)

    def test_sighup_valid_applies(self):
        stub = self.start_stub("u", "echo")
        gw = self.start_admin_gateway({"u": upstream(stub)},
                                      [route("a", "u", path_prefix="/a")])
        conf = self.conf_with(gw, routes=[route("a", "u", path_prefix="/a"),
                                          route("b", "u", path_prefix="/b")])
        gw.rewrite_config(conf)
        gw.proc.send_signal(signal.SIGHUP)
        self.wait_answer(gw, "/b/x", 200, timeout=3.0)
        st = self.wait_status(gw, lambda s: s["config"]["reloads"] == 1, what="reloads 1")
        self.assertEqual([r["name"] for r in st["routes"]], ["a", "b"])
        self.assertTrue(gw.alive())


class ValidReloadTests(ReloadTestCase):
    def test_route_added_then_removed(self):
        stub = self.start_stub("u", "echo")
        gw = self.start_admin_gateway({"u": upstream(stub)},
                                      [route("a", "u", path_prefix="/a")])
        st0 = gw.admin.json("/status")
        c = self.connect(gw)
        c.request("GET", "/a/1")
        self.assertStatus(c.read_response(), 200)
        self.assertGatewayError(self.fetch(gw, "GET", "/b/1"), 404, "no_route")

        body = self.reload_ok(gw, self.conf_with(gw, routes=[route("a", "u", path_prefix="/a"),
                                                             route("b", "u", path_prefix="/b")]))
        st1 = gw.admin.json("/status")
        self.assertEqual(body["config"], st1["config"], "POST /reload config == /status config")
        self.assertNotEqual(st1["config"]["hash"], st0["config"]["hash"])
        self.assertEqual(st1["config"]["reloads"], 1)
        r = self.wait_answer(gw, "/b/1", 200)
        self.assertEqual(r.json()["path"], "/b/1")
        c.request("GET", "/b/2")  # the old keep-alive connection sees it too
        self.assertStatus(c.read_response(), 200)
        self.assertEqual([x["name"] for x in st1["routes"]], ["a", "b"])
        # counters carried over
        self.assertGreaterEqual(self.find(st1["routes"], "a")["requests"], 1)

        self.reload_ok(gw, self.conf_with(gw, routes=[route("b", "u", path_prefix="/b")]))
        self.wait_answer(gw, "/a/3", 404, "no_route")
        c.request("GET", "/a/4")
        self.assertGatewayError(c.read_response(), 404, "no_route")
        self.assertStatus(self.fetch(gw, "GET", "/b/3"), 200)
        st2 = gw.admin.json("/status")
        self.assertEqual([x["name"] for x in st2["routes"]], ["b"])
        self.assertEqual(st2["config"]["reloads"], 2)

    def test_in_flight_request_finishes_on_its_config(self):
        """A request in flight (1.5s at the stub) on a route the reload
        removes completes with 200."""
        stub = self.start_stub("u", "echo")
        stub.set_path("/a/slow", "echo", delay=1.5)
        gw = self.start_admin_gateway({"u": upstream(stub)},
                                      [route("a", "u", path_prefix="/a", timeout="10s")])
        c = self.connect(gw, timeout=10)
        c.request("GET", "/a/slow")
        self.assertTrue(stub.wait_requests(1, 5.0))
        self.reload_ok(gw, self.conf_with(gw, routes=[route("b", "u", path_prefix="/b")]))
        r = c.read_response(timeout=10)
        self.assertStatus(r, 200, "the in-flight request on the removed route")
        self.assertEqual(r.json()["path"], "/a/slow")
        self.wait_answer(gw, "/a/x", 404, "no_route")

    def test_workers_change_is_warned_and_rest_applied(self):
        stub = self.start_stub("u", "echo")
        gw = self.start_admin_gateway({"u": upstream(stub)},
                                      [route("a", "u", path_prefix="/a")], workers=1)
        mark = len(gw.stderr_lines())
        self.reload_ok(gw, self.conf_with(gw, routes=[route("a", "u", path_prefix="/a"),
                                                      route("b", "u", path_prefix="/b")],
                                          workers=2))
        self.assertTrue(gw.wait_stderr(r"(?i)workers.*restart|restart.*workers", timeout=2.0,
                                       start=mark),
                        "no warning that the workers change needs a restart:\n%s"
                        % gw.stderr_text())
        self.wait_answer(gw, "/b/x", 200)


class StateKeptTests(ReloadTestCase):
    def test_tripped_breaker_stays_open_across_reload(self):
        """The breaker of route r trips on real 503s (open_duration 60s);
        a reload that keeps r (and adds a route) keeps it open: requests
        still fail fast without reaching the upstream, even though the
        upstream is healthy again."""
        stub = self.start_stub("bad", "503")
        other = self.start_stub("other", "echo")
        brk = {"min_requests": 5, "failure_ratio": 0.5, "window": "10s", "open_duration": "60s"}
        gw = self.start_admin_gateway({"u": upstream(stub), "o": upstream(other)},
                                      [route("r", "u", path_prefix="/r", circuit_breaker=brk)])
        for i in range(40):
            r = self.fetch(gw, "GET", "/r/%d" % i)
            if r.header("X-Gateway-Error") == "circuit_open":
                break
        else:
            self.fail("the breaker never tripped")
        br = self.route_status(gw, "r")["breaker"]
        self.assertEqual((br["state"], br["forced"]), ("open", None))
        stub.set("echo")
        seen = len(stub.requests)
        self.reload_ok(gw, self.conf_with(gw, routes=[
            route("r", "u", path_prefix="/r", circuit_breaker=brk),
            route("o", "o", path_prefix="/o")]))
        self.wait_answer(gw, "/o/x", 200)
        br = self.route_status(gw, "r")["breaker"]
        self.assertEqual((br["state"], br["forced"]), ("open", None),
                         "breaker of r after the reload")
        for i in range(5):
            self.assertGatewayError(self.fetch(gw, "GET", "/r/after%d" % i), 503, "circuit_open")
        self.assertEqual(len(stub.requests), seen, "requests reached the upstream through an"
                                                   " open breaker after the reload")

    def test_outlier_ejection_kept_across_reload(self):
        good, bad = self.start_stub("good", "echo"), self.start_stub("bad", "503")
        od = {"consecutive_failures": 2, "base_ejection_time": "60s", "max_ejection_percent": 50}
        ups = {"u": upstream(good, bad, outlier_detection=od)}
        gw = self.start_admin_gateway(ups, [route("r", "u", path_prefix="/r")])

        def ejected():
            self.fetch(gw, "GET", "/r/x")
            return self.server_status(gw, "u", bad.address)["ejected"]
        self.assertTrue(poll_until(ejected, 10.0, interval=0), "bad server never ejected")
        other = self.start_stub("other", "echo")
        ups2 = {"u": upstream(good, bad, outlier_detection=od), "o": upstream(other)}
        self.reload_ok(gw, self.conf_with(gw, upstreams=ups2,
                                          routes=[route("r", "u", path_prefix="/r"),
                                                  route("o", "o", path_prefix="/o")]))
        self.wait_answer(gw, "/o/x", 200)
        srv = self.server_status(gw, "u", bad.address)
        self.assertEqual((srv["ejected"], srv["ejections"]), (True, 1),
                         "the ejected server after the reload: %r" % srv)
        seen = len(bad.requests)
        for i in range(6):
            self.assertStatus(self.fetch(gw, "GET", "/r/after%d" % i), 200)
        self.assertEqual(len(bad.requests), seen, "the ejected server got requests after reload")

    def test_route_counters_survive_reload(self):
        stub = self.start_stub("u", "echo")
        gw = self.start_admin_gateway({"u": upstream(stub)}, [route("a", "u", path_prefix="/a")])
        for i in range(4):
            self.assertStatus(self.fetch(gw, "GET", "/a/%d" % i), 200)
        self.wait_status(gw, lambda s: self.find(s["routes"], "a")["requests"] == 4,
                         what="route a requests 4")
        self.reload_ok(gw, self.conf_with(gw, routes=[route("a", "u", path_prefix="/a",
                                                            timeout="7s")]))
        self.assertStatus(self.fetch(gw, "GET", "/a/5"), 200)
        st = self.wait_status(gw, lambda s: self.find(s["routes"], "a")["requests"] >= 5,
                              what="route a requests 5")
        a = self.find(st["routes"], "a")
        self.assertEqual((a["requests"], a["responses"]["2xx"]), (5, 5),
                         "route counters after a reload")


class ListenerTests(ReloadTestCase):
    def test_listener_added_then_removed(self):
        stub = self.start_stub("u", "echo")
        gw = self.start_admin_gateway({"u": upstream(stub)}, [route("a", "u")])
        p1, p2 = gw.port, free_port()
        c1 = self.connect(gw)
        c1.request("GET", "/before")
        self.assertStatus(c1.read_response(), 200)

        self.reload_ok(gw, self.conf_with(gw, listen=["127.0.0.1:%d" % p1, "127.0.0.1:%d" % p2]))
        self.assertTrue(poll_until(lambda: not connect_refused(p2, 0.5), 3.0),
                        "the added listener %d never accepted" % p2)
        self.assertStatus(fetch_port(p2, "/on-p2"), 200)
        c1.request("GET", "/still")  # the first listener's open keep-alive connection
        self.assertStatus(c1.read_response(), 200, "keep-alive connection on the first listener")
        self.assertStatus(fetch_port(p1, "/new-on-p1"), 200)
        c2 = self.connect(p2)
        c2.request("GET", "/ka-p2")
        self.assertStatus(c2.read_response(), 200)

        self.reload_ok(gw, self.conf_with(gw, listen=["127.0.0.1:%d" % p2]))
        self.assertTrue(poll_until(lambda: connect_refused(p1, 0.5), 3.0),
                        "the removed listener %d still accepts connections" % p1)
        self.assertStatus(fetch_port(p2, "/p2-after"), 200)
        c2.request("GET", "/ka-p2-after")
        self.assertStatus(c2.read_response(), 200,
                          "keep-alive connection on the listener that stays")


class LoadGen:
    """n keep-alive connections, each a thread sending GETs one after the
    other until stopped; a failure (status other than 200, a closed
    connection, a timeout) is recorded and the connection replaced."""

    def __init__(self, port, paths, n=4):
        self.port = port
        self.paths = paths
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures = []
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(n)]
        for t in self.threads:
            t.start()

    def run(self, i):
        c = None
        k = 0
        while not self.stop_flag.is_set():
            path = self.paths[(i + k) % len(self.paths)] + "/%d-%d" % (i, k)
            k += 1
            try:
                if c is None:
                    c = Conn(self.port, timeout=5.0)
                c.request("GET", path)
                r = c.read_response(5.0)
                if r.status != 200:
                    raise HttpError("%s: %s" % (path, r.describe()))
                with self.lock:
                    self.ok += 1
            except (OSError, HttpError) as e:
                with self.lock:
                    self.failures.append("conn %d %s: %s" % (i, path, str(e)[:300]))
                if c is not None:
                    c.close()
                c = None
        if c is not None:
            c.close()

    def count(self):
        with self.lock:
            return self.ok

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(10)


class ReloadUnderLoadTests(ReloadTestCase):
    RELOADS = 20

    def test_20_reloads_under_keepalive_load(self):
        """4 keep-alive connections send requests without pause while the
        config is reloaded 20 times (two valid files, alternating): every
        response is 200 and no connection is dropped; afterwards the
        descriptor count is back near where it was and VmRSS has not grown
        much."""
        s1, s2 = self.start_stub("s1", "echo"), self.start_stub("s2", "echo")
        ups = {"u": upstream(s1, s2)}
        routes_a = [route("a", "u", path_prefix="/a"), route("b", "u", path_prefix="/b")]
        routes_b = [route("a", "u", path_prefix="/a", timeout="9s"),
                    route("b", "u", path_prefix="/b"), route("c", "u", path_prefix="/c")]
        gw = self.start_admin_gateway(ups, routes_a, workers=2, access_log="off")
        conf_a = self.conf_with(gw)
        conf_b = self.conf_with(gw, routes=routes_b)
        # Warm up (upstream keep-alive pools filled), then measure.
        load = LoadGen(gw.port, ["/a", "/b"])
        self.addCleanup(load.stop)
        self.assertTrue(poll_until(lambda: load.count() >= 200, 10.0), "load generator stuck")
        fds_before = gw.fd_count()
        rss_before = gw.vm_rss_kib()
        for i in range(self.RELOADS):
            done = load.count()
            self.reload_ok(gw, conf_b if i % 2 == 0 else conf_a)
            # some requests between two reloads
            self.assertTrue(poll_until(lambda: load.count() >= done + 20, 5.0),
                            "no progress after reload %d; failures: %r" % (i + 1, load.failures[:5]))
        load.stop()
        self.assertEqual(load.failures, [], "failed requests during reloads (%d ok)" % load.ok)
        self.assertGreater(load.ok, 400)
        st = gw.admin.json("/status")
        self.assertEqual(st["config"]["reloads"], self.RELOADS)
        fds = []
        settled = poll_until(lambda: fds.append(gw.fd_count()) or fds[-1] <= fds_before + 8, 5.0,
                             interval=0.1)
        self.assertTrue(settled, "descriptors: %d before the reloads, %d after (limit +8)"
                        % (fds_before, fds[-1]))
        rss_after = gw.vm_rss_kib()
        self.assertLess(rss_after - rss_before, 16 * 1024,
                        "VmRSS grew from %d KiB to %d KiB over %d reloads (under ASan, run with"
                        " ASAN_OPTIONS=quarantine_size_mb=16 as tests/run-tests.sh does)"
                        % (rss_before, rss_after, self.RELOADS))
        self.assertTrue(gw.alive())

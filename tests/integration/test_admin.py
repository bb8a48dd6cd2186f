"""The admin API (SPEC section 7 and the admin contract): every endpoint,
the /status schema and what it reflects (breakers, ejections, shedding,
flags), the operator overrides, bearer-token auth, config errors around
`admin:`, bad inputs, and an admin API that still answers while the proxy
worker holds hundreds of requests.

Every wait is a poll with a deadline, or the end of a request the test
started. Nothing is asserted about durations.
"""

import os
import re
import signal
import socket
import subprocess
import threading
import time

from admintest import (AdminClient, AdminTestCase, admin_section, media_type, parse_json)
from gwtest import (Conn, Response, free_port, make_config, poll_until, route,
                    to_yaml, upstream, write_file)
import gwtest

FAST_BACKOFF = {"base": "1ms", "max": "5ms"}
TOKEN = "s3cret-Token_0123456789"


def held_request(port, path, results, i, timeout=30.0):
    try:
        with Conn(port, timeout=timeout) as c:
            c.request("GET", path)
            results[i] = c.read_response(timeout)
    except Exception as e:  # noqa: BLE001 - reported by the test
        results[i] = e


def start_held(port, path, n=1, timeout=30.0):
    results = [None] * n
    threads = [threading.Thread(target=held_request, args=(port, path, results, i, timeout),
                                daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    return threads, results


class AdminBase(AdminTestCase):
    def assertJsonAnswer(self, status, headers, body, want_status, what):
        self.assertEqual(status, want_status, "%s: %d %r" % (what, status, body[:300]))
        self.assertEqual(media_type(headers), "application/json",
                         "%s: Content-Type %r" % (what, headers.get("content-type")))
        return parse_json(body, what)

    def get_path(self, gw, path, headers=()):
        """A request through the proxy port: the Response."""
        return self.fetch(gw, "GET", path, headers)


# ---------------------------------------------------------------------------

class EndpointTests(AdminBase):
    def test_healthz_readyz_and_index(self):
        stub = self.start_stub("u", "echo")
        gw = self.start_admin_gateway({"u": upstream(stub)}, [route("r", "u")])
        a = gw.admin
        body = self.assertJsonAnswer(*a.get("/healthz"), 200, "GET /healthz")
        self.assertEqual(body, {"status": "ok"})
        body = self.assertJsonAnswer(*a.get("/readyz"), 200, "GET /readyz")
        self.assertEqual(body, {"status": "ready"})
        status, headers, page = a.get("/")
        self.assertEqual(status, 200, "GET /: %r" % page[:300])
        self.assertEqual(media_type(headers), "text/html", "GET / Content-Type")
        self.assertIn(b"<html", page.lower(), "GET / is not an HTML page: %r" % page[:300])
        # The proxy port does not serve the admin API: /healthz there is routed.
        r = self.get_path(gw, "/healthz")
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["server"], "u", "proxy port answered /healthz itself")

    def test_log_line_names_admin_port_when_listen_port_is_0(self):
        """admin.listen 127.0.0.1:0: the log says "admin API on
        127.0.0.1:PORT" with the port the kernel chose, and it answers."""
        stub = self.start_stub("u", "echo")
        gw = self.start_gateway({"u": upstream(stub)}, [route("r", "u")],
                                admin={"listen": "127.0.0.1:0"})
        found = gw.wait_stderr(r"admin API on 127\.0\.0\.1:(\d+)", timeout=3.0)
        self.assertTrue(found, "no 'admin API on 127.0.0.1:PORT' line:\n%s" % gw.stderr_text())
        port = int(re.search(r"admin API on 127\.0\.0\.1:(\d+)", found[1]).group(1))
        self.assertNotEqual(port, 0, "the log line shows port 0, not the chosen port")
        status, _, body = AdminClient(port).get("/healthz")
        self.assertEqual(status, 200, body)

    def test_no_admin_section_means_no_admin_api(self):
        """Without `admin:` nothing listens on the default 127.0.0.1:9901
        on behalf of this gateway (checked via the process's sockets)."""
        stub = self.start_stub("u", "echo")
        gw = self.start_gateway({"u": upstream(stub)}, [route("r", "u")])
        self.assertStatus(self.fetch(gw, "GET", "/x"), 200)
        self.assertFalse(gw.wait_stderr(r"admin API on", timeout=0.3),
                         "an admin API was started without an admin: section:\n%s"
                         % gw.stderr_text())
        self.assertEqual(listening_ports(gw.pid), {gw.port},
                         "the gateway listens on other ports than its one listen address")

    def test_status_schema_and_values(self):
        a1, a2, p1 = (self.start_stub("a1", "echo"), self.start_stub("a2", "echo"),
                      self.start_stub("p1", "echo"))
        upstreams = {"cat": upstream(a1, a2, balance="round_robin", concurrency_limit=12),
                     "pay": upstream(p1)}
        routes = [route("checkout", "pay", path_prefix="/checkout", priority="critical",
                        circuit_breaker={"min_requests": 20, "failure_ratio": 0.5,
                                         "window": "10s", "open_duration": "30s"}),
                  route("catalog", "cat", path_prefix="/catalog"),
                  route("recs", "cat", path_prefix="/recs", priority="sheddable",
                        flag={"name": "recommendations", "when_off": {"status": 404}})]
        gw = self.start_admin_gateway(upstreams, routes, shedding={"max_inflight": 500},
                                      flags={"recommendations": "on", "rollout": "10%"})
        t_start = time.time()
        c = self.connect(gw)
        for i in range(3):
            c.request("GET", "/catalog/%d" % i)
            self.assertStatus(c.read_response(), 200)
        for i in range(2):
            c.request("GET", "/checkout/%d" % i)
            self.assertStatus(c.read_response(), 200)
        c.request("GET", "/nothing")
        self.assertGatewayError(c.read_response(), 404, "no_route")

        status, headers, raw = gw.admin.get("/status")
        st = self.assertJsonAnswer(status, headers, raw, 200, "GET /status")
        for key in ("version", "pid", "uptime_seconds", "draining", "config", "inflight",
                    "connections", "overload", "redis", "routes", "upstreams", "flags"):
            self.assertIn(key, st, "top-level key of /status")
        ver = subprocess.run([gwtest.GATEWAY, "-v"], capture_output=True, text=True, timeout=5)
        self.assertTrue(isinstance(st["version"], str) and st["version"]
                        and st["version"] in ver.stdout,
                        "version %r not in `gateway -v`: %r" % (st["version"], ver.stdout))
        self.assertEqual(st["pid"], gw.pid)
        self.assertIsInstance(st["uptime_seconds"], (int, float))
        self.assertTrue(0 <= st["uptime_seconds"] < 120, st["uptime_seconds"])
        self.assertIs(st["draining"], False)
        cf = st["config"]
        for key in ("file", "hash", "loaded_at", "reloads", "last_reload_error"):
            self.assertIn(key, cf, "key of /status config")
        self.assertTrue(os.path.samefile(cf["file"], gw.config_path),
                        "config.file %r is not %r" % (cf["file"], gw.config_path))
        self.assertRegex(cf["hash"], r"^[0-9a-f]{16}$")
        self.assertRegex(cf["loaded_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
        loaded = time.mktime(time.strptime(cf["loaded_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        self.assertLess(abs(loaded - t_start), 60, "loaded_at %s is not about now (UTC)"
                        % cf["loaded_at"])
        self.assertEqual(cf["reloads"], 0)
        self.assertIsNone(cf["last_reload_error"])
        self.assertIsInstance(st["inflight"], int)
        self.assertIsInstance(st["connections"], int)
        self.assertGreaterEqual(st["connections"], 1, "connection c is open")
        ov = st["overload"]
        for key in ("level", "source", "reason", "max_inflight", "dry_run", "shed"):
            self.assertIn(key, ov, "key of /status overload")
        self.assertEqual(ov["level"], 0)
        self.assertEqual(ov["source"], "auto")
        self.assertIsInstance(ov["reason"], str)
        self.assertEqual(ov["max_inflight"], 500)
        self.assertIs(ov["dry_run"], False)
        self.assertEqual(ov["shed"], {"critical": 0, "normal": 0, "sheddable": 0})
        self.assertEqual(st["redis"], {"configured": False, "connected": False})

        self.assertEqual([r["name"] for r in st["routes"]], ["checkout", "catalog", "recs"],
                         "routes in file order")
        rs = {r["name"]: r for r in st["routes"]}
        for r in st["routes"]:
            for key in ("name", "priority", "upstream", "breaker", "requests", "responses",
                        "retries", "budget_exhausted", "shed", "rate_limited"):
                self.assertIn(key, r, "key of route %s" % r.get("name"))
            for key in ("state", "forced", "window_tries", "window_failures",
                        "consecutive_failures"):
                self.assertIn(key, r["breaker"], "key of route %s breaker" % r["name"])
            self.assertEqual(set(r["responses"]), {"1xx", "2xx", "3xx", "4xx", "5xx"})
        self.assertEqual((rs["checkout"]["priority"], rs["checkout"]["upstream"]),
                         ("critical", "pay"))
        self.assertEqual((rs["catalog"]["priority"], rs["catalog"]["upstream"]), ("normal", "cat"))
        self.assertEqual(rs["recs"]["priority"], "sheddable")
        self.assertEqual(rs["checkout"]["breaker"]["state"], "closed")
        self.assertIsNone(rs["checkout"]["breaker"]["forced"])
        self.assertEqual(rs["catalog"]["breaker"],
                         {"state": "none", "forced": None, "window_tries": 0,
                          "window_failures": 0, "consecutive_failures": 0},
                         "a route without circuit_breaker")

        def counted(s):
            r = {x["name"]: x for x in s["routes"]}
            return (r["catalog"]["requests"] == 3 and r["checkout"]["requests"] == 2
                    and r["catalog"]["responses"]["2xx"] == 3
                    and r["checkout"]["responses"]["2xx"] == 2)
        st = self.wait_status(gw, counted, what="catalog 3 requests 2xx, checkout 2 requests 2xx")
        rs = {r["name"]: r for r in st["routes"]}
        self.assertEqual(rs["catalog"]["responses"], {"1xx": 0, "2xx": 3, "3xx": 0, "4xx": 0,
                                                      "5xx": 0})
        self.assertEqual(rs["recs"]["requests"], 0)
        for name in ("catalog", "checkout"):
            for key in ("retries", "budget_exhausted", "shed", "rate_limited"):
                self.assertEqual(rs[name][key], 0, "%s.%s" % (name, key))
        self.assertGreaterEqual(rs["checkout"]["breaker"]["window_tries"], 2,
                                "the breaker's window counts the 2 tries")
        self.assertEqual(rs["checkout"]["breaker"]["window_failures"], 0)

        self.assertEqual([u["name"] for u in st["upstreams"]], ["cat", "pay"])
        us = {u["name"]: u for u in st["upstreams"]}
        for u in st["upstreams"]:
            for key in ("name", "balance", "concurrency_limit", "inflight", "queue", "servers"):
                self.assertIn(key, u, "key of upstream %s" % u.get("name"))
            self.assertEqual(u["queue"], {"critical": 0, "normal": 0, "sheddable": 0})
            for s in u["servers"]:
                for key in ("address", "healthy", "ejected", "ejections", "inflight",
                            "open_connections"):
                    self.assertIn(key, s, "key of a server of %s" % u["name"])
                self.assertIs(s["healthy"], True)
                self.assertIs(s["ejected"], False)
                self.assertEqual(s["ejections"], 0)
                self.assertIsInstance(s["inflight"], int)
                self.assertIsInstance(s["open_connections"], int)
        self.assertEqual(us["cat"]["balance"], "round_robin")
        self.assertEqual(us["cat"]["concurrency_limit"], 12)
        self.assertIsNone(us["pay"]["concurrency_limit"], "concurrency_limit off -> null")
        self.assertEqual([s["address"] for s in us["cat"]["servers"]], [a1.address, a2.address])
        self.assertEqual([s["address"] for s in us["pay"]["servers"]], [p1.address])
        # keep-alive connections to the upstream stay open after the answers
        # (per-server figures are published by the workers periodically)
        self.wait_status(gw, lambda s: sum(x["open_connections"] for x in self.find(
            s["upstreams"], "cat")["servers"]) >= 1, what="an open connection to upstream cat")

        self.assertEqual(sorted(st["flags"], key=lambda f: f["name"]),
                         [{"name": "recommendations", "value": "on", "source": "default"},
                          {"name": "rollout", "value": "10%", "source": "default"}])

        # uptime grows
        later = self.wait_status(gw, lambda s: s["uptime_seconds"] > st["uptime_seconds"],
                                 timeout=3.0, what="uptime_seconds growing")
        self.assertGreater(later["uptime_seconds"], st["uptime_seconds"])

    def test_readyz_503_while_draining(self):
        """SIGTERM while a slow request (3s at the stub) keeps the gateway
        alive: /readyz answers 503 {"status":"draining"}, /healthz still
        200, /status says draining; the slow request completes; exit 0."""
        stub = self.start_stub("slow", "echo", delay=3.0)
        gw = self.start_admin_gateway({"u": upstream(stub)}, [route("r", "u", timeout="10s")],
                                      drain_timeout="10s")
        threads, results = start_held(gw.port, "/slow")
        self.assertTrue(stub.wait_requests(1, 5.0), "the slow request never reached the stub")
        gw.signal(signal.SIGTERM)
        seen = []

        def draining():
            st, h, b = gw.admin.get("/readyz", timeout=2.0)
            seen[:] = [(st, b)]
            return st == 503
        self.assertTrue(poll_until(draining, 2.5),
                        "/readyz did not answer 503 while draining; last: %r" % seen)
        status, headers, body = gw.admin.get("/readyz")
        self.assertEqual(self.assertJsonAnswer(status, headers, body, 503, "GET /readyz draining"),
                         {"status": "draining"})
        self.assertEqual(gw.admin.get("/healthz")[0], 200, "/healthz while draining")
        self.assertIs(gw.admin.json("/status")["draining"], True)
        self.assertIsNone(results[0], "the slow request ended before the checks (slow machine?)")
        for t in threads:
            t.join(15)
        self.assertIsInstance(results[0], Response, repr(results[0]))
        self.assertStatus(results[0], 200, "the in-flight request during the drain")
        self.assertEqual(gw.wait_exit(10), 0, "exit status after the drain; stderr:\n%s"
                         % gw.stderr_text())


def listening_ports(pid):
    """TCP ports in LISTEN state on sockets the process holds."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(m.group(1))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A" and parts[9] in inodes:  # LISTEN
                        ports.add(int(parts[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


# ---------------------------------------------------------------------------

class AuthTests(AdminBase):
    def token_gateway(self):
        stub = self.start_stub("u", "echo")
        self.stub = stub
        return self.start_admin_gateway({"u": upstream(stub)},
                                        [route("r", "u", path_prefix="/r"),
                                         route("s", "u", path_prefix="/s",
                                               priority="sheddable")],
                                        token=TOKEN, token_env="GW_TEST_ADMIN_TOKEN_X")

    def assertUnauthorized(self, answer, what):
        status, headers, body = answer
        self.assertEqual(status, 401, "%s: %d %r" % (what, status, body[:300]))
        self.assertTrue((headers.get("www-authenticate") or "").startswith("Bearer"),
                        "%s: WWW-Authenticate %r" % (what, headers.get("www-authenticate")))
        self.assertEqual(media_type(headers), "application/json", what)
        b = parse_json(body, what)
        self.assertEqual(b.get("error"), "unauthorized", "%s: %r" % (what, b))
        self.assertIsInstance(b.get("message"), str, "%s: message in %r" % (what, b))

    def test_token_required_except_health_probes(self):
        gw = self.token_gateway()
        noauth = AdminClient(gw.admin_port)
        self.assertUnauthorized(noauth.get("/status"), "GET /status without a token")
        self.assertUnauthorized(noauth.get("/metrics"), "GET /metrics without a token")
        # GET / is the static page (no data: its script sends the token).
        status, headers, page = noauth.get("/")
        self.assertEqual((status, media_type(headers)), (200, "text/html"),
                         "GET / without a token: %d %r" % (status, page[:200]))
        for wrong in ("wrong", TOKEN[:-1], TOKEN + "x", TOKEN.lower(), TOKEN + " x"):
            self.assertUnauthorized(noauth.get("/status", token=wrong),
                                    "GET /status with token %r" % wrong)
        self.assertUnauthorized(noauth.get("/status", headers=[("Authorization", "Basic "
                                                                 + TOKEN)]),
                                "GET /status with Basic auth")
        self.assertUnauthorized(noauth.get("/status", headers=[("Authorization", "Bearer")]),
                                "GET /status with an empty Bearer")
        # Mutations without the token change nothing.
        self.assertUnauthorized(noauth.post("/shed?level=1"), "POST /shed without a token")
        self.assertUnauthorized(noauth.post("/breakers/r?state=open"),
                                "POST /breakers without a token")
        self.assertUnauthorized(noauth.post("/reload"), "POST /reload without a token")
        self.assertStatus(self.fetch(gw, "GET", "/s/x"), 200, "sheddable route after refused"
                          " POST /shed")
        self.assertStatus(self.fetch(gw, "GET", "/r/x"), 200, "route after refused POST /breakers")
        st = gw.admin.json("/status")  # with the right token
        self.assertEqual((st["overload"]["level"], st["overload"]["source"]), (0, "auto"))
        self.assertIsNone(self.find(st["routes"], "r")["breaker"].get("forced"))
        self.assertEqual(st["config"]["reloads"], 0)
        # The right token.
        self.assertEqual(gw.admin.get("/metrics")[0], 200)
        self.assertEqual(gw.admin.get("/")[0], 200)
        self.assertEqual(gw.admin.get("/nope")[0], 404, "unknown path with the token")
        # Probes need none.
        self.assertEqual(noauth.get("/healthz")[0], 200)
        self.assertEqual(noauth.get("/readyz")[0], 200)
        self.assertEqual(noauth.get("/healthz", token="wrong")[0], 200,
                         "/healthz with a wrong token")

    def test_non_loopback_admin_listen_without_token_is_config_error(self):
        """admin.listen 0.0.0.0:PORT without token_env: `gateway -t` exits 1
        with FILE:LINE:COL pointing at the listen value; with token_env it is
        valid."""
        port, aport = free_port(), free_port()
        conf = make_config(port, {"u": upstream("127.0.0.1:9")}, [route("r", "u")])
        conf["admin"] = {"listen": "0.0.0.0:%d" % aport}
        text = to_yaml(conf)
        path = write_file(text, "admin-open")
        want_line = next(i + 1 for i, l in enumerate(text.splitlines())
                         if "0.0.0.0:%d" % aport in l)
        res = subprocess.run([gwtest.GATEWAY, "-t", "-c", path], capture_output=True, text=True,
                             timeout=10, stdin=subprocess.DEVNULL)
        self.assertEqual(res.returncode, 1, "gateway -t: exit %d, stderr %r"
                         % (res.returncode, res.stderr))
        m = re.search(r"^%s:(\d+):(\d+): .+" % re.escape(path), res.stderr, re.M)
        self.assertTrue(m, "no FILE:LINE:COL: message on stderr: %r" % res.stderr)
        self.assertEqual(int(m.group(1)), want_line, "line of the error: %r" % res.stderr)
        self.assertIn("token", m.group(0).lower(), "the message should say a token is needed")

        conf["admin"]["token_env"] = "GW_TEST_ADMIN_TOKEN_Y"
        path2 = write_file(to_yaml(conf), "admin-open-token")
        env = dict(os.environ, GW_TEST_ADMIN_TOKEN_Y=TOKEN)
        res = subprocess.run([gwtest.GATEWAY, "-t", "-c", path2], capture_output=True, text=True,
                             timeout=10, stdin=subprocess.DEVNULL, env=env)
        self.assertEqual(res.returncode, 0, "non-loopback admin with token_env: %r" % res.stderr)

    def test_token_env_unset_or_empty_fails_start(self):
        """token_env naming an unset (then an empty) variable: `gateway -c`
        exits 1 with one line on stderr that names the variable."""
        stub = self.start_stub("u", "echo")
        for value in (None, ""):
            port, aport = free_port(), free_port()
            conf = make_config(port, {"u": upstream(stub)}, [route("r", "u")])
            conf["admin"] = admin_section(aport, token_env="GW_TEST_UNSET_TOKEN_Z")
            path = write_file(to_yaml(conf), "admin-unset")
            env = dict(os.environ)
            env.pop("GW_TEST_UNSET_TOKEN_Z", None)
            if value is not None:
                env["GW_TEST_UNSET_TOKEN_Z"] = value
            try:
                res = subprocess.run([gwtest.GATEWAY, "-c", path], capture_output=True, text=True,
                                     timeout=10, stdin=subprocess.DEVNULL, env=env)
            except subprocess.TimeoutExpired:
                self.fail("the gateway started (ran 10s) with token_env naming a%s variable"
                          % (" unset" if value is None else "n empty"))
            what = "unset" if value is None else "empty"
            self.assertEqual(res.returncode, 1, "%s token variable: exit %d, stderr %r"
                             % (what, res.returncode, res.stderr))
            lines = [l for l in res.stderr.splitlines() if l.strip()]
            self.assertEqual(len(lines), 1, "%s token variable: stderr should be one line: %r"
                             % (what, res.stderr))
            self.assertIn("GW_TEST_UNSET_TOKEN_Z", lines[0])


# ---------------------------------------------------------------------------

class BreakerTests(AdminBase):
    BREAKER = {"min_requests": 5, "failure_ratio": 0.5, "window": "10s", "open_duration": "30s"}

    def trip(self, gw, limit=40):
        """Requests until circuit_open; the number of requests sent before."""
        for i in range(limit):
            r = self.fetch(gw, "GET", "/trip/%d" % i)
            if r.header("X-Gateway-Error") == "circuit_open":
                return i
        self.fail("no circuit_open after %d requests to a failing upstream" % limit)

    def test_status_shows_breaker_tripped_by_failures(self):
        stub = self.start_stub("bad", "503")
        gw = self.start_admin_gateway({"u": upstream(stub)},
                                      [route("r", "u", circuit_breaker=dict(self.BREAKER))])
        sent = self.trip(gw)
        st = self.wait_status(gw, lambda s: self.find(s["routes"], "r")["breaker"]["state"]
                              == "open", what="route r breaker open")
        r = self.find(st["routes"], "r")
        self.assertIsNone(r["breaker"]["forced"], "tripped, not forced")
        st = self.wait_status(gw, lambda s: self.find(s["routes"], "r")["requests"] == sent + 1,
                              what="route r requests == %d" % (sent + 1))
        r = self.find(st["routes"], "r")
        self.assertEqual(r["responses"]["5xx"], sent + 1, "503 answers (upstream + circuit_open)")

    def test_force_breaker_open_closed_auto(self):
        stub = self.start_stub("u", "echo")
        gw = self.start_admin_gateway({"u": upstream(stub)},
                                      [route("r", "u", circuit_breaker=dict(self.BREAKER))])
        self.assertStatus(self.fetch(gw, "GET", "/a"), 200)
        status, body = gw.admin.post_json("/breakers/r?state=open")
        self.assertEqual(status, 200, body)
        self.assertEqual(body, {"ok": True, "route": "r", "forced": "open"})
        br = self.route_status(gw, "r")["breaker"]
        self.assertEqual((br["state"], br["forced"]), ("open", "open"))
        seen = len(stub.requests)
        self.assertGatewayError(self.fetch(gw, "GET", "/b"), 503, "circuit_open")
        self.assertEqual(len(stub.requests), seen, "a request reached the upstream through a"
                                                   " breaker forced open")

        status, body = gw.admin.post_json("/breakers/r?state=auto")
        self.assertEqual((status, body), (200, {"ok": True, "route": "r", "forced": None}))
        br = self.route_status(gw, "r")["breaker"]
        self.assertEqual((br["state"], br["forced"]), ("closed", None))
        self.assertStatus(self.fetch(gw, "GET", "/c"), 200)
        self.assertEqual(len(stub.requests), seen + 1)

    def test_force_open_a_route_without_circuit_breaker(self):
        """Every route can be forced open, circuit_breaker or not (the
        operator's kill switch for a route): 503 circuit_open with a
        Retry-After, nothing reaches the upstream, /status and the metric say
        open; `auto` gives it back, and failures never trip it by themselves."""
        stub = self.start_stub("u", "echo")
        gw = self.start_admin_gateway({"u": upstream(stub)}, [route("plain", "u")])
        br = self.route_status(gw, "plain")["breaker"]
        self.assertEqual((br["state"], br["forced"]), ("none", None))
        status, body = gw.admin.post_json("/breakers/plain?state=open")
        self.assertEqual((status, body), (200, {"ok": True, "route": "plain", "forced": "open"}))
        br = self.route_status(gw, "plain")["breaker"]
        self.assertEqual((br["state"], br["forced"]), ("open", "open"))
        seen = len(stub.requests)
        r = self.fetch(gw, "GET", "/x")
        self.assertGatewayError(r, 503, "circuit_open")
        self.assertEqual(r.header("Retry-After"), "30", "a forced open is told open_duration")
        self.assertEqual(len(stub.requests), seen)
        self.assertEqual(self.metrics(gw).value("gateway_circuit_state", route="plain"), 1)

        status, body = gw.admin.post_json("/breakers/plain?state=auto")
        self.assertEqual((status, body), (200, {"ok": True, "route": "plain", "forced": None}))
        self.assertStatus(self.fetch(gw, "GET", "/y"), 200)
        self.assertEqual(self.metrics(gw).value("gateway_circuit_state", route="plain"), 0)
        stub.set("503")
        for i in range(30):
            self.assertStatus(self.fetch(gw, "GET", "/fail/%d" % i), 503)
        self.assertEqual(self.route_status(gw, "plain")["breaker"]["state"], "none",
                         "a route without circuit_breaker never trips by itself")

    def test_force_closed_lets_traffic_through_a_tripped_breaker(self):
        stub = self.start_stub("bad", "503")
        gw = self.start_admin_gateway({"u": upstream(stub)},
                                      [route("r", "u", circuit_breaker=dict(self.BREAKER))])
        self.trip(gw)
        status, body = gw.admin.post_json("/breakers/r?state=closed")
        self.assertEqual((status, body), (200, {"ok": True, "route": "r", "forced": "closed"}))
        self.assertEqual(self.route_status(gw, "r")["breaker"]["forced"], "closed")
        seen = len(stub.requests)
        r = self.fetch(gw, "GET", "/through")
        self.assertStatus(r, 503)
        self.assertNotGatewayError(r)  # the upstream's own 503, not circuit_open
        self.assertEqual(len(stub.requests), seen + 1)
        status, body = gw.admin.post_json("/breakers/r?state=auto")
        self.assertEqual((status, body), (200, {"ok": True, "route": "r", "forced": None}))


class EjectionTests(AdminBase):
    def test_status_shows_ejected_server(self):
        good, bad = self.start_stub("good", "echo"), self.start_stub("bad", "503")
        gw = self.start_admin_gateway(
            {"u": upstream(good, bad, outlier_detection={
                "consecutive_failures": 2, "base_ejection_time": "30s",
                "max_ejection_percent": 50})},
            [route("r", "u")])

        def ejected():
            self.fetch(gw, "GET", "/x")
            s = self.server_status(gw, "u", bad.address)
            return s["ejected"]
        self.assertTrue(poll_until(ejected, 10.0, interval=0),
                        "the failing server was never shown ejected: %r"
                        % self.upstream_status(gw, "u"))
        ups = self.upstream_status(gw, "u")
        srv = {s["address"]: s for s in ups["servers"]}
        self.assertEqual((srv[bad.address]["ejected"], srv[bad.address]["ejections"]), (True, 1))
        self.assertEqual((srv[good.address]["ejected"], srv[good.address]["ejections"]), (False, 0))
        seen = len(bad.requests)
        for i in range(6):
            self.assertStatus(self.fetch(gw, "GET", "/after/%d" % i), 200)
        self.assertEqual(len(bad.requests), seen, "an ejected server received requests")


class ShedTests(AdminBase):
    def test_forced_shed_level_and_auto(self):
        stub = self.start_stub("u", "echo")
        gw = self.start_admin_gateway(
            {"u": upstream(stub)},
            [route("crit", "u", path_prefix="/crit", priority="critical"),
             route("norm", "u", path_prefix="/norm"),
             route("shed", "u", path_prefix="/shed", priority="sheddable")])
        c = self.connect(gw)

        def get(path):
            c.request("GET", path)
            return c.read_response()
        self.assertStatus(get("/shed/0"), 200)
        status, body = gw.admin.post_json("/shed?level=1")
        self.assertEqual((status, body), (200, {"ok": True, "forced": 1}))
        ov = self.status(gw)["overload"]
        self.assertEqual((ov["level"], ov["source"]), (1, "override"))
        seen = len(stub.requests)
        r = get("/shed/1")
        self.assertGatewayError(r, 503, "shed")
        self.assertIsNotNone(r.header("Retry-After"))
        self.assertEqual(len(stub.requests), seen, "a shed request reached the upstream")
        self.assertStatus(get("/norm/1"), 200)
        self.assertStatus(get("/crit/1"), 200)

        status, body = gw.admin.post_json("/shed?level=2")
        self.assertEqual((status, body), (200, {"ok": True, "forced": 2}))
        self.assertGatewayError(get("/norm/2"), 503, "shed")
        self.assertStatus(get("/crit/2"), 200)
        st = self.wait_status(gw, lambda s: s["overload"]["shed"]["sheddable"] == 1
                              and s["overload"]["shed"]["normal"] == 1,
                              what="overload.shed sheddable 1, normal 1")
        self.assertEqual(st["overload"]["shed"]["critical"], 0)
        self.assertEqual(self.find(st["routes"], "shed")["shed"], 1)
        self.assertEqual(self.find(st["routes"], "norm")["shed"], 1)

        status, body = gw.admin.post_json("/shed?level=0")
        self.assertEqual((status, body), (200, {"ok": True, "forced": 0}))
        ov = self.status(gw)["overload"]
        self.assertEqual((ov["level"], ov["source"]), (0, "override"))
        self.assertStatus(get("/shed/3"), 200)

        status, body = gw.admin.post_json("/shed?level=1")
        self.assertEqual(status, 200)
        status, body = gw.admin.post_json("/shed?level=auto")
        self.assertEqual((status, body), (200, {"ok": True, "forced": None}))
        ov = self.wait_status(gw, lambda s: s["overload"]["source"] == "auto"
                              and s["overload"]["level"] == 0,
                              what="overload back to auto, level 0")["overload"]
        self.assertStatus(get("/shed/4"), 200)


class FlagTests(AdminBase):
    def test_flag_override_and_auto(self):
        new, old = self.start_stub("new", "hello"), self.start_stub("old", "hello")
        gw = self.start_admin_gateway(
            {"new": upstream(new), "old": upstream(old)},
            [route("v2", "new", path_prefix="/v2",
                   flag={"name": "feat", "when_off": {"upstream": "old"}}),
             route("gated", "new", path_prefix="/gated",
                   flag={"name": "feat", "when_off": {"status": 404}})],
            flags={"feat": "on"})
        c = self.connect(gw)

        def served_by(path="/v2/x"):
            c.request("GET", path)
            r = c.read_response()
            if r.header("X-Gateway-Error"):
                return r.header("X-Gateway-Error")
            return r.json()["server"]

        def flag():
            return self.find(self.status(gw)["flags"], "feat", "flag")
        self.assertEqual(served_by(), "new")
        self.assertEqual(flag(), {"name": "feat", "value": "on", "source": "default"})

        status, body = gw.admin.post_json("/flags/feat?value=off")
        self.assertEqual((status, body), (200, {"ok": True, "flag": "feat", "value": "off",
                                                "source": "override"}))
        self.assertEqual(flag(), {"name": "feat", "value": "off", "source": "override"})
        self.assertEqual(served_by(), "old", "route with when_off upstream, flag forced off")
        self.assertEqual(served_by("/gated/x"), "flag_off")

        status, body = gw.admin.post_json("/flags/feat?value=0%25")
        self.assertEqual((status, body), (200, {"ok": True, "flag": "feat", "value": "0%",
                                                "source": "override"}))
        self.assertEqual(served_by(), "old", "flag at 0%")
        status, body = gw.admin.post_json("/flags/feat?value=100%25")
        self.assertEqual((status, body["value"]), (200, "100%"))
        self.assertEqual(served_by(), "new", "flag at 100%")

        status, body = gw.admin.post_json("/flags/feat?value=off")
        self.assertEqual(status, 200)
        status, body = gw.admin.post_json("/flags/feat?value=auto")
        self.assertEqual(status, 200, body)
        self.assertEqual((body.get("ok"), body.get("flag"), body.get("value"), body.get("source")),
                         (True, "feat", "on", "default"), "value=auto answer: %r" % body)
        self.assertEqual(flag(), {"name": "feat", "value": "on", "source": "default"})
        self.assertEqual(served_by(), "new")
        self.assertEqual(served_by("/gated/y"), "new")


# ---------------------------------------------------------------------------

class BadInputTests(AdminBase):
    def test_bad_inputs(self):
        stub = self.start_stub("u", "echo")
        gw = self.start_admin_gateway(
            {"u": upstream(stub)},
            [route("r", "u", circuit_breaker=BreakerTests.BREAKER)],
            flags={"feat": "on"})
        a = gw.admin
        cases = [
            ("POST", "/breakers/nope?state=open", 404),
            ("POST", "/breakers/r?state=bogus", 400),
            ("POST", "/breakers/r?state=", 400),
            ("POST", "/breakers/r", 400),
            ("POST", "/shed?level=3", 400),
            ("POST", "/shed?level=-1", 400),
            ("POST", "/shed?level=high", 400),
            ("POST", "/shed", 400),
            ("POST", "/flags/feat?value=maybe", 400),
            ("POST", "/flags/feat?value=101%25", 400),
            ("POST", "/flags/feat?value=", 400),
            ("POST", "/flags/feat", 400),
            ("POST", "/flags/nope?value=on", 404),
        ]
        for method, path, want in cases:
            status, headers, body = a.request(method, path)
            self.assertEqual(status, want, "%s %s: %d %r" % (method, path, status, body[:200]))
        # None of them changed anything.
        st = a.json("/status")
        self.assertIsNone(self.find(st["routes"], "r")["breaker"]["forced"])
        self.assertEqual(st["overload"]["source"], "auto")
        self.assertEqual(self.find(st["flags"], "feat", "flag")["source"], "default")

        for path in ("/reload", "/shed?level=1", "/breakers/r?state=open", "/flags/feat?value=on"):
            status, headers, body = a.get(path)
            self.assertEqual(status, 405, "GET %s: %d %r" % (path, status, body[:200]))
            allow = [m.strip() for m in (headers.get("allow") or "").split(",")]
            self.assertIn("POST", allow, "GET %s: Allow header %r" % (path, headers.get("allow")))
        for path in ("/status", "/healthz", "/metrics"):
            status, headers, body = a.post(path)
            self.assertEqual(status, 405, "POST %s: %d %r" % (path, status, body[:200]))
            allow = [m.strip() for m in (headers.get("allow") or "").split(",")]
            self.assertIn("GET", allow, "POST %s: Allow header %r" % (path, headers.get("allow")))
        st = a.json("/status")
        self.assertEqual(st["config"]["reloads"], 0, "GET /reload reloaded")
        self.assertEqual(st["overload"]["source"], "auto", "GET /shed forced a level")

        for path in ("/nope", "/status/x", "/breakers", "/healthzz", "/metrics.json"):
            status, headers, body = a.get(path)
            b = self.assertJsonAnswer(status, headers, body, 404, "GET %s" % path)
            self.assertEqual(b.get("error"), "not_found", "GET %s: %r" % (path, b))


# ---------------------------------------------------------------------------

class SaturationTests(AdminBase):
    N = 300

    def test_admin_answers_while_worker_holds_many_requests(self):
        """1 worker, 300 client connections each with a request the stub
        holds for 8s: /healthz, /status and /metrics answer meanwhile (bounded
        wait, no timing assertion), and /status counts the requests in
        flight."""
        stub = self.start_stub("slow", "echo", delay=8.0)
        gw = self.start_admin_gateway({"u": upstream(stub, max_connections=1000)},
                                      [route("r", "u", timeout="20s")], workers=1,
                                      access_log="off",
                                      limits={"max_connections": 2000})
        socks = []

        def close_all():
            for s in socks:
                s.close()
        self.addCleanup(close_all)
        req = b"GET /held HTTP/1.1\r\nHost: gw.test\r\n\r\n"
        for _ in range(self.N):
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
            s.sendall(req)
            socks.append(s)
        got = poll_until(lambda: len(stub.requests) >= self.N * 0.9, 10.0)
        self.assertTrue(got, "only %d of %d held requests reached the stub"
                        % (len(stub.requests), self.N))
        held_until = stub.requests[0].time + 8.0  # the first held request's answer
        status, _, body = gw.admin.get("/healthz", timeout=10.0)
        self.assertEqual(status, 200, body)
        st = gw.admin.json("/status", timeout=10.0)
        answered_while_held = time.monotonic() < held_until - 0.5
        self.assertEqual(gw.admin.get("/metrics", timeout=10.0)[0], 200)
        if answered_while_held:  # else the machine is so slow that they ended
            self.assertGreaterEqual(st["inflight"], int(self.N * 0.9),
                                    "/status inflight while %d requests are held" % self.N)
            self.assertGreaterEqual(st["connections"], int(self.N * 0.9))

"""gatewayctl status and reload against the admin API (the admin contract).

GatewayctlAdminTests run the real gateway with an `admin:` section and check
what an operator sees: `status` as aligned tables (summary, ROUTES,
UPSTREAMS, SERVERS, FLAGS) with the config's real names, `status --json` as
the gateway's body, a breaker forced through the admin API, `reload` of an
invalid file (the gateway's FILE:LINE:COL errors, exit 1) and of a valid one
("reloaded: FILE (hash H)"), and the bearer token from admin.token_env.

FakeAdminTests stand a small HTTP server in for the gateway, to answer what
a real one never should: strings with terminal control sequences (shown
escaped), bodies that are not JSON or not the status schema (exit 1 with a
clear line), refusals with odd bodies.

Every gatewayctl run is bounded by CTL_TIMEOUT; every wait is a poll with a
deadline.
"""

import copy
import http.server
import json
import os
import re
import subprocess
import threading
import time
import unittest

import gwtest
from admintest import AdminTestCase
from gwtest import free_port, make_config, route, to_yaml, upstream, write_file

CTL_TIMEOUT = 10  # seconds: a bound for every gatewayctl run, never reached when it works
TOKEN = "ctl-Token_0123456789"
TOKEN_ENV = "GW_TEST_CTL_ADMIN_TOKEN"

STATUS_KEYS = ("version", "pid", "uptime_seconds", "draining", "config", "inflight",
               "connections", "overload", "redis", "routes", "upstreams", "flags")
ROUTE_HEADS = ["NAME", "PRIORITY", "BREAKER", "REQUESTS", "5XX", "RETRIES", "BUDGET_EXHAUSTED",
               "SHED", "RATE_LIMITED"]
UPSTREAM_HEADS = ["NAME", "BALANCE", "LIMIT", "INFLIGHT", "QUEUE_C/N/S"]
SERVER_HEADS = ["UPSTREAM", "SERVER", "HEALTH", "EJECTED", "EJECTIONS", "INFLIGHT", "OPEN_CONNS"]
FLAG_HEADS = ["NAME", "VALUE", "SOURCE"]
REFUSED = "reload refused, the gateway keeps its current configuration:"


class Run:
    def __init__(self, proc, seconds):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        self.seconds = seconds

    def __repr__(self):
        return "<gatewayctl exit %d after %.2fs; stdout=%r stderr=%r>" % (
            self.rc, self.seconds, self.out[-3000:], self.err[-1500:])


def run_ctl(*args, env=None):
    """gatewayctl with args; env: variables to set (a value None removes one)."""
    full_env = dict(os.environ)
    for k, v in (env or {}).items():
        if v is None:
            full_env.pop(k, None)
        else:
            full_env[k] = v
    started = time.monotonic()
    proc = subprocess.run([gwtest.built_program("gatewayctl")] + list(args), capture_output=True,
                          text=True, timeout=CTL_TIMEOUT, stdin=subprocess.DEVNULL, env=full_env,
                          errors="surrogateescape")
    return Run(proc, time.monotonic() - started)


def cells(line):
    """A table row's cells: columns are two or more spaces apart."""
    return re.split(r" {2,}", line.strip())


def section(out, title):
    """(header line, [row lines]) of the table titled `title` in status output."""
    lines = out.split("\n")
    if title not in lines:
        raise AssertionError("no %s table in:\n%s" % (title, out))
    i = lines.index(title)
    rows = []
    for line in lines[i + 2:]:
        if not line:
            break
        rows.append(line)
    return lines[i + 1], rows


def table(out, title):
    """(header cells, {first cell: row cells}, [row cells in order])."""
    head, rows = section(out, title)
    parsed = [cells(r) for r in rows]
    return cells(head), {r[0]: r for r in parsed}, parsed


def summary(out):
    """The block above the tables: {label: value}."""
    block = {}
    for line in out.split("\n"):
        if not line:
            break
        m = re.fullmatch(r"(\S+(?: \S+)?) {2,}(.*)", line)
        if not m:
            raise AssertionError("summary line %r is not LABEL  VALUE" % line)
        block[m.group(1)] = m.group(2)
    return block


class CtlAssertions:
    def assertCtlOk(self, r):
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.err, "", r)

    def assertCtlFailure(self, r, pattern):
        """Exit 1, nothing on stdout, one line on stderr matching pattern."""
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(r.out, "", r)
        lines = r.err.splitlines()
        self.assertEqual(len(lines), 1, r)
        self.assertRegex(lines[0], pattern, r)

    def assertLeftAligned(self, out, title):
        """Every left-aligned cell starts in its header's column."""
        head, rows = section(out, title)
        names = cells(head)
        starts = [head.index(n) for n in names]
        for row in rows:
            for name, start, cell in zip(names, starts, cells(row)):
                if cell.isdigit() or re.fullmatch(r"\d+/\d+/\d+|off", cell):
                    continue  # numbers are right-aligned
                self.assertEqual(row[start:start + len(cell)], cell,
                                 "%s: %s cell %r not under its header in:\n%s"
                                 % (title, name, cell, out))

    def assertTerminalSafe(self, text):
        """Printable ASCII and newlines only: nothing a terminal would act on."""
        bad = [c for c in text if not (c == "\n" or " " <= c <= "~")]
        self.assertEqual(bad, [], "bytes a terminal would interpret in:\n%r" % text)


# ---------------------------------------------------------------------------
# the real gateway

class GatewayctlAdminTests(AdminTestCase, CtlAssertions):

    def start(self, **kw):
        """Upstreams catalog (two stubs, concurrency_limit) and checkout (one),
        routes checkout (critical, breaker) and catalog, two flags."""
        self.a1, self.a2, self.p1 = (self.start_stub("a1", "echo"), self.start_stub("a2", "echo"),
                                     self.start_stub("p1", "echo"))
        upstreams = {"catalog": upstream(self.a1, self.a2, concurrency_limit=12),
                     "checkout": upstream(self.p1)}
        routes = [route("checkout", "checkout", path_prefix="/checkout", priority="critical",
                        circuit_breaker={"min_requests": 20, "failure_ratio": 0.5,
                                         "window": "10s", "open_duration": "30s"}),
                  route("catalog", "catalog", path_prefix="/catalog")]
        gw = self.start_admin_gateway(upstreams, routes,
                                      flags={"recommendations": "on", "checkout_v2": "10%"}, **kw)
        return gw

    def ctl(self, gw, *args, env=None):
        return run_ctl("-c", gw.config_path, *args, env=env)

    def test_status_prints_the_tables_with_real_names(self):
        gw = self.start()
        c = self.connect(gw)
        for i in range(3):
            c.request("GET", "/catalog/%d" % i)
            self.assertStatus(c.read_response(), 200)
        for i in range(2):
            c.request("GET", "/checkout/%d" % i)
            self.assertStatus(c.read_response(), 200)
        st = self.wait_status(gw, lambda s: sum(r["requests"] for r in s["routes"]) == 5,
                              what="5 requests counted")
        r = self.ctl(gw, "status")
        self.assertCtlOk(r)
        self.assertTerminalSafe(r.out)

        top = summary(r.out)
        for label in ("gateway", "config", "hash", "loaded at", "reloads", "overload", "shed",
                      "in-flight", "connections", "redis"):
            self.assertIn(label, top, r)
        self.assertEqual(top["config"], gw.config_path, r)
        self.assertEqual(top["hash"], st["config"]["hash"], r)
        self.assertEqual(top["loaded at"], st["config"]["loaded_at"], r)
        self.assertEqual(top["reloads"], "0", r)
        self.assertIn("pid %d" % gw.pid, top["gateway"], r)
        self.assertIn(st["version"], top["gateway"], r)
        self.assertRegex(top["overload"], r"^level 0 \(auto\)", r)
        self.assertEqual(top["redis"], "not configured", r)

        heads, routes, order = table(r.out, "ROUTES")
        self.assertEqual(heads, ROUTE_HEADS, r)
        self.assertEqual([row[0] for row in order], [x["name"] for x in st["routes"]], r)
        self.assertEqual(routes["checkout"][:4], ["checkout", "critical", "closed", "2"], r)
        self.assertEqual(routes["catalog"][:4], ["catalog", "normal", "none", "3"], r)
        for row in order:
            self.assertEqual(row[4:], ["0"] * 5, r)
        self.assertLeftAligned(r.out, "ROUTES")

        heads, ups, _ = table(r.out, "UPSTREAMS")
        self.assertEqual(heads, UPSTREAM_HEADS, r)
        self.assertEqual(set(ups), {"catalog", "checkout"}, r)
        self.assertRegex(ups["catalog"][2], r"^\d+$", r)  # concurrency_limit: a number
        self.assertEqual(ups["checkout"][2], "off", r)
        for row in ups.values():
            self.assertEqual(row[4], "0/0/0", r)

        heads, _, servers = table(r.out, "SERVERS")
        self.assertEqual(heads, SERVER_HEADS, r)
        self.assertEqual(sorted((s[0], s[1]) for s in servers),
                         sorted([("catalog", self.a1.address), ("catalog", self.a2.address),
                                 ("checkout", self.p1.address)]), r)
        for s in servers:
            self.assertEqual(s[2:5], ["up", "no", "0"], r)
        self.assertLeftAligned(r.out, "SERVERS")

        heads, flags, _ = table(r.out, "FLAGS")
        self.assertEqual(heads, FLAG_HEADS, r)
        self.assertEqual(flags["recommendations"], ["recommendations", "on", "default"], r)
        self.assertEqual(flags["checkout_v2"], ["checkout_v2", "10%", "default"], r)
        self.assertLeftAligned(r.out, "FLAGS")

    def test_status_json_prints_the_body_as_is(self):
        gw = self.start()
        for args in (("status", "--json"), ("--json", "status")):
            r = self.ctl(gw, *args)
            self.assertCtlOk(r)
            st = json.loads(r.out)
            for key in STATUS_KEYS:
                self.assertIn(key, st, r)
            for key in ("file", "hash", "loaded_at", "reloads", "last_reload_error"):
                self.assertIn(key, st["config"], r)
            self.assertEqual(st["config"]["file"], gw.config_path)
            self.assertEqual(st["pid"], gw.pid)
            self.assertEqual({x["name"] for x in st["routes"]}, {"checkout", "catalog"})
            self.assertEqual({x["name"] for x in st["upstreams"]}, {"catalog", "checkout"})
            self.assertEqual({x["name"] for x in st["flags"]}, {"recommendations", "checkout_v2"})
        r = self.ctl(gw, "reload", "--json")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("--json", r.err, r)

    def test_status_shows_a_breaker_forced_through_the_admin_api(self):
        gw = self.start()
        for state, shown in (("open", "open (forced)"), ("closed", "closed (forced)"),
                             ("auto", "closed")):
            status, _, body = gw.admin.post("/breakers/checkout?state=" + state)
            self.assertEqual(status, 200, body)
            r = self.ctl(gw, "status")
            self.assertCtlOk(r)
            _, routes, _ = table(r.out, "ROUTES")
            self.assertEqual(routes["checkout"][2], shown, r)
            self.assertEqual(routes["catalog"][2], "none", r)

    def test_reload_of_an_invalid_file_prints_the_gateways_errors_and_exits_1(self):
        gw = self.start()
        before = gw.admin.json("/status")["config"]
        bad = copy.deepcopy(gw.config_dict)
        bad["routes"].append(route("extra", "missing", path_prefix="/extra"))
        gw.rewrite_config(bad)
        r = self.ctl(gw, "reload")
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(r.out, "", r)
        lines = r.err.splitlines()
        self.assertEqual(lines[0], REFUSED, r)
        self.assertGreaterEqual(len(lines), 2, r)
        for line in lines[1:]:
            self.assertRegex(line, r"^%s:\d+:\d+: \S" % re.escape(gw.config_path), r)
        n = next(i + 1 for i, l in enumerate(gw.config_text.splitlines()) if "missing" in l)
        self.assertTrue(any(l.startswith("%s:%d:" % (gw.config_path, n)) for l in lines), r)
        # The gateway kept its configuration; status still works with the
        # broken file, and says so.
        after = gw.admin.json("/status")["config"]
        self.assertEqual(after["hash"], before["hash"])
        r = self.ctl(gw, "status")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(summary(r.out)["hash"], before["hash"], r)
        self.assertRegex(r.err, r"^gatewayctl: note: %s does not load \(%s:\d+:\d+: "
                         % (re.escape(gw.config_path), re.escape(gw.config_path)), r)
        self.assertIn("last error: %s:" % gw.config_path, summary(r.out)["reloads"], r)

    def test_reload_of_a_valid_change_prints_the_file_and_hash(self):
        gw = self.start()
        before = gw.admin.json("/status")["config"]
        conf = copy.deepcopy(gw.config_dict)
        conf["routes"].append(route("extra", "catalog", path_prefix="/extra"))
        gw.rewrite_config(conf)
        r = self.ctl(gw, "reload")
        self.assertCtlOk(r)
        after = gw.admin.json("/status")["config"]
        self.assertNotEqual(after["hash"], before["hash"])
        self.assertEqual(after["reloads"], before["reloads"] + 1)
        self.assertEqual(r.out, "reloaded: %s (hash %s)\n" % (gw.config_path, after["hash"]))
        r = self.ctl(gw, "status")
        self.assertCtlOk(r)
        _, routes, _ = table(r.out, "ROUTES")
        self.assertEqual(set(routes), {"checkout", "catalog", "extra"}, r)
        self.assertEqual(summary(r.out)["reloads"], "1", r)
        self.assertStatus(self.fetch(gw, "GET", "/extra/1"), 200)

    def test_token_from_the_variable_named_by_token_env(self):
        gw = self.start(token=TOKEN, token_env=TOKEN_ENV)
        with_token = {TOKEN_ENV: TOKEN}
        r = self.ctl(gw, "status", env=with_token)
        self.assertCtlOk(r)
        self.assertIn("checkout", table(r.out, "ROUTES")[1], r)
        r = self.ctl(gw, "reload", env=with_token)
        self.assertCtlOk(r)
        self.assertRegex(r.out, r"^reloaded: %s \(hash [0-9a-f]{16}\)\n$"
                         % re.escape(gw.config_path))
        message = (r"^gatewayctl: the admin API at 127\.0\.0\.1:%d refused the token \(401\): "
                   r"is \$%s set to the gateway's admin token\?$" % (gw.admin_port, TOKEN_ENV))
        for env in ({TOKEN_ENV: None}, {TOKEN_ENV: ""}, {TOKEN_ENV: TOKEN + "x"}):
            for cmd in ("status", "reload"):
                r = self.ctl(gw, cmd, env=env)
                self.assertCtlFailure(r, message)
        self.assertEqual(gw.admin.json("/status")["config"]["reloads"], 1)


# ---------------------------------------------------------------------------
# a fake admin API

def fake_status():
    """A /status answer as the contract describes it."""
    return {
        "version": "0.1.0", "pid": 4242, "uptime_seconds": 3725.5, "draining": False,
        "config": {"file": "conf/gateway.yaml", "hash": "9f2c0011aabbccdd",
                   "loaded_at": "2026-12-03T12:00:00Z", "reloads": 2, "last_reload_error": None},
        "inflight": 12, "connections": 40,
        "overload": {"level": 1, "source": "override", "reason": "in-flight 10/2000",
                     "max_inflight": 2000, "dry_run": False,
                     "shed": {"critical": 0, "normal": 5, "sheddable": 17}},
        "redis": {"configured": True, "connected": False},
        "routes": [
            {"name": "checkout", "priority": "critical", "upstream": "checkout",
             "breaker": {"state": "open", "forced": "open", "window_tries": 9,
                         "window_failures": 9, "consecutive_failures": 9},
             "requests": 123456, "responses": {"1xx": 0, "2xx": 100, "3xx": 0, "4xx": 3,
                                               "5xx": 20},
             "retries": 4, "budget_exhausted": 1, "shed": 2, "rate_limited": 3}],
        "upstreams": [
            {"name": "checkout", "balance": "round_robin", "concurrency_limit": None,
             "inflight": 3, "queue": {"critical": 1, "normal": 2, "sheddable": 3},
             "servers": [{"address": "127.0.0.1:9001", "healthy": False, "ejected": True,
                          "ejections": 4, "inflight": 1, "open_connections": 3}]}],
        "flags": [{"name": "recommendations", "value": "on", "source": "override"}],
    }


class FakeAdmin:
    """An HTTP server answering GET /status and POST /reload with fixed
    (status, body) pairs."""

    def __init__(self, status=(200, None), reload=(200, None)):
        self.answers = {"GET": status, "POST": reload}
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self):
                outer.requests.append((self.command, self.path))
                code, body = outer.answers[self.command]
                if body is None:
                    body = json.dumps(fake_status() if self.command == "GET" else
                                      {"ok": True, "config": fake_status()["config"]})
                data = body if isinstance(body, bytes) else body.encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _reply

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = "127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class FakeAdminTests(unittest.TestCase, CtlAssertions):
    maxDiff = 4000

    def setUp(self):
        self.conf = write_file(to_yaml(make_config(free_port(), {"u": upstream("127.0.0.1:9")},
                                                   [route("r", "u")])), "gatewayctl")

    def ctl_with(self, *args, status=(200, None), reload=(200, None)):
        admin = FakeAdmin(status, reload)
        self.addCleanup(admin.close)
        self.admin = admin
        return run_ctl("-c", self.conf, "--admin", admin.address, *args)

    def test_status_tables_from_a_contract_answer(self):
        r = self.ctl_with("status")
        self.assertCtlOk(r)
        top = summary(r.out)
        self.assertEqual(top["gateway"], "0.1.0, pid 4242, up 1h2m5s", r)
        self.assertEqual(top["overload"], "level 1 (override): in-flight 10/2000", r)
        self.assertEqual(top["shed"], "critical 0, normal 5, sheddable 17", r)
        self.assertEqual(top["in-flight"], "12 of 2000", r)
        self.assertEqual(top["connections"], "40", r)
        self.assertEqual(top["redis"], "DISCONNECTED", r)
        _, routes, _ = table(r.out, "ROUTES")
        self.assertEqual(routes["checkout"], ["checkout", "critical", "open (forced)", "123456",
                                              "20", "4", "1", "2", "3"], r)
        _, ups, _ = table(r.out, "UPSTREAMS")
        self.assertEqual(ups["checkout"], ["checkout", "round_robin", "off", "3", "1/2/3"], r)
        _, _, servers = table(r.out, "SERVERS")
        self.assertEqual(servers, [["checkout", "127.0.0.1:9001", "DOWN", "yes", "4", "1", "3"]], r)
        _, flags, _ = table(r.out, "FLAGS")
        self.assertEqual(flags["recommendations"], ["recommendations", "on", "override"], r)
        self.assertEqual(self.admin.requests, [("GET", "/status")])

    def test_strings_from_the_gateway_are_shown_escaped(self):
        st = fake_status()
        st["routes"][0]["name"] = "evil\x1b]0;pwned\x07\x1b[2J"
        st["overload"]["reason"] = "line1\nline2\t\r\x7f\\"
        st["flags"][0]["value"] = "\u202eon\u00e9"
        st["config"]["last_reload_error"] = "x.yaml:1:1: \x1b[31mred"
        r = self.ctl_with("status", status=(200, json.dumps(st)))
        self.assertCtlOk(r)
        self.assertTerminalSafe(r.out)
        self.assertIn("evil\\x1b]0;pwned\\x07\\x1b[2J", r.out)
        self.assertIn("line1\\nline2\\t\\r\\x7f\\\\", r.out)
        self.assertIn("\\xe2\\x80\\xaeon\\xc3\\xa9", r.out)
        self.assertIn("x.yaml:1:1: \\x1b[31mred", r.out)
        self.assertLeftAligned(r.out, "ROUTES")
        self.assertLeftAligned(r.out, "FLAGS")

    def test_status_json_is_the_body_as_is_even_when_it_is_not_the_schema(self):
        r = self.ctl_with("status", "--json", status=(200, '{"odd": [1, 2]}'))
        self.assertCtlOk(r)
        self.assertEqual(r.out, '{"odd": [1, 2]}\n')

    def test_an_answer_that_is_not_json_exits_1(self):
        for body in ("<html>oops</html>", "", '{"version": "0.1.0"', "[1, 2]x"):
            r = self.ctl_with("status", status=(200, body))
            self.assertCtlFailure(r, r"^gatewayctl: GET /status on the admin API at "
                                  r"127\.0\.0\.1:\d+ answered something that is not JSON "
                                  r"\(at byte \d+: .*\); see it with status --json$")

    def test_json_that_is_not_the_status_schema_exits_1_naming_the_field(self):
        def broken(change):
            st = fake_status()
            change(st)
            return json.dumps(st)
        cases = [
            ("[1, 2]", "it is an array, not an object"),
            ("{}", "config is missing"),
            (broken(lambda s: s["config"].pop("hash")), "config.hash is missing"),
            (broken(lambda s: s["routes"][0]["breaker"].update(state=None)),
             "routes[0].breaker.state is null, not a string"),
            (broken(lambda s: s["routes"][0].update(requests="7")),
             "routes[0].requests is a string, not a number"),
            (broken(lambda s: s["routes"].append(3)), "routes[1] is a number, not an object"),
            (broken(lambda s: s["upstreams"][0].update(concurrency_limit="12")),
             "upstreams[0].concurrency_limit is a string, not a number or null"),
            (broken(lambda s: s["upstreams"][0]["servers"][0].pop("healthy")),
             "upstreams[0].servers[0].healthy is missing"),
            (broken(lambda s: s.update(flags={})), "flags is an object, not an array"),
        ]
        for body, why in cases:
            r = self.ctl_with("status", status=(200, body))
            self.assertCtlFailure(r, r"^gatewayctl: GET /status on the admin API at "
                                  r"127\.0\.0\.1:\d+ answered JSON that is not the gateway's "
                                  r"status \(%s\); see it with status --json$" % re.escape(why))

    def test_status_refused_with_another_code_shows_the_first_line_escaped(self):
        r = self.ctl_with("status", status=(503, '{"error":"\x1b[2Jbusy"}\nmore'))
        self.assertCtlFailure(r, r"^gatewayctl: GET /status on the admin API at \S+ answered "
                              r'503: \{"error":"\\x1b\[2Jbusy"\}$')

    def test_reload_answers(self):
        r = self.ctl_with("reload")
        self.assertCtlOk(r)
        self.assertEqual(r.out, "reloaded: conf/gateway.yaml (hash 9f2c0011aabbccdd)\n")
        self.assertEqual(self.admin.requests, [("POST", "/reload")])

        errors = ["gw.yaml:3:1: unknown key 'x'", "gw.yaml:9:12: route 'b': no upstream \x1b[1m"]
        r = self.ctl_with("reload", reload=(400, json.dumps({"ok": False, "errors": errors})))
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(r.out, "", r)
        self.assertEqual(r.err.splitlines(), [REFUSED, "gw.yaml:3:1: unknown key 'x'",
                                              "gw.yaml:9:12: route 'b': no upstream \\x1b[1m"])

        r = self.ctl_with("reload", reload=(400, "bad config"))
        self.assertEqual(r.rc, 1, r)
        lines = r.err.splitlines()
        self.assertEqual(lines[0], REFUSED, r)
        self.assertRegex(lines[1], r"^gatewayctl: the answer does not list the errors "
                         r"\(at byte \d+: .*\): bad config$", r)

        r = self.ctl_with("reload", reload=(200, '{"ok":true}'))
        self.assertCtlFailure(r, r"^gatewayctl: POST /reload on the admin API at \S+ answered "
                              r"200 \(reloaded\) but not with the JSON expected "
                              r"\(config is missing\)$")

        r = self.ctl_with("reload", reload=(500, "internal"))
        self.assertCtlFailure(r, r"^gatewayctl: POST /reload on the admin API at \S+ answered "
                              r"500: internal$")


if __name__ == "__main__":
    unittest.main()

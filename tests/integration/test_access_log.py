"""Access log: one JSON object per request with the contract's keys."""

import json
import os

from gwtest import GatewayTestCase, free_port, poll_until, refused_address, route, tmp_dir, upstream

KEYS = {"time", "request_id", "client", "method", "path", "route", "upstream", "server", "status",
        "bytes", "duration_ms"}


class AccessLogTests(GatewayTestCase):
    def setUp(self):
        self.stub = self.start_stub("log")

    def gateway(self, **conf):
        return self.start_gateway({"u": upstream(self.stub)}, [route("api", "u", "/api")], **conf)

    def assertRecord(self, rec, resp, method, path, status):
        missing = KEYS - set(rec)
        self.assertFalse(missing, "access log record lacks %s: %r" % (sorted(missing), rec))
        self.assertIsInstance(rec["time"], str)
        self.assertTrue(rec["time"], "empty time")
        self.assertEqual((rec["method"], rec["path"], rec["status"]), (method, path, status), repr(rec))
        self.assertIn("127.0.0.1", str(rec["client"]))
        rid = resp.header("X-Request-ID") or (resp.json().get("request_id") if resp.header("X-Gateway-Error") else None)
        self.assertEqual(rec["request_id"], rid, "logged request_id vs the one the client got")
        self.assertIsInstance(rec["bytes"], int)
        self.assertGreaterEqual(rec["bytes"], resp.body_len, "bytes smaller than the body sent: %r" % rec)
        self.assertIsInstance(rec["duration_ms"], (int, float))
        self.assertGreaterEqual(rec["duration_ms"], 0)

    def test_lines_are_json_with_contract_keys(self):
        """Proxied 200s and a 404 no_route each give one JSON line with time,
        request_id, client, method, path, route, upstream, server, status,
        bytes, duration_ms, flushed while the gateway runs."""
        gw = self.gateway()
        r1 = self.fetch(gw, "GET", "/api/a")
        r2 = self.fetch(gw, "POST", "/api/b", body=b"x" * 1000)
        r3 = self.fetch(gw, "GET", "/none")
        recs = gw.access_records(3, timeout=3)
        self.assertEqual(len(recs), 3, "access log lines after 3 requests (stdout must be flushed per"
                                       " line): %r" % gw.stdout_lines())
        by_path = {rec.get("path"): rec for rec in recs}
        self.assertEqual(set(by_path), {"/api/a", "/api/b", "/none"}, repr(recs))
        for resp, method, path, status in ((r1, "GET", "/api/a", 200), (r2, "POST", "/api/b", 200),
                                           (r3, "GET", "/none", 404)):
            self.assertRecord(by_path[path], resp, method, path, status)
        ok = by_path["/api/a"]
        self.assertEqual((ok["route"], ok["upstream"], ok["server"]), ("api", "u", self.stub.address))
        self.assertIn(by_path["/none"]["route"], (None, "", "-"), "route for a no_route request")

    def test_one_line_per_request_on_keepalive(self):
        """10 requests over one connection give 10 lines with 10 distinct request ids."""
        gw = self.gateway()
        c = self.connect(gw)
        for i in range(10):
            c.request("GET", "/api/k%d" % i)
            self.assertStatus(c.read_response(), 200)
        recs = gw.access_records(10, timeout=3)
        self.assertEqual(len(recs), 10)
        self.assertEqual(len({r["request_id"] for r in recs}), 10)

    def test_refused_requests_logged(self):
        """Requests the gateway refuses (400 two Host headers, 405 TRACE) are
        logged too: one line each, with their status."""
        gw = self.gateway()
        for data in (b"GET /api/a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                     b"TRACE /api/a HTTP/1.1\r\nHost: a\r\n\r\n"):
            c = self.connect(gw)
            c.send(data)
            c.read_response()
        recs = gw.access_records(2, timeout=3)
        self.assertEqual(sorted(r.get("status") for r in recs), [400, 405], repr(recs))
        self.assertEqual(self.stub.requests, [])

    def test_duration_reflects_upstream_time(self):
        """A 300 ms upstream delay shows as duration_ms >= 250."""
        self.stub.set("echo", delay=0.3)
        gw = self.gateway()
        self.assertStatus(self.fetch(gw, "GET", "/api/slow"), 200)
        rec = gw.access_records(1, timeout=3)[0]
        self.assertGreaterEqual(rec["duration_ms"], 250, repr(rec))
        self.assertLess(rec["duration_ms"], 5000, repr(rec))

    def test_gateway_errors_logged(self):
        """A 502 (refused upstream) is logged with its status, route and upstream."""
        gw = self.start_gateway({"u": upstream(refused_address())}, [route("api", "u", "/api")])
        r = self.fetch(gw, "GET", "/api/x")
        self.assertStatus(r, 502)
        rec = gw.access_records(1, timeout=3)[0]
        self.assertEqual((rec["status"], rec["route"], rec["upstream"]), (502, "api", "u"), repr(rec))

    def test_access_log_off(self):
        """access_log: off writes nothing to stdout."""
        gw = self.gateway(access_log="off")
        self.assertStatus(self.fetch(gw, "GET", "/api/a"), 200)
        gw.stop()
        self.assertEqual(gw.stdout_lines(), [])

    def test_access_log_to_file(self):
        """access_log: PATH appends JSON lines to that file, none to stdout."""
        path = os.path.join(tmp_dir(), "access-%d.log" % free_port())
        gw = self.gateway(access_log=path)
        self.assertStatus(self.fetch(gw, "GET", "/api/f"), 200)

        def lines():
            try:
                with open(path) as f:
                    return [l for l in f.read().splitlines() if l.strip()]
            except FileNotFoundError:
                return []

        got = poll_until(lambda: lines(), 3)
        self.assertTrue(got, "no line in %s within 3s" % path)
        self.assertEqual(json.loads(got[0])["path"], "/api/f")
        self.assertEqual(gw.stdout_lines(), [])

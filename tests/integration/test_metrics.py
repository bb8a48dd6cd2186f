"""GET /metrics on the admin API (SPEC section 10 and the admin contract):
after traffic of every kind (proxied 200, no route, shed, rate limited,
retried, breaker open) the exposition is valid Prometheus text (promtool),
names every SPEC metric with HELP and TYPE, counts exactly what was sent,
has cumulative histograms, and its counters never go backwards across a
reload.
"""

import shutil
import subprocess

from admintest import AdminTestCase, parse_metrics
from gwtest import route, upstream

FAST_BACKOFF = {"base": "1ms", "max": "5ms"}

# name -> TYPE, every metric of SPEC section 10 and the admin contract.
SPEC_METRICS = {
    "gateway_requests_total": "counter",
    "gateway_request_duration_seconds": "histogram",
    "gateway_upstream_tries_total": "counter",
    "gateway_retries_total": "counter",
    "gateway_retry_budget_exhausted_total": "counter",
    "gateway_circuit_state": "gauge",
    "gateway_shed_total": "counter",
    "gateway_overload_level": "gauge",
    "gateway_inflight_requests": "gauge",
    "gateway_upstream_server_up": "gauge",
    "gateway_flag_enabled": "gauge",
    "gateway_redis_connected": "gauge",
    "gateway_rate_limited_total": "counter",
    "gateway_upstream_concurrency_limit": "gauge",
    "gateway_upstream_queue_length": "gauge",
    "gateway_upstream_queue_wait_seconds": "histogram",
    "gateway_reloads_total": "counter",
    "gateway_config_info": "gauge",
}

DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                    10, float("inf")]

N_OK, N_NOROUTE, N_SHED, N_RL, N_RETRY, N_BRK, N_LIM = 7, 3, 4, 5, 4, 3, 2
N_ALL = N_OK + N_NOROUTE + N_SHED + N_RL + N_RETRY + N_BRK + N_LIM


class MetricsTestCase(AdminTestCase):
    def setUp(self):
        self.ok = self.start_stub("ok", "echo")
        self.bad = self.start_stub("bad", "503")
        self.good = self.start_stub("good", "echo")

    def config_parts(self, extra_route=False):
        upstreams = {"u": upstream(self.ok),
                     "pool": upstream(self.bad, self.good, balance="round_robin"),
                     "lim": upstream(self.ok, concurrency_limit=8)}
        routes = [route("ok", "u", path_prefix="/ok"),
                  route("shed", "u", path_prefix="/shed", priority="sheddable"),
                  route("rl", "u", path_prefix="/rl",
                        rate_limit={"rate": 1, "per": "1m", "burst": 2, "by": "route"}),
                  route("retry", "pool", path_prefix="/retry",
                        retry={"attempts": 3, "on": [503], "backoff": FAST_BACKOFF}),
                  route("brk", "u", path_prefix="/brk",
                        circuit_breaker={"min_requests": 20, "failure_ratio": 0.5,
                                         "window": "10s", "open_duration": "30s"}),
                  route("lim", "lim", path_prefix="/lim")]
        if extra_route:
            routes.append(route("extra", "u", path_prefix="/extra"))
        return upstreams, routes

    def metrics_gateway(self):
        upstreams, routes = self.config_parts()
        self.flags = {"feat": "on", "roll": "25%"}
        return self.start_admin_gateway(upstreams, routes, flags=self.flags, access_log="off")

    def send_traffic(self, gw):
        """Every kind of request; returns the observed counts."""
        seen = {"rl_200": 0, "rl_429": 0}
        c = self.connect(gw)

        def get(path):
            c.request("GET", path)
            return c.read_response()
        for i in range(N_OK):
            self.assertStatus(get("/ok/%d" % i), 200)
        for i in range(N_NOROUTE):
            self.assertGatewayError(get("/none/%d" % i), 404, "no_route")
        status, body = gw.admin.post_json("/shed?level=1")
        self.assertEqual(status, 200, body)
        for i in range(N_SHED):
            self.assertGatewayError(get("/shed/%d" % i), 503, "shed")
        for i in range(N_RL):
            r = get("/rl/%d" % i)
            if r.status == 429:
                self.assertGatewayError(r, 429, "rate_limited")
                seen["rl_429"] += 1
            else:
                self.assertStatus(r, 200)
                seen["rl_200"] += 1
        self.assertEqual((seen["rl_200"], seen["rl_429"]), (2, N_RL - 2),
                         "rate 1/min burst 2: 2 served, the rest 429")
        for i in range(N_RETRY):
            self.assertStatus(get("/retry/%d" % i), 200, "retried request %d" % i)
        self.assertGreaterEqual(len(self.bad.requests), 1, "no try reached the failing server")
        status, body = gw.admin.post_json("/breakers/brk?state=open")
        self.assertEqual(status, 200, body)
        for i in range(N_BRK):
            self.assertGatewayError(get("/brk/%d" % i), 503, "circuit_open")
        for i in range(N_LIM):
            self.assertStatus(get("/lim/%d" % i), 200)
        return seen

    def assertHistograms(self, m):
        """Every histogram: buckets cumulative, +Inf == _count, a _sum."""
        for family, typ in m.type.items():
            if typ != "histogram":
                continue
            series = {}
            for (n, labels, v) in m.samples:
                if n == family + "_bucket":
                    key = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
                    self.assertIn("le", labels, "bucket without le: %s%r" % (n, labels))
                    series.setdefault(key, []).append((float(labels["le"]), v))
            for key, buckets in series.items():
                les = [le for le, _ in buckets]
                self.assertEqual(les, sorted(les), "%s%r buckets not in le order" % (family, key))
                self.assertEqual(les[-1], float("inf"), "%s%r: no +Inf bucket" % (family, key))
                vals = [v for _, v in buckets]
                for a, b in zip(vals, vals[1:]):
                    self.assertLessEqual(a, b, "%s%r buckets not cumulative: %r"
                                         % (family, key, buckets))
                labels = dict(key)
                count = m.value(family + "_count", **labels)
                total = m.value(family + "_sum", **labels)
                self.assertIsNotNone(count, "%s%r: no _count" % (family, key))
                self.assertIsNotNone(total, "%s%r: no _sum" % (family, key))
                self.assertEqual(vals[-1], count, "%s%r: +Inf bucket != _count" % (family, key))
                self.assertGreaterEqual(total, 0)


class MetricsTests(MetricsTestCase):
    def test_exposition_after_every_kind_of_traffic(self):
        gw = self.metrics_gateway()
        seen = self.send_traffic(gw)
        self.metrics_counting(gw, N_ALL)
        n_bad = len(self.bad.requests)
        st = gw.admin.json("/status")

        status, headers, body = gw.admin.get("/metrics")
        self.assertEqual(status, 200, body[:300])
        ctype = (headers.get("content-type") or "").replace(" ", "").lower()
        self.assertEqual(ctype, "text/plain;version=0.0.4;charset=utf-8",
                         "Content-Type %r" % headers.get("content-type"))
        text = body.decode("utf-8")
        m = parse_metrics(text)

        for name, typ in SPEC_METRICS.items():
            self.assertIn(name, m.help, "no # HELP line for %s" % name)
            self.assertTrue(m.help[name].strip(), "empty HELP text for %s" % name)
            self.assertEqual(m.type.get(name), typ, "# TYPE of %s" % name)
        for (n, labels, v) in m.samples:
            self.assertIn(m.family_of(n), m.type, "sample %s has no # TYPE" % n)

        # Counts of what was sent (the shed level is still forced to 1 and
        # the breaker of brk forced open).
        def val(name, **labels):
            v = m.value(name, **labels)
            self.assertIsNotNone(v, "no sample %s%r in:\n%s" % (name, labels, grep(text, name)))
            return v
        self.assertEqual(val("gateway_requests_total", route="ok", code="200"), N_OK)
        self.assertEqual(val("gateway_requests_total", route="", code="404"), N_NOROUTE,
                         "requests without a route count under route=\"\"")
        self.assertEqual(val("gateway_requests_total", route="shed", code="503"), N_SHED)
        self.assertEqual(val("gateway_requests_total", route="rl", code="200"), seen["rl_200"])
        self.assertEqual(val("gateway_requests_total", route="rl", code="429"), seen["rl_429"])
        self.assertEqual(val("gateway_requests_total", route="retry", code="200"), N_RETRY)
        self.assertEqual(val("gateway_requests_total", route="brk", code="503"), N_BRK)
        self.assertEqual(val("gateway_requests_total", route="lim", code="200"), N_LIM)
        self.assertEqual(m.total("gateway_requests_total"), N_ALL,
                         "the sum of gateway_requests_total:\n%s"
                         % grep(text, "gateway_requests_total"))
        self.assertEqual(val("gateway_shed_total", route="shed", priority="sheddable"), N_SHED)
        self.assertEqual(val("gateway_rate_limited_total", route="rl"), seen["rl_429"])
        self.assertEqual(val("gateway_retries_total", route="retry"), n_bad,
                         "one retry per try the failing server answered 503")
        self.assertEqual(val("gateway_upstream_tries_total", route="retry", upstream="pool",
                             result="http_5xx"), n_bad)
        self.assertEqual(val("gateway_upstream_tries_total", route="retry", upstream="pool",
                             result="success"), N_RETRY)
        self.assertEqual(val("gateway_upstream_tries_total", route="ok", upstream="u",
                             result="success"), N_OK)
        self.assertEqual(m.total("gateway_upstream_tries_total", route="brk"), 0,
                         "tries through a breaker forced open")
        self.assertEqual(val("gateway_retry_budget_exhausted_total", route="retry"), 0)
        self.assertEqual(val("gateway_circuit_state", route="brk"), 1, "forced open")
        self.assertEqual(val("gateway_overload_level"), 1, "forced level 1")
        self.assertGreaterEqual(val("gateway_inflight_requests"), 0)
        for up, s in (("u", self.ok), ("pool", self.bad), ("pool", self.good)):
            self.assertEqual(val("gateway_upstream_server_up", upstream=up, server=s.address), 1)
        self.assertEqual(val("gateway_flag_enabled", flag="feat"), 1)
        self.assertAlmostEqual(val("gateway_flag_enabled", flag="roll"), 0.25)
        self.assertEqual(val("gateway_redis_connected"), 0, "no redis configured")
        self.assertEqual(val("gateway_upstream_concurrency_limit", upstream="lim"), 8)
        for prio in ("critical", "normal", "sheddable"):
            self.assertEqual(val("gateway_upstream_queue_length", upstream="lim", priority=prio),
                             0)
        self.assertEqual(val("gateway_config_info", hash=st["config"]["hash"]), 1,
                         "gateway_config_info carries the /status config hash")
        self.assertEqual(len(m.select("gateway_config_info")), 1, "one config_info sample")
        self.assertEqual(m.total("gateway_reloads_total"), 0, "no reload yet")

        # The request duration histogram: the contract's buckets.
        buckets = m.select("gateway_request_duration_seconds_bucket", route="ok")
        self.assertEqual([float(l["le"]) for (_, l, _) in buckets], DURATION_BUCKETS,
                         "buckets of gateway_request_duration_seconds{route=\"ok\"}")
        self.assertEqual(val("gateway_request_duration_seconds_count", route="ok"), N_OK)
        self.assertEqual(val("gateway_request_duration_seconds_count", route="retry"), N_RETRY)
        self.assertHistograms(m)

        # Later: the shed level back to auto, the breaker too.
        self.assertEqual(gw.admin.post_json("/shed?level=auto")[0], 200)
        self.assertEqual(gw.admin.post_json("/breakers/brk?state=auto")[0], 200)
        m2 = self.metrics(gw)
        self.assertEqual(m2.value("gateway_overload_level"), 0)
        self.assertEqual(m2.value("gateway_circuit_state", route="brk"), 0)

    def test_promtool_check_metrics(self):
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool is not installed (tests/deps.sh test installs the Debian"
                          " package prometheus, which ships it)")
        gw = self.metrics_gateway()
        self.send_traffic(gw)
        status, headers, body = gw.admin.get("/metrics")
        self.assertEqual(status, 200)
        res = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                             timeout=30)
        self.assertEqual(res.returncode, 0, "promtool check metrics (exit %d):\n%s%s"
                         % (res.returncode, res.stdout.decode(errors="replace"),
                            res.stderr.decode(errors="replace")))

    def test_counters_never_go_backwards_across_reloads(self):
        """Traffic, a scrape; reload with the same file, then with one more
        route: every counter sample (and histogram bucket, count, sum) of the
        first scrape is in the later ones with a value at least as high;
        gateway_reloads_total{result="ok"} counts the reloads and an invalid
        one counts under result="error"."""
        gw = self.metrics_gateway()
        self.send_traffic(gw)
        before = self.metrics_counting(gw, N_ALL)
        self.reload_with(gw, gw.config_text)
        after1 = self.metrics(gw)
        upstreams, routes = self.config_parts(extra_route=True)
        conf = dict(gw.config_dict, upstreams=upstreams, routes=routes)
        self.reload_with(gw, conf)
        self.assertStatus(self.fetch(gw, "GET", "/extra/x"), 200, "the new route")
        self.assertStatus(self.fetch(gw, "GET", "/ok/again"), 200)
        after2 = self.metrics_counting(gw, N_ALL + 2)
        for later, what in ((after1, "a reload of the same file"),
                            (after2, "a reload with one more route")):
            self.assertCountersKept(before, later, what)
        self.assertEqual(after2.value("gateway_requests_total", route="ok", code="200"), N_OK + 1)
        self.assertEqual(after2.value("gateway_requests_total", route="extra", code="200"), 1)
        self.assertEqual(after1.value("gateway_reloads_total", result="ok"), 1)
        self.assertEqual(after2.value("gateway_reloads_total", result="ok"), 2)
        st = gw.admin.json("/status")
        self.assertEqual(after2.value("gateway_config_info", hash=st["config"]["hash"]), 1)
        self.assertEqual(len(after2.select("gateway_config_info")), 1,
                         "one config_info sample after a reload: %r"
                         % after2.select("gateway_config_info"))

        gw.rewrite_config("routes: [\n")
        status, body = gw.admin.post_json("/reload")
        self.assertEqual(status, 400, body)
        after3 = self.metrics(gw)
        self.assertEqual(after3.value("gateway_reloads_total", result="error"), 1)
        self.assertEqual(after3.value("gateway_reloads_total", result="ok"), 2)
        self.assertCountersKept(after2, after3, "a refused reload")

    def assertCountersKept(self, before, later, what):
        later_vals = later.keyed()
        for (n, labels, v) in before.samples:
            fam = before.family_of(n)
            if before.type.get(fam) not in ("counter", "histogram"):
                continue
            key = (n, tuple(sorted(labels.items())))
            self.assertIn(key, later_vals, "%s%r disappeared after %s" % (n, labels, what))
            self.assertGreaterEqual(later_vals[key], v, "%s%r went from %s to %s after %s"
                                    % (n, labels, v, later_vals[key], what))


def grep(text, name):
    return "\n".join(l for l in text.splitlines() if name in l)[:3000]

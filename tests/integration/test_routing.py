"""Routing: path prefix by whole segments, host, methods (405 + Allow),
headers, file order, no_route 404, strip_prefix."""

from gwtest import GatewayTestCase, route, upstream


class RoutingTests(GatewayTestCase):
    def setUp(self):
        self.a = self.start_stub("a")
        self.b = self.start_stub("b")
        self.c = self.start_stub("c")
        ups = {"ua": upstream(self.a), "ub": upstream(self.b), "uc": upstream(self.c)}
        routes = [
            route("tenant", "ua", "/t", headers={"X-Tenant": "acme"}),
            route("tenant_other", "ub", "/t"),
            route("hosted", "ua", "/h", host="shop.example.com"),
            route("hosted_other", "ub", "/h"),
            route("api", "ua", "/api"),
            route("reads", "ua", "/m", methods=["GET", "HEAD"]),
            route("writes", "ua", "/w", methods=["POST"]),
            route("w_any", "ub", "/w"),
            route("strip", "uc", "/svc", strip_prefix=True),
            route("dir", "uc", "/dir/"),
        ]
        self.gw = self.start_gateway(ups, routes)

    def served_by(self, method, target, headers=(), host="gw.test"):
        """Name of the stub that answered (echo JSON), after asserting 200."""
        r = self.fetch(self.gw, method, target, headers, host=host)
        self.assertStatus(r, 200, "for %s %s %r" % (method, target, headers))
        if method == "HEAD":
            return None
        return r.json()["server"]

    def assertNoRoute(self, target, method="GET", host="gw.test"):
        before = [len(s.requests) for s in (self.a, self.b, self.c)]
        r = self.fetch(self.gw, method, target, host=host)
        self.assertGatewayError(r, 404, "no_route")
        self.assertEqual([len(s.requests) for s in (self.a, self.b, self.c)], before,
                         "no_route request reached an upstream")

    def test_prefix_matches_whole_segments(self):
        """/api matches /api, /api/ and /api/x; /apix and /ap do not (404)."""
        for target in ("/api", "/api/", "/api/x", "/api/x/y"):
            self.assertEqual(self.served_by("GET", target), "a", target)
        self.assertNoRoute("/apix")
        self.assertNoRoute("/ap")

    def test_query_string_is_not_part_of_the_path(self):
        """/api?x=1 routes like /api and the query reaches the upstream intact."""
        self.assertEqual(self.served_by("GET", "/api?x=1&y=%20"), "a")
        self.assertEqual(self.a.requests[-1].target, "/api?x=1&y=%20")
        self.assertNoRoute("/apix?/api")

    def test_prefix_with_trailing_slash_matches_below(self):
        """A prefix ending in "/" (/dir/) matches /dir/x; /dirx is no route."""
        self.assertEqual(self.served_by("GET", "/dir/x"), "c")
        self.assertNoRoute("/dirx")

    def test_host_match_case_insensitive_port_ignored(self):
        """host: shop.example.com matches any case, with or without a port."""
        self.assertEqual(self.served_by("GET", "/h", host="shop.example.com"), "a")
        self.assertEqual(self.served_by("GET", "/h", host="SHOP.Example.COM:8080"), "a")
        self.assertEqual(self.served_by("GET", "/h", host="other.example.com"), "b")

    def test_header_match_and_file_order(self):
        """headers: {X-Tenant: acme} wins when the header matches exactly
        (name case-insensitive); otherwise the next route in file order."""
        self.assertEqual(self.served_by("GET", "/t", [("X-Tenant", "acme")]), "a")
        self.assertEqual(self.served_by("GET", "/t", [("x-tenant", "acme")]), "a")
        self.assertEqual(self.served_by("GET", "/t", [("X-Tenant", "other")]), "b")
        self.assertEqual(self.served_by("GET", "/t"), "b")

    def test_method_not_allowed_with_allow_header(self):
        """POST to a path only routed for GET/HEAD is 405 with Allow: GET, HEAD,
        and never reaches an upstream."""
        self.assertEqual(self.served_by("GET", "/m/1"), "a")
        self.served_by("HEAD", "/m/1")
        n = len(self.a.requests)
        for method in ("POST", "DELETE", "PATCH"):
            r = self.fetch(self.gw, method, "/m/1", body=b"x")
            self.assertGatewayError(r, 405, "method_not_allowed")
            allow = r.header("Allow")
            self.assertIsNotNone(allow, "405 without Allow: %s" % r.describe())
            self.assertEqual({m.strip() for m in allow.split(",")}, {"GET", "HEAD"}, "Allow: %r" % allow)
        self.assertEqual(len(self.a.requests), n, "405 request reached the upstream")

    def test_method_mismatch_falls_through_to_later_route(self):
        """A route limited to POST does not stop a later route from taking GET."""
        self.assertEqual(self.served_by("POST", "/w"), "a")
        self.assertEqual(self.served_by("GET", "/w"), "b")

    def test_no_route_is_404_and_keeps_connection(self):
        """An unrouted path: 404 no_route, not forwarded, keep-alive continues."""
        c = self.connect(self.gw)
        c.request("GET", "/nothing/here")
        self.assertGatewayError(c.read_response(), 404, "no_route")
        c.request("GET", "/api/after")
        r = c.read_response()
        self.assertStatus(r, 200, "second request on the connection after a 404")
        self.assertEqual(r.json()["path"], "/api/after")
        self.assertEqual(len(self.b.requests) + len(self.c.requests), 0)

    def test_strip_prefix(self):
        """strip_prefix: /svc/x/y?q=1 arrives as /x/y?q=1; /svc and /svc/ as /."""
        cases = [("/svc/x/y?q=1", "/x/y?q=1"), ("/svc", "/"), ("/svc/", "/"), ("/svc?a=b", "/?a=b")]
        for sent, expected in cases:
            self.assertEqual(self.served_by("GET", sent), "c", sent)
            self.assertEqual(self.c.requests[-1].target, expected, "upstream target for %s" % sent)
        self.assertNoRoute("/svcx")

    def test_options_and_patch_forwarded(self):
        """OPTIONS and PATCH (outside evhttp's default method set) are proxied."""
        for method in ("OPTIONS", "PATCH", "PUT", "DELETE"):
            self.assertEqual(self.served_by(method, "/api/m"), "a", method)
            self.assertEqual(self.a.requests[-1].method, method)

    def test_unknown_method_forwarded_or_refused_as_gateway_error(self):
        """An extension method (PURGE) on a route without a method list is either
        forwarded as PURGE, or refused with a gateway error (X-Gateway-Error +
        JSON), never with a bare library error page."""
        n = len(self.a.requests)
        r = self.fetch(self.gw, "PURGE", "/api/cache")
        if r.status == 200:
            self.assertEqual(self.a.requests[-1].method, "PURGE")
        else:
            self.assertIsNotNone(r.header("X-Gateway-Error"), "non-gateway error: %s" % r.describe())
            self.assertEqual(r.json().get("error"), r.header("X-Gateway-Error"))
            self.assertEqual(len(self.a.requests), n)

    def test_path_without_strip_is_forwarded_unchanged(self):
        """Without strip_prefix the upstream sees the exact target sent."""
        # (an encoded "/" in the path is refused: README "Request handling")
        self.served_by("GET", "/api/a%20b/c?x=%41&y=%2F")
        self.assertEqual(self.a.requests[-1].target, "/api/a%20b/c?x=%41&y=%2F")

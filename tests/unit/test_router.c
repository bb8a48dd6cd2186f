/*
 * Router: route selection, the segment rule, host/method/header matches,
 * strip_prefix and the Allow formatting. Routes are built by hand, not by
 * the config loader, so these tests prove the router alone.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "gateway/router.h"
#include "check_suite.h"

#define GW_MAX_TEST_ROUTES 8

/* Ownership: everything lives in the struct itself; strings are literals. */
struct gw_test_table {
	struct gw_config config;
	struct gw_route_conf routes[GW_MAX_TEST_ROUTES];
	struct gw_header_match headers[GW_MAX_TEST_ROUTES][4];
};

static struct gw_route_conf *gw_test_add_route(struct gw_test_table *t, const char *name,
                                               const char *prefix)
{
	struct gw_route_conf *r;

	ck_assert_uint_lt(t->config.nroutes, GW_MAX_TEST_ROUTES);
	r = &t->routes[t->config.nroutes];
	memset(r, 0, sizeof(*r));
	r->name = (char *)name;
	r->index = t->config.nroutes;
	r->path_prefix = (char *)prefix;
	r->path_prefix_len = strlen(prefix);
	r->headers = t->headers[r->index];
	t->config.routes = t->routes;
	t->config.nroutes++;
	return r;
}

static void gw_test_add_header_match(struct gw_route_conf *r, const char *name, const char *value)
{
	ck_assert_uint_lt(r->nheaders, 4);
	r->headers[r->nheaders].name = (char *)name;
	r->headers[r->nheaders].value = (char *)value;
	r->nheaders++;
}

static struct gw_route_query gw_test_query(unsigned method, const char *path, const char *host,
                                           const struct evkeyvalq *headers)
{
	struct gw_route_query q = {
	    .method = method,
	    .path = path,
	    .path_len = strlen(path),
	    .host = host,
	    .host_len = host != NULL ? strlen(host) : 0,
	    .headers = headers,
	};
	return q;
}

/* Name of the winning route, or NULL. */
static const char *gw_test_route(const struct gw_test_table *t, unsigned method, const char *path,
                                 const char *host, const struct evkeyvalq *headers, unsigned *allow)
{
	struct gw_route_query q = gw_test_query(method, path, host, headers);
	unsigned dummy;
	const struct gw_route_conf *r = gw_router_match(&t->config, &q, allow ? allow : &dummy);

	return r != NULL ? r->name : NULL;
}

static bool gw_test_prefix(const char *prefix, const char *path)
{
	return gw_router_prefix_matches(prefix, strlen(prefix), path, strlen(path));
}

START_TEST(test_first_route_in_file_order_wins)
{
	struct gw_test_table t = {0};

	gw_test_add_route(&t, "broad", "/api");
	gw_test_add_route(&t, "narrow", "/api/checkout");
	gw_test_add_route(&t, "other", "/static");
	/* A later, more specific route never beats an earlier one. */
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/api/checkout/x", NULL, NULL, NULL),
	                 "broad");
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/static/a.css", NULL, NULL, NULL),
	                 "other");
	ck_assert_ptr_null(gw_test_route(&t, GW_METHOD_GET, "/nothing", NULL, NULL, NULL));

	t.config.nroutes = 0;
	gw_test_add_route(&t, "narrow", "/api/checkout");
	gw_test_add_route(&t, "broad", "/api");
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/api/checkout/x", NULL, NULL, NULL),
	                 "narrow");
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/api/users", NULL, NULL, NULL), "broad");
}
END_TEST

START_TEST(test_no_routes_matches_nothing)
{
	struct gw_test_table t = {0};
	unsigned allow = 123;

	ck_assert_ptr_null(gw_test_route(&t, GW_METHOD_GET, "/", NULL, NULL, &allow));
	ck_assert_uint_eq(allow, 0);
}
END_TEST

START_TEST(test_prefix_matches_whole_segments_only)
{
	ck_assert(gw_test_prefix("/api", "/api"));
	ck_assert(gw_test_prefix("/api", "/api/"));
	ck_assert(gw_test_prefix("/api", "/api/x"));
	ck_assert(gw_test_prefix("/api", "/api/x/y"));
	ck_assert(!gw_test_prefix("/api", "/apix"));
	ck_assert(!gw_test_prefix("/api", "/ap"));
	ck_assert(!gw_test_prefix("/api", "/"));
	ck_assert(!gw_test_prefix("/api", ""));
	ck_assert(!gw_test_prefix("/api", "/API"));
	ck_assert(!gw_test_prefix("/api/checkout", "/api/check"));
	ck_assert(gw_test_prefix("/api/checkout", "/api/checkout/items"));
	ck_assert(!gw_test_prefix("/api/checkout", "/api/checkouts"));
}
END_TEST

START_TEST(test_prefix_root_matches_every_path)
{
	ck_assert(gw_test_prefix("/", "/"));
	ck_assert(gw_test_prefix("/", "/x"));
	ck_assert(gw_test_prefix("/", "/api/checkout"));
	ck_assert(!gw_test_prefix("/", ""));
}
END_TEST

START_TEST(test_prefix_ending_in_slash_matches_anything_below)
{
	ck_assert(gw_test_prefix("/api/", "/api/"));
	ck_assert(gw_test_prefix("/api/", "/api/x"));
	ck_assert(gw_test_prefix("/api/", "/api//x"));
	/* "/api" itself is not below "/api/". */
	ck_assert(!gw_test_prefix("/api/", "/api"));
	ck_assert(!gw_test_prefix("/api/", "/apix"));
}
END_TEST

START_TEST(test_prefix_path_need_not_be_nul_terminated)
{
	const char buf[] = "/api/x?q=1";

	/* "/api" of "/api/x?q=1": a path that stops before the segment ends. */
	ck_assert(gw_router_prefix_matches("/api", 4, buf, 4));
	ck_assert(gw_router_prefix_matches("/api", 4, buf, 6));
	ck_assert(!gw_router_prefix_matches("/api/x", 6, buf, 5));
}
END_TEST

START_TEST(test_host_matches_case_insensitively_ignoring_port)
{
	struct gw_test_table t = {0};
	struct gw_route_conf *r;

	r = gw_test_add_route(&t, "shop", "/");
	r->host = "shop.example.com";
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/", "shop.example.com", NULL, NULL),
	                 "shop");
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/", "shop.example.com:8080", NULL, NULL),
	                 "shop");
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/", "SHOP.Example.COM", NULL, NULL),
	                 "shop");
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/", "Shop.Example.Com:443", NULL, NULL),
	                 "shop");
	/* a fully qualified name with its trailing dot is the same host */
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/", "shop.example.com.", NULL, NULL),
	                 "shop");
	ck_assert_ptr_null(gw_test_route(&t, GW_METHOD_GET, "/", "shop.example.co", NULL, NULL));
	ck_assert_ptr_null(
	    gw_test_route(&t, GW_METHOD_GET, "/", "shop.example.com.evil", NULL, NULL));
	ck_assert_ptr_null(gw_test_route(&t, GW_METHOD_GET, "/", "xshop.example.com", NULL, NULL));
	ck_assert_ptr_null(gw_test_route(&t, GW_METHOD_GET, "/", "", NULL, NULL));
}
END_TEST

START_TEST(test_host_absent_never_matches_a_host_route)
{
	struct gw_test_table t = {0};
	struct gw_route_conf *r;

	r = gw_test_add_route(&t, "shop", "/");
	r->host = "shop.example.com";
	gw_test_add_route(&t, "any", "/");
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/", NULL, NULL, NULL), "any");
	/* a route without host takes every Host, and no Host */
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/", "other.example.com", NULL, NULL),
	                 "any");
}
END_TEST

START_TEST(test_host_ipv6_literal_keeps_its_brackets)
{
	struct gw_test_table t = {0};
	struct gw_route_conf *r;

	r = gw_test_add_route(&t, "bracketed", "/a");
	r->host = "[::1]";
	r = gw_test_add_route(&t, "bare", "/b");
	r->host = "::1";
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/a", "[::1]:8080", NULL, NULL),
	                 "bracketed");
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/a", "[::1]", NULL, NULL), "bracketed");
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/b", "[::1]:8080", NULL, NULL), "bare");
	ck_assert_ptr_null(gw_test_route(&t, GW_METHOD_GET, "/a", "[::2]:8080", NULL, NULL));
	ck_assert_ptr_null(gw_test_route(&t, GW_METHOD_GET, "/a", "[::1", NULL, NULL));
}
END_TEST

START_TEST(test_method_mask_selects_routes)
{
	struct gw_test_table t = {0};
	struct gw_route_conf *r;

	r = gw_test_add_route(&t, "read", "/api");
	r->methods = GW_METHOD_GET | GW_METHOD_HEAD;
	r = gw_test_add_route(&t, "write", "/api");
	r->methods = GW_METHOD_POST;
	gw_test_add_route(&t, "any", "/other");
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/api", NULL, NULL, NULL), "read");
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_HEAD, "/api", NULL, NULL, NULL), "read");
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_POST, "/api", NULL, NULL, NULL), "write");
	/* methods 0 = any, including a method outside the GW_METHOD_* set */
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_PATCH, "/other", NULL, NULL, NULL), "any");
	ck_assert_str_eq(gw_test_route(&t, 0, "/other", NULL, NULL, NULL), "any");
	ck_assert_ptr_null(gw_test_route(&t, 0, "/api", NULL, NULL, NULL));
}
END_TEST

START_TEST(test_allow_lists_methods_of_routes_failing_only_on_method)
{
	struct gw_test_table t = {0};
	struct gw_route_conf *r;
	unsigned allow = 0;

	r = gw_test_add_route(&t, "read", "/api");
	r->methods = GW_METHOD_GET | GW_METHOD_HEAD;
	r = gw_test_add_route(&t, "write", "/api/orders");
	r->methods = GW_METHOD_POST;
	r = gw_test_add_route(&t, "other-host", "/api");
	r->methods = GW_METHOD_PUT;
	r->host = "admin.example.com";
	r = gw_test_add_route(&t, "elsewhere", "/static");
	r->methods = GW_METHOD_PATCH;

	/* DELETE /api/orders: read and write match but for the method -> 405 */
	ck_assert_ptr_null(
	    gw_test_route(&t, GW_METHOD_DELETE, "/api/orders", "shop", NULL, &allow));
	ck_assert_uint_eq(allow, GW_METHOD_GET | GW_METHOD_HEAD | GW_METHOD_POST);
	/* on the admin host the PUT route joins them */
	ck_assert_ptr_null(
	    gw_test_route(&t, GW_METHOD_DELETE, "/api/x", "admin.example.com", NULL, &allow));
	ck_assert_uint_eq(allow, GW_METHOD_GET | GW_METHOD_HEAD | GW_METHOD_PUT);
	/* an unknown method (0) is refused by every masked route */
	ck_assert_ptr_null(gw_test_route(&t, 0, "/static/x", NULL, NULL, &allow));
	ck_assert_uint_eq(allow, GW_METHOD_PATCH);
	/* no path match at all: 404, allow 0 */
	ck_assert_ptr_null(gw_test_route(&t, GW_METHOD_DELETE, "/nothing", NULL, NULL, &allow));
	ck_assert_uint_eq(allow, 0);
	/* a match resets allow to 0 */
	allow = 99;
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_POST, "/api/orders", NULL, NULL, &allow),
	                 "write");
	ck_assert_uint_eq(allow, 0);
}
END_TEST

START_TEST(test_allow_is_zero_when_a_later_any_method_route_matches)
{
	struct gw_test_table t = {0};
	struct gw_route_conf *r;
	unsigned allow = 99;

	r = gw_test_add_route(&t, "read", "/api");
	r->methods = GW_METHOD_GET;
	gw_test_add_route(&t, "fallback", "/");
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_POST, "/api", NULL, NULL, &allow), "fallback");
	ck_assert_uint_eq(allow, 0);
}
END_TEST

START_TEST(test_allow_may_be_null)
{
	struct gw_test_table t = {0};
	struct gw_route_conf *r;
	struct gw_route_query q = gw_test_query(GW_METHOD_POST, "/api", NULL, NULL);

	r = gw_test_add_route(&t, "read", "/api");
	r->methods = GW_METHOD_GET;
	ck_assert_ptr_null(gw_router_match(&t.config, &q, NULL));
}
END_TEST

START_TEST(test_header_match_present_absent_different_value)
{
	struct gw_test_table t = {0};
	struct gw_route_conf *r;
	struct evkeyvalq h;

	r = gw_test_add_route(&t, "acme", "/");
	gw_test_add_header_match(r, "X-Tenant", "acme");
	TAILQ_INIT(&h);

	/* absent */
	ck_assert_ptr_null(gw_test_route(&t, GW_METHOD_GET, "/", NULL, &h, NULL));
	ck_assert_ptr_null(gw_test_route(&t, GW_METHOD_GET, "/", NULL, NULL, NULL));
	/* different value, value compared exactly */
	evhttp_add_header(&h, "X-Tenant", "ACME");
	ck_assert_ptr_null(gw_test_route(&t, GW_METHOD_GET, "/", NULL, &h, NULL));
	evhttp_clear_headers(&h);
	evhttp_add_header(&h, "X-Tenant", "acme2");
	ck_assert_ptr_null(gw_test_route(&t, GW_METHOD_GET, "/", NULL, &h, NULL));
	evhttp_clear_headers(&h);
	/* present */
	evhttp_add_header(&h, "Accept", "*/*");
	evhttp_add_header(&h, "X-Tenant", "acme");
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/", NULL, &h, NULL), "acme");
	evhttp_clear_headers(&h);
}
END_TEST

START_TEST(test_header_name_matches_case_insensitively)
{
	struct gw_test_table t = {0};
	struct gw_route_conf *r;
	struct evkeyvalq h;

	r = gw_test_add_route(&t, "acme", "/");
	gw_test_add_header_match(r, "X-Tenant", "acme");
	TAILQ_INIT(&h);
	evhttp_add_header(&h, "x-tenant", "acme");
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/", NULL, &h, NULL), "acme");
	evhttp_clear_headers(&h);
	evhttp_add_header(&h, "X-TENANT", "acme");
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/", NULL, &h, NULL), "acme");
	evhttp_clear_headers(&h);
}
END_TEST

START_TEST(test_header_matches_all_must_hold)
{
	struct gw_test_table t = {0};
	struct gw_route_conf *r;
	struct evkeyvalq h;

	r = gw_test_add_route(&t, "both", "/");
	gw_test_add_header_match(r, "X-Tenant", "acme");
	gw_test_add_header_match(r, "X-Canary", "1");
	gw_test_add_route(&t, "rest", "/");
	TAILQ_INIT(&h);
	evhttp_add_header(&h, "X-Tenant", "acme");
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/", NULL, &h, NULL), "rest");
	evhttp_add_header(&h, "X-Canary", "1");
	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_GET, "/", NULL, &h, NULL), "both");
	evhttp_clear_headers(&h);
}
END_TEST

START_TEST(test_combined_conditions_must_all_hold)
{
	struct gw_test_table t = {0};
	struct gw_route_conf *r;
	struct evkeyvalq h;
	unsigned allow = 0;

	r = gw_test_add_route(&t, "checkout", "/api/checkout");
	r->methods = GW_METHOD_GET | GW_METHOD_POST;
	r->host = "shop.example.com";
	gw_test_add_header_match(r, "X-Tenant", "acme");
	gw_test_add_route(&t, "api", "/api");
	TAILQ_INIT(&h);
	evhttp_add_header(&h, "X-Tenant", "acme");

	ck_assert_str_eq(gw_test_route(&t, GW_METHOD_POST, "/api/checkout/pay",
	                               "shop.example.com:8080", &h, NULL),
	                 "checkout");
	/* each condition failing alone sends the request on to the next route */
	ck_assert_str_eq(
	    gw_test_route(&t, GW_METHOD_PUT, "/api/checkout/pay", "shop.example.com", &h, NULL),
	    "api");
	ck_assert_str_eq(
	    gw_test_route(&t, GW_METHOD_POST, "/api/checkoutx", "shop.example.com", &h, NULL),
	    "api");
	ck_assert_str_eq(
	    gw_test_route(&t, GW_METHOD_POST, "/api/checkout", "other.example.com", &h, NULL),
	    "api");
	ck_assert_str_eq(
	    gw_test_route(&t, GW_METHOD_POST, "/api/checkout", "shop.example.com", NULL, NULL),
	    "api");
	/* without the fallback route a method-only miss is a 405 ... */
	t.config.nroutes = 1;
	ck_assert_ptr_null(
	    gw_test_route(&t, GW_METHOD_PUT, "/api/checkout", "shop.example.com", &h, &allow));
	ck_assert_uint_eq(allow, GW_METHOD_GET | GW_METHOD_POST);
	/* ... but a miss on another condition as well is a 404 */
	ck_assert_ptr_null(
	    gw_test_route(&t, GW_METHOD_PUT, "/api/checkout", "other.example.com", &h, &allow));
	ck_assert_uint_eq(allow, 0);
	evhttp_clear_headers(&h);
}
END_TEST

static struct gw_route_conf gw_test_strip_route(const char *prefix, bool strip)
{
	struct gw_route_conf r;

	memset(&r, 0, sizeof(r));
	r.name = "r";
	r.path_prefix = (char *)prefix;
	r.path_prefix_len = strlen(prefix);
	r.strip_prefix = strip;
	return r;
}

static int gw_test_strip(const char *prefix, bool strip, const char *path, const char *query,
                         char *out, size_t out_size)
{
	struct gw_route_conf r = gw_test_strip_route(prefix, strip);

	return gw_router_strip_prefix(&r, path, strlen(path), query, out, out_size);
}

START_TEST(test_strip_prefix_removes_prefix_and_keeps_query)
{
	char out[64];

	ck_assert_int_eq(
	    gw_test_strip("/api/checkout", true, "/api/checkout/items", "x=1", out, sizeof(out)),
	    10);
	ck_assert_str_eq(out, "/items?x=1");
	ck_assert_int_eq(
	    gw_test_strip("/api/checkout", true, "/api/checkout/a/b", NULL, out, sizeof(out)), 4);
	ck_assert_str_eq(out, "/a/b");
	/* an empty query keeps its "?" */
	ck_assert_int_eq(gw_test_strip("/api", true, "/api/x", "", out, sizeof(out)), 3);
	ck_assert_str_eq(out, "/x?");
}
END_TEST

START_TEST(test_strip_prefix_exact_prefix_leaves_slash)
{
	char out[64];

	ck_assert_int_eq(gw_test_strip("/api/checkout", true, "/api/checkout", NULL, out, 64), 1);
	ck_assert_str_eq(out, "/");
	ck_assert_int_eq(gw_test_strip("/api/checkout", true, "/api/checkout", "a=b", out, 64), 5);
	ck_assert_str_eq(out, "/?a=b");
	ck_assert_int_eq(gw_test_strip("/api/checkout", true, "/api/checkout/", NULL, out, 64), 1);
	ck_assert_str_eq(out, "/");
}
END_TEST

START_TEST(test_strip_prefix_ending_in_slash_keeps_leading_slash)
{
	char out[64];

	ck_assert_int_eq(gw_test_strip("/api/", true, "/api/items", NULL, out, 64), 6);
	ck_assert_str_eq(out, "/items");
	ck_assert_int_eq(gw_test_strip("/api/", true, "/api/", NULL, out, 64), 1);
	ck_assert_str_eq(out, "/");
	ck_assert_int_eq(gw_test_strip("/", true, "/x/y", NULL, out, 64), 4);
	ck_assert_str_eq(out, "/x/y");
}
END_TEST

START_TEST(test_strip_prefix_off_copies_path)
{
	char out[64];

	ck_assert_int_eq(gw_test_strip("/api", false, "/api/items", "q", out, 64), 12);
	ck_assert_str_eq(out, "/api/items?q");
}
END_TEST

START_TEST(test_strip_prefix_buffer_too_small_fails)
{
	char out[16];

	memset(out, 'Z', sizeof(out));
	/* "/items?x=1" needs 10 bytes plus the NUL */
	ck_assert_int_eq(
	    gw_test_strip("/api/checkout", true, "/api/checkout/items", "x=1", out, 10), -1);
	ck_assert_int_eq(
	    gw_test_strip("/api/checkout", true, "/api/checkout/items", "x=1", out, 11), 10);
	ck_assert_str_eq(out, "/items?x=1");
	ck_assert_int_eq(gw_test_strip("/api", true, "/api", NULL, out, 1), -1);
	ck_assert_int_eq(gw_test_strip("/api", true, "/api", NULL, out, 0), -1);
	ck_assert_int_eq(gw_test_strip("/api", true, "/api", NULL, out, 2), 1);
	ck_assert_str_eq(out, "/");
}
END_TEST

START_TEST(test_methods_format_lists_names_in_order)
{
	char out[80];

	gw_methods_format(GW_METHOD_GET | GW_METHOD_POST, out, sizeof(out));
	ck_assert_str_eq(out, "GET, POST");
	gw_methods_format(GW_METHOD_PATCH, out, sizeof(out));
	ck_assert_str_eq(out, "PATCH");
	gw_methods_format(GW_METHOD_DELETE | GW_METHOD_GET | GW_METHOD_HEAD, out, sizeof(out));
	ck_assert_str_eq(out, "GET, HEAD, DELETE");
	gw_methods_format(0, out, sizeof(out));
	ck_assert_str_eq(out, "");
	gw_methods_format(0x1ff, out, sizeof(out));
	ck_assert_str_eq(out, "GET, POST, HEAD, PUT, DELETE, OPTIONS, TRACE, CONNECT, PATCH");
	/* bits beyond the known methods are ignored */
	gw_methods_format(GW_METHOD_PUT | (1u << 20), out, sizeof(out));
	ck_assert_str_eq(out, "PUT");
}
END_TEST

START_TEST(test_methods_format_truncates_at_whole_names)
{
	char out[12];

	gw_methods_format(GW_METHOD_GET | GW_METHOD_POST | GW_METHOD_DELETE, out, sizeof(out));
	ck_assert_str_eq(out, "GET, POST");
	gw_methods_format(GW_METHOD_GET, out, 1);
	ck_assert_str_eq(out, "");
}
END_TEST

#define GW_TCASE(s, fn) gw_test_add_case(s, #fn, fn, GW_TEST_DEFAULT_TIMEOUT)

START_TEST(test_path_with_dot_segments_is_unsafe)
{
	static const char *const unsafe[] = {
	    "/a/../b",     "/..",       "/a/..",   "/.",   "/a/./b",   "/a/.",
	    "/a/%2e%2e/b", "/a/%2E./b", "/a/.%2e", "/%2e", "/a/%2e/b",
	};
	static const char *const safe[] = {
	    "/",    "/a/b",         "/a/..b", "/a/b..", "/a/.b",
	    "/...", "/a/%2e%2e%2e", "/a.b/c", "/%2f",   "/a/%2ex",
	};

	for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++)
		ck_assert_msg(!gw_path_is_safe(unsafe[i], strlen(unsafe[i])), "%s", unsafe[i]);
	for (size_t i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
		ck_assert_msg(gw_path_is_safe(safe[i], strlen(safe[i])), "%s", safe[i]);
}
END_TEST

/* Issue 13: targets a backend may read differently from the router. */
START_TEST(test_target_a_backend_may_read_differently_is_unsafe)
{
	static const char *const unsafe[] = {
	    "/ok#frag",
	    "/ok?a#b",
	    "/ok#",
	    "/ok\\..\\x",
	    "/ok\\x",
	    "//ok",
	    "//evil.example/ok",
	    "/ok//x",
	    "/a/%2fb",
	    "/a/%2Fb",
	    "/a/%5cb",
	    "/a/%5Cb",
	    "/a/%00",
	    "/a/%2e%2e/b",
	    "/a/%2eb",
	    "/a%2E",
	    "/%61dmin",
	    "/a/%7e",
	    "/a/%2d",
	    "/a/%5f",
	    "/a/%30",
	    "/a/%zz",
	    "/a/%4",
	    "/a/%",
	    "/a/../b",
	    "/a/.",
	};
	static const char *const safe[] = {
	    "/",       "/ok",       "/ok/x?a=b", "/ok?x=%2f&y=%2e", "/ok?a\\b", "/ok?a//b",
	    "/a/%20b", "/a/%3F%23", "/a/%25",    "/a/%c3%a9",       "*",        "",
	    "?q",      "/a/..b",    "/a/.b/",    "/a;x=1",          "/ok/",
	};

	for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++)
		ck_assert_msg(!gw_target_is_safe(unsafe[i], strlen(unsafe[i]), NULL, 0), "%s",
		              unsafe[i]);
	for (size_t i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
		ck_assert_msg(gw_target_is_safe(safe[i], strlen(safe[i]), NULL, 0), "%s", safe[i]);
}
END_TEST

/* The Host value (or an absolute-form authority): host[:port] as evhttp's
 * URI parser takes it, which otherwise answered some with its own HTML 400. */
START_TEST(test_target_host_must_be_host_and_port)
{
	static const char *const bad[] = {
	    "gw.test:abc",
	    "[gw.test]",
	    "[::1",
	    "::1",
	    ":80",
	    "gw.test:65536",
	    "gw.test:99999999999",
	    "a:b:80",
	    "[]",
	    "[v1.]",
	    "[vz.a]",
	    "g%7",
	    "g%zzw",
	    "gw test",
	};
	static const char *const good[] = {
	    "gw.test",      "gw.test:8080",  "gw.test:",  "GW.TEST.",  "127.0.0.1:80",
	    "[::1]",        "[::1]:8080",    "[v1.fe:x]", "g%77.test", "a_b-c~d!$&'()*+,;=",
	    "gw.test:0080", "gw.test:65535",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!gw_target_is_safe("/", 1, bad[i], strlen(bad[i])), "%s", bad[i]);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(gw_target_is_safe("/", 1, good[i], strlen(good[i])), "%s", good[i]);
	ck_assert(gw_target_is_safe("/", 1, NULL, 0)); /* HTTP/1.0 without Host */
}
END_TEST

static Suite *gw_router_suite(void)
{
	Suite *s = suite_create("router");

	GW_TCASE(s, test_first_route_in_file_order_wins);
	GW_TCASE(s, test_no_routes_matches_nothing);
	GW_TCASE(s, test_prefix_matches_whole_segments_only);
	GW_TCASE(s, test_prefix_root_matches_every_path);
	GW_TCASE(s, test_prefix_ending_in_slash_matches_anything_below);
	GW_TCASE(s, test_prefix_path_need_not_be_nul_terminated);
	GW_TCASE(s, test_host_matches_case_insensitively_ignoring_port);
	GW_TCASE(s, test_host_absent_never_matches_a_host_route);
	GW_TCASE(s, test_host_ipv6_literal_keeps_its_brackets);
	GW_TCASE(s, test_method_mask_selects_routes);
	GW_TCASE(s, test_allow_lists_methods_of_routes_failing_only_on_method);
	GW_TCASE(s, test_allow_is_zero_when_a_later_any_method_route_matches);
	GW_TCASE(s, test_allow_may_be_null);
	GW_TCASE(s, test_header_match_present_absent_different_value);
	GW_TCASE(s, test_header_name_matches_case_insensitively);
	GW_TCASE(s, test_header_matches_all_must_hold);
	GW_TCASE(s, test_combined_conditions_must_all_hold);
	GW_TCASE(s, test_strip_prefix_removes_prefix_and_keeps_query);
	GW_TCASE(s, test_strip_prefix_exact_prefix_leaves_slash);
	GW_TCASE(s, test_strip_prefix_ending_in_slash_keeps_leading_slash);
	GW_TCASE(s, test_strip_prefix_off_copies_path);
	GW_TCASE(s, test_strip_prefix_buffer_too_small_fails);
	GW_TCASE(s, test_methods_format_lists_names_in_order);
	GW_TCASE(s, test_methods_format_truncates_at_whole_names);
	GW_TCASE(s, test_path_with_dot_segments_is_unsafe);
	GW_TCASE(s, test_target_a_backend_may_read_differently_is_unsafe);
	GW_TCASE(s, test_target_host_must_be_host_and_port);
	return s;
}

int main(void)
{
	return gw_test_run_suite(gw_router_suite(), CK_FORK);
}

/*
 * gw_request_head_check and gw_request_head_end: every rule of
 * request_head.h, mostly as one table of raw heads and their verdicts.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http/request_head.h"
#include "check_suite.h"

#define MAX_HEAD (8 * 1024)
#define MAX_BODY (1024 * 1024)

#define RAW(s) s, sizeof(s) - 1

struct head_case {
	const char *name;
	const char *raw;
	size_t len;
	enum gw_head_verdict want;
};

static const struct head_case cases[] = {
    /* good requests */
    {"GET origin-form", RAW("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"), GW_HEAD_OK},
    {"POST with Content-Length", RAW("POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n"),
     GW_HEAD_OK},
    {"HEAD", RAW("HEAD /x?y=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n"), GW_HEAD_OK},
    {"POST chunked", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
     GW_HEAD_OK},
    {"TE chunked in capitals",
     RAW("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: CHUNKED\r\n\r\n"), GW_HEAD_OK},
    {"HTTP/1.0 without Host", RAW("GET / HTTP/1.0\r\n\r\n"), GW_HEAD_OK},
    {"HTTP/1.0 with Host", RAW("GET / HTTP/1.0\r\nHost: a\r\n\r\n"), GW_HEAD_OK},
    {"OPTIONS *", RAW("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), GW_HEAD_OK},
    {"unknown method passes", RAW("PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n"), GW_HEAD_OK},
    {"Content-Length with OWS", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\t 4 \r\n\r\n"),
     GW_HEAD_OK},
    {"HTAB and obs-text in value", RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\tb \xc3\xa9\r\n\r\n"),
     GW_HEAD_OK},
    {"empty value", RAW("GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n\r\n"), GW_HEAD_OK},
    {"HTTP/1.2 served as 1.1", RAW("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), GW_HEAD_OK},
    {"Host with port", RAW("GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n"), GW_HEAD_OK},
    {"absolute-form, matching Host",
     RAW("GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n"), GW_HEAD_OK},
    {"absolute-form, Host differs in case only",
     RAW("GET HTTP://A.Example/x HTTP/1.1\r\nHost: a.example\r\n\r\n"), GW_HEAD_OK},
    {"absolute-form https",
     RAW("GET https://a.example:8443?q HTTP/1.1\r\nHost: a.example:8443\r\n\r\n"), GW_HEAD_OK},
    {"absolute-form, HTTP/1.0 without Host", RAW("GET http://a.example/ HTTP/1.0\r\n\r\n"),
     GW_HEAD_OK},

    /* Content-Length and Transfer-Encoding: smuggling */
    {"two different Content-Length",
     RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"repeated equal Content-Length",
     RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\ncontent-length: 4\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"Content-Length: +4", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"Content-Length: -1", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"Content-Length list 1, 1", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"Content-Length with inner space",
     RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"Content-Length empty", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"Content-Length 19 digits",
     RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0000000000000000001\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"Content-Length hex", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x4\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"Content-Length with Transfer-Encoding",
     RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"Transfer-Encoding gzip", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"Transfer-Encoding chunked, gzip",
     RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"Transfer-Encoding gzip, chunked",
     RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"Transfer-Encoding twice",
     RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
         "chunked\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"Transfer-Encoding in HTTP/1.0", RAW("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"space before colon", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},

    /* header syntax */
    {"empty header name", RAW("GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"space inside header name", RAW("GET / HTTP/1.1\r\nHost: a\r\nX Y: x\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"line without colon", RAW("GET / HTTP/1.1\r\nHost: a\r\nJunk\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"NUL in value", RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"CR in value", RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"DEL in value", RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"obs-fold", RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n  b\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"whitespace before first header", RAW("GET / HTTP/1.1\r\n Host: a\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"bare LF line ends", RAW("GET / HTTP/1.1\nHost: a\n\n"), GW_HEAD_BAD_REQUEST},
    {"bare LF after a header", RAW("GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"bare LF as the empty line", RAW("GET / HTTP/1.1\r\nHost: a\r\n\n"), GW_HEAD_BAD_REQUEST},
    {"bare CR as the empty line", RAW("GET / HTTP/1.1\r\nHost: a\r\n\rX"), GW_HEAD_BAD_REQUEST},
    {"bare CR after the request line", RAW("GET / HTTP/1.1\rHost: a\r\n\r\n"), GW_HEAD_BAD_REQUEST},

    /* Host */
    {"HTTP/1.1 without Host", RAW("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"two Host", RAW("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"two equal Host", RAW("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"Host with a space", RAW("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"Host with a path", RAW("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"absolute-form, different Host",
     RAW("GET http://evil.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"absolute-form without Host in 1.1", RAW("GET http://a.example/ HTTP/1.1\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"absolute-form with userinfo",
     RAW("GET http://u@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"absolute-form with empty authority", RAW("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"other scheme", RAW("GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n"), GW_HEAD_BAD_REQUEST},

    /* request line */
    {"target with space", RAW("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"two spaces after method", RAW("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"two spaces before version", RAW("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"tab as separator", RAW("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"control byte in target", RAW("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"non-ASCII byte in target", RAW("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"relative target", RAW("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"asterisk with GET", RAW("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"method with a non-token byte", RAW("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"empty line before request line", RAW("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
     GW_HEAD_BAD_REQUEST},
    {"HTTP/0.9 request", RAW("GET /\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"HTTP/0.9 version", RAW("GET / HTTP/0.9\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"lower-case http/1.1", RAW("GET / http/1.1\r\nHost: a\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"HTTP/1.10", RAW("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"HTTP/1 without minor", RAW("GET / HTTP/1\r\nHost: a\r\n\r\n"), GW_HEAD_BAD_REQUEST},
    {"HTTP/2.0", RAW("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), GW_HEAD_VERSION},
    {"HTTP/3.0", RAW("GET / HTTP/3.0\r\nHost: a\r\n\r\n"), GW_HEAD_VERSION},
    {"CONNECT", RAW("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"),
     GW_HEAD_METHOD},
    {"TRACE", RAW("TRACE / HTTP/1.1\r\nHost: a\r\n\r\n"), GW_HEAD_METHOD},

    /* limits and incomplete input */
    {"Content-Length over max_body_bytes",
     RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n"), GW_HEAD_BODY_TOO_LARGE},
    {"Content-Length equal to max_body_bytes",
     RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n"), GW_HEAD_OK},
    {"empty buffer", RAW(""), GW_HEAD_INCOMPLETE},
    {"request line cut", RAW("GET /index.ht"), GW_HEAD_INCOMPLETE},
    {"version cut", RAW("GET / HTTP/1."), GW_HEAD_INCOMPLETE},
    {"header cut", RAW("GET / HTTP/1.1\r\nHost: a\r\nAcc"), GW_HEAD_INCOMPLETE},
    {"final CR without LF yet", RAW("GET / HTTP/1.1\r\nHost: a\r\n\r"), GW_HEAD_INCOMPLETE},
};

START_TEST(test_table_verdicts)
{
	const struct head_case *c = &cases[_i];
	struct gw_request_head h;
	const char *why = NULL;
	enum gw_head_verdict v =
	    gw_request_head_check(c->raw, c->len, MAX_HEAD, MAX_BODY, &h, &why);

	ck_assert_msg(v == c->want, "case \"%s\": verdict %d, want %d (why: %s)", c->name, v,
	              c->want, why ? why : "-");
	if (v == GW_HEAD_OK)
		ck_assert_msg(h.head_len == c->len, "case \"%s\": head_len %zu, want %zu", c->name,
		              h.head_len, c->len);
	if (v != GW_HEAD_OK && v != GW_HEAD_INCOMPLETE)
		ck_assert_msg(why != NULL && why[0] != '\0', "case \"%s\": no reason", c->name);
}
END_TEST

static enum gw_head_verdict check(const char *s, size_t len, struct gw_request_head *h)
{
	return gw_request_head_check(s, len, MAX_HEAD, MAX_BODY, h, NULL);
}

START_TEST(test_fields_reported)
{
	static const char req[] = "POST /api/checkout?x=1 HTTP/1.1\r\nHost: Shop.example\r\n"
	                          "Content-Length: 12\r\nX-Tenant: acme\r\n\r\n";
	struct gw_request_head h;

	ck_assert_int_eq(check(req, sizeof(req) - 1, &h), GW_HEAD_OK);
	ck_assert_uint_eq(h.head_len, sizeof(req) - 1);
	ck_assert_uint_eq(h.method_len, 4);
	ck_assert(memcmp(h.method, "POST", 4) == 0);
	ck_assert_uint_eq(h.target_len, strlen("/api/checkout?x=1"));
	ck_assert(memcmp(h.target, "/api/checkout?x=1", h.target_len) == 0);
	ck_assert(h.path == h.target && h.path_len == h.target_len);
	ck_assert_int_eq(h.version_major, 1);
	ck_assert_int_eq(h.version_minor, 1);
	ck_assert(h.has_content_length);
	ck_assert_uint_eq(h.content_length, 12);
	ck_assert(!h.chunked);
	ck_assert(!h.absolute_form);
	ck_assert_uint_eq(h.host_len, strlen("Shop.example"));
	ck_assert(memcmp(h.host, "Shop.example", h.host_len) == 0);
}
END_TEST

START_TEST(test_chunked_reported)
{
	static const char req[] =
	    "PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
	struct gw_request_head h;

	ck_assert_int_eq(check(req, sizeof(req) - 1, &h), GW_HEAD_OK);
	ck_assert(h.chunked);
	ck_assert(!h.has_content_length);
}
END_TEST

START_TEST(test_absolute_form_reports_authority_and_path)
{
	static const char req[] =
	    "GET http://A.example:8080/p/q?r HTTP/1.1\r\nHost: a.example:8080\r\n\r\n";
	static const char bare[] = "GET https://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n";
	struct gw_request_head h;

	ck_assert_int_eq(check(req, sizeof(req) - 1, &h), GW_HEAD_OK);
	ck_assert(h.absolute_form);
	ck_assert_uint_eq(h.host_len, strlen("A.example:8080"));
	ck_assert(memcmp(h.host, "A.example:8080", h.host_len) == 0);
	ck_assert_uint_eq(h.path_len, strlen("/p/q?r"));
	ck_assert(memcmp(h.path, "/p/q?r", h.path_len) == 0);

	ck_assert_int_eq(check(bare, sizeof(bare) - 1, &h), GW_HEAD_OK);
	ck_assert_uint_eq(h.path_len, 0);
	ck_assert_uint_eq(h.host_len, strlen("a.example"));
}
END_TEST

START_TEST(test_http10_without_host_has_no_host)
{
	struct gw_request_head h;

	ck_assert_int_eq(check(RAW("GET / HTTP/1.0\r\n\r\n"), &h), GW_HEAD_OK);
	ck_assert_int_eq(h.version_minor, 0);
	ck_assert_uint_eq(h.host_len, 0);
}
END_TEST

START_TEST(test_http12_reports_minor_2)
{
	struct gw_request_head h;

	ck_assert_int_eq(check(RAW("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), &h), GW_HEAD_OK);
	ck_assert_int_eq(h.version_major, 1);
	ck_assert_int_eq(h.version_minor, 2);
}
END_TEST

/* A head followed by its body and a pipelined request: head_len stops
 * exactly after the empty line and nothing after it is judged. */
START_TEST(test_head_len_exact_with_body_and_pipelined_bytes)
{
	static const char req[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n"
	                          "body"
	                          "GET /next HTTP/1.1\r\n\x01garbage";
	static const size_t head =
	    sizeof("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n") - 1;
	struct gw_request_head h;

	ck_assert_int_eq(check(req, sizeof(req) - 1, &h), GW_HEAD_OK);
	ck_assert_uint_eq(h.head_len, head);
	ck_assert_uint_eq(gw_request_head_end(req, sizeof(req) - 1), head);
}
END_TEST

/* Every proper prefix of a good head is INCOMPLETE: the verdict does not
 * depend on how the bytes were cut into reads. */
START_TEST(test_every_prefix_of_good_head_is_incomplete)
{
	static const char req[] = "GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\n"
	                          "Content-Length: 10\r\nX: y\t\r\n\r\n";
	struct gw_request_head h;

	for (size_t n = 0; n < sizeof(req) - 1; n++) {
		char *copy = malloc(n ? n : 1); /* exact size: ASan sees any overread */

		memcpy(copy, req, n);
		ck_assert_msg(check(copy, n, &h) == GW_HEAD_INCOMPLETE, "prefix %zu", n);
		free(copy);
	}
	ck_assert_int_eq(check(req, sizeof(req) - 1, &h), GW_HEAD_OK);
}
END_TEST

/* A bad line is refused as soon as it is complete, without waiting for the
 * end of the head. */
START_TEST(test_bad_line_refused_before_head_ends)
{
	struct gw_request_head h;

	ck_assert_int_eq(check(RAW("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\nX"), &h),
	                 GW_HEAD_BAD_REQUEST);
	ck_assert_int_eq(check(RAW("GET /\r\n"), &h), GW_HEAD_BAD_REQUEST);
}
END_TEST

static char *make_head(size_t target_len, size_t filler_len, size_t *len)
{
	size_t cap = target_len + filler_len + 128;
	char *buf = malloc(cap);
	size_t n = 0;

	memcpy(buf, "GET /", 5);
	n = 5;
	memset(buf + n, 'a', target_len);
	n += target_len;
	n += (size_t)snprintf(buf + n, cap - n, " HTTP/1.1\r\nHost: a\r\nX-Fill: ");
	memset(buf + n, 'b', filler_len);
	n += filler_len;
	memcpy(buf + n, "\r\n\r\n", 4);
	n += 4;
	*len = n;
	return buf;
}

START_TEST(test_head_over_limit_is_431)
{
	size_t len;
	char *buf = make_head(10, 2 * MAX_HEAD, &len);
	struct gw_request_head h;

	ck_assert_int_eq(check(buf, len, &h), GW_HEAD_HEADERS_TOO_LARGE);
	free(buf);
}
END_TEST

START_TEST(test_incomplete_head_over_limit_is_431)
{
	size_t len;
	char *buf = make_head(10, 2 * MAX_HEAD, &len);
	struct gw_request_head h;
	const char *why = NULL;

	/* cut in the middle of the filler: no end of head, but over the limit */
	ck_assert_int_eq(gw_request_head_check(buf, MAX_HEAD + 1, MAX_HEAD, MAX_BODY, &h, &why),
	                 GW_HEAD_HEADERS_TOO_LARGE);
	ck_assert_ptr_nonnull(why);
	/* exactly at the limit it may still end: incomplete */
	ck_assert_int_eq(check(buf, MAX_HEAD, &h), GW_HEAD_INCOMPLETE);
	free(buf);
}
END_TEST

START_TEST(test_head_exactly_at_limit_is_ok)
{
	size_t len;
	char *buf = make_head(10, 100, &len);
	struct gw_request_head h;

	ck_assert_int_eq(gw_request_head_check(buf, len, len, MAX_BODY, &h, NULL), GW_HEAD_OK);
	ck_assert_int_eq(gw_request_head_check(buf, len, len - 1, MAX_BODY, &h, NULL),
	                 GW_HEAD_HEADERS_TOO_LARGE);
	free(buf);
}
END_TEST

START_TEST(test_target_over_limit_is_414)
{
	size_t len;
	char *buf = make_head(MAX_HEAD + 10, 0, &len);
	struct gw_request_head h;

	ck_assert_int_eq(check(buf, len, &h), GW_HEAD_URI_TOO_LONG);
	/* also while the target has not ended yet */
	ck_assert_int_eq(check(buf, MAX_HEAD + 1, &h), GW_HEAD_URI_TOO_LONG);
	ck_assert_int_eq(check(buf, MAX_HEAD, &h), GW_HEAD_INCOMPLETE);
	free(buf);
}
END_TEST

START_TEST(test_content_length_over_max_body_is_413)
{
	struct gw_request_head h;
	static const char req[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n";

	ck_assert_int_eq(gw_request_head_check(RAW(req), MAX_HEAD, 100, &h, NULL),
	                 GW_HEAD_BODY_TOO_LARGE);
	ck_assert_int_eq(gw_request_head_check(RAW(req), MAX_HEAD, 101, &h, NULL), GW_HEAD_OK);
	ck_assert_uint_eq(h.content_length, 101);
}
END_TEST

START_TEST(test_largest_content_length_parsed)
{
	struct gw_request_head h;
	static const char req[] =
	    "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999999\r\n\r\n";

	ck_assert_int_eq(gw_request_head_check(RAW(req), MAX_HEAD, UINT64_MAX, &h, NULL),
	                 GW_HEAD_OK);
	ck_assert_uint_eq(h.content_length, 999999999999999999ULL);
}
END_TEST

START_TEST(test_why_may_be_null_and_is_cleared_on_ok)
{
	struct gw_request_head h;
	const char *why = "stale";

	ck_assert_int_eq(gw_request_head_check(RAW("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), MAX_HEAD,
	                                       MAX_BODY, &h, &why),
	                 GW_HEAD_OK);
	ck_assert_ptr_null(why);
	ck_assert_int_eq(
	    gw_request_head_check(RAW("GET / HTTP/2.0\r\n\r\n"), MAX_HEAD, MAX_BODY, &h, NULL),
	    GW_HEAD_VERSION);
}
END_TEST

START_TEST(test_empty_null_buffer_is_incomplete)
{
	struct gw_request_head h;

	ck_assert_int_eq(gw_request_head_check(NULL, 0, MAX_HEAD, MAX_BODY, &h, NULL),
	                 GW_HEAD_INCOMPLETE);
	ck_assert_uint_eq(gw_request_head_end(NULL, 0), 0);
}
END_TEST

static size_t span_ref(const char *b, size_t p, size_t end, unsigned int cls)
{
	while (p < end && (gw_http_cclass[(unsigned char)b[p]] & cls))
		p++;
	return p;
}

/* The vectorised span agrees with the byte table for every byte value at
 * every offset of blocks and tails, HTAB runs included. */
START_TEST(test_span_matches_byte_table)
{
	static const unsigned int classes[] = {GW_HTTP_FIELD, GW_HTTP_TARGET, GW_HTTP_TCHAR,
	                                       GW_HTTP_HOST};
	char buf[48];

	for (size_t k = 0; k < sizeof(classes) / sizeof(classes[0]); k++) {
		for (int c = 0; c < 256; c++) {
			for (size_t pos = 0; pos < sizeof(buf); pos++) {
				memset(buf, 'a', sizeof(buf));
				buf[pos] = (char)c;
				for (size_t start = 0; start < 3; start++)
					ck_assert_uint_eq(
					    gw_http_span(buf, start, sizeof(buf), classes[k]),
					    span_ref(buf, start, sizeof(buf), classes[k]));
			}
		}
		memset(buf, '\t', sizeof(buf));
		buf[40] = '\x01';
		ck_assert_uint_eq(gw_http_span(buf, 0, sizeof(buf), classes[k]),
		                  span_ref(buf, 0, sizeof(buf), classes[k]));
	}
}
END_TEST

START_TEST(test_head_end_crlf)
{
	static const char s[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";

	ck_assert_uint_eq(gw_request_head_end(RAW(s)), sizeof(s) - 1 - 4);
}
END_TEST

START_TEST(test_head_end_bare_lf_forms)
{
	ck_assert_uint_eq(gw_request_head_end(RAW("GET / HTTP/1.1\nHost: a\n\nX")), 24);
	ck_assert_uint_eq(gw_request_head_end(RAW("GET / HTTP/1.1\nHost: a\n\r\nX")), 25);
}
END_TEST

START_TEST(test_head_end_not_found)
{
	ck_assert_uint_eq(gw_request_head_end(RAW("")), 0);
	ck_assert_uint_eq(gw_request_head_end(RAW("GET / HTTP/1.1\r\nHost: a\r\n")), 0);
	ck_assert_uint_eq(gw_request_head_end(RAW("GET / HTTP/1.1\r\nHost: a\r\n\r")), 0);
	ck_assert_uint_eq(gw_request_head_end(RAW("\r\r\r\r")), 0);
}
END_TEST

START_TEST(test_head_end_first_of_two)
{
	static const char s[] = "GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n";

	ck_assert_uint_eq(gw_request_head_end(RAW(s)), 18);
}
END_TEST

START_TEST(test_head_end_agrees_with_check)
{
	static const char s[] = "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\nrest";
	struct gw_request_head h;

	ck_assert_int_eq(check(RAW(s), &h), GW_HEAD_OK);
	ck_assert_uint_eq(gw_request_head_end(RAW(s)), h.head_len);
}
END_TEST

static Suite *request_head_suite(void)
{
	Suite *s = suite_create("request_head");
	TCase *tc = tcase_create("every_rule_gives_its_verdict");

	tcase_add_loop_test(tc, test_table_verdicts, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	suite_add_tcase(s, tc);
	gw_test_add_case(s, "fields_reported", test_fields_reported, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "chunked_reported", test_chunked_reported, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "absolute_form_reports_authority_and_path",
	                 test_absolute_form_reports_authority_and_path, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "http10_without_host_has_no_host", test_http10_without_host_has_no_host,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "http12_reports_minor_2", test_http12_reports_minor_2,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "head_len_exact_with_body_and_pipelined_bytes",
	                 test_head_len_exact_with_body_and_pipelined_bytes,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "every_prefix_of_good_head_is_incomplete",
	                 test_every_prefix_of_good_head_is_incomplete, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "bad_line_refused_before_head_ends",
	                 test_bad_line_refused_before_head_ends, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "head_over_limit_is_431", test_head_over_limit_is_431,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "incomplete_head_over_limit_is_431",
	                 test_incomplete_head_over_limit_is_431, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "head_exactly_at_limit_is_ok", test_head_exactly_at_limit_is_ok,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "target_over_limit_is_414", test_target_over_limit_is_414,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "content_length_over_max_body_is_413",
	                 test_content_length_over_max_body_is_413, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "largest_content_length_parsed", test_largest_content_length_parsed,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "why_may_be_null_and_is_cleared_on_ok",
	                 test_why_may_be_null_and_is_cleared_on_ok, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "empty_null_buffer_is_incomplete", test_empty_null_buffer_is_incomplete,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "span_matches_byte_table", test_span_matches_byte_table,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "head_end_crlf", test_head_end_crlf, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "head_end_bare_lf_forms", test_head_end_bare_lf_forms,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "head_end_not_found", test_head_end_not_found, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "head_end_first_of_two", test_head_end_first_of_two,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "head_end_agrees_with_check", test_head_end_agrees_with_check,
	                 GW_TEST_DEFAULT_TIMEOUT);
	return s;
}

int main(void)
{
	return gw_test_run_suite(request_head_suite(), CK_FORK_GETENV);
}

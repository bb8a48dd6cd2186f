/*
 * gw_response_head_parse: status lines, framing, keep-alive, limits.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http/response_head.h"
#include "check_suite.h"

#define MAX_HEAD 8192

#define RAW(s) s, sizeof(s) - 1

struct resp_case {
	const char *name;
	const char *raw;
	size_t len;
	bool head_request;
	enum gw_response_parse want;
	/* checked when want is GW_RESPONSE_DONE */
	int status;
	enum gw_body_framing framing;
	bool keep_alive;
	uint64_t content_length;
};

static const struct resp_case cases[] = {
    /* valid responses and their framing */
    {"200 with Content-Length", RAW("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), false,
     GW_RESPONSE_DONE, 200, GW_BODY_LENGTH, true, 5},
    {"204 has no body", RAW("HTTP/1.1 204 No Content\r\n\r\n"), false, GW_RESPONSE_DONE, 204,
     GW_BODY_NONE, true, 0},
    {"304 with Content-Length has no body",
     RAW("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"), false, GW_RESPONSE_DONE, 304,
     GW_BODY_NONE, true, 0},
    /* issue 11 defect 9: a 204 announcing a body, a 304 with chunking, a
     * 1xx with a body: the bytes after them must not start the next answer */
    {"204 with Content-Length 0 keeps alive",
     RAW("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"), false, GW_RESPONSE_DONE, 204,
     GW_BODY_NONE, true, 0},
    {"204 with Content-Length 5: no body, not kept",
     RAW("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"), false, GW_RESPONSE_DONE, 204,
     GW_BODY_NONE, false, 0},
    {"204 chunked: no body, not kept",
     RAW("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"), false, GW_RESPONSE_DONE,
     204, GW_BODY_NONE, false, 0},
    {"304 chunked: no body, not kept",
     RAW("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"), false,
     GW_RESPONSE_DONE, 304, GW_BODY_NONE, false, 0},
    {"204 to HEAD with Content-Length 5: not kept",
     RAW("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"), true, GW_RESPONSE_DONE, 204,
     GW_BODY_NONE, false, 0},
    {"100 with Content-Length is invalid",
     RAW("HTTP/1.1 100 Continue\r\nContent-Length: 3\r\n\r\n"), false, GW_RESPONSE_INVALID, 0,
     GW_BODY_NONE, false, 0},
    {"103 chunked is invalid",
     RAW("HTTP/1.1 103 Early Hints\r\nTransfer-Encoding: chunked\r\n\r\n"), false,
     GW_RESPONSE_INVALID, 0, GW_BODY_NONE, false, 0},
    {"103 with Content-Length 0", RAW("HTTP/1.1 103 Early Hints\r\nContent-Length: 0\r\n\r\n"),
     false, GW_RESPONSE_DONE, 103, GW_BODY_NONE, true, 0},
    {"response to HEAD has no body", RAW("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"), true,
     GW_RESPONSE_DONE, 200, GW_BODY_NONE, true, 0},
    {"response to HEAD, chunked, has no body",
     RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), true, GW_RESPONSE_DONE, 200,
     GW_BODY_NONE, true, 0},
    {"100 Continue", RAW("HTTP/1.1 100 Continue\r\n\r\n"), false, GW_RESPONSE_DONE, 100,
     GW_BODY_NONE, true, 0},
    {"101 is never kept alive", RAW("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"),
     false, GW_RESPONSE_DONE, 101, GW_BODY_NONE, false, 0},
    {"HTTP/1.0 close-delimited", RAW("HTTP/1.0 200 OK\r\n\r\n"), false, GW_RESPONSE_DONE, 200,
     GW_BODY_CLOSE, false, 0},
    {"HTTP/1.0 keep-alive with length",
     RAW("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\n"), false,
     GW_RESPONSE_DONE, 200, GW_BODY_LENGTH, true, 3},
    {"HTTP/1.0 with length, no keep-alive", RAW("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n"),
     false, GW_RESPONSE_DONE, 200, GW_BODY_LENGTH, false, 3},
    {"HTTP/1.0 keep-alive but close-delimited",
     RAW("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n"), false, GW_RESPONSE_DONE, 200,
     GW_BODY_CLOSE, false, 0},
    {"HTTP/1.1 Connection: close",
     RAW("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"), false,
     GW_RESPONSE_DONE, 200, GW_BODY_LENGTH, false, 0},
    {"HTTP/1.1 close in a list",
     RAW("HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 0\r\n\r\n"), false,
     GW_RESPONSE_DONE, 200, GW_BODY_LENGTH, false, 0},
    {"HTTP/1.1 other Connection tokens keep alive",
     RAW("HTTP/1.1 200 OK\r\nConnection: x-foo\r\nContent-Length: 0\r\n\r\n"), false,
     GW_RESPONSE_DONE, 200, GW_BODY_LENGTH, true, 0},
    {"HTTP/1.1 without length is close-delimited", RAW("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"),
     false, GW_RESPONSE_DONE, 200, GW_BODY_CLOSE, false, 0},
    {"two equal Content-Length",
     RAW("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n"), false,
     GW_RESPONSE_DONE, 200, GW_BODY_LENGTH, true, 7},
    {"Content-Length list of equal values", RAW("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n"),
     false, GW_RESPONSE_DONE, 200, GW_BODY_LENGTH, true, 7},
    {"chunked", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), false,
     GW_RESPONSE_DONE, 200, GW_BODY_CHUNKED, true, 0},
    {"chunked in capitals", RAW("HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n"), false,
     GW_RESPONSE_DONE, 200, GW_BODY_CHUNKED, true, 0},
    {"chunked wins over Content-Length, no keep-alive",
     RAW("HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n"), false,
     GW_RESPONSE_DONE, 200, GW_BODY_CHUNKED, false, 0},
    {"status line without reason", RAW("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), false,
     GW_RESPONSE_DONE, 200, GW_BODY_LENGTH, true, 0},
    {"status line with empty reason", RAW("HTTP/1.1 503 \r\nContent-Length: 0\r\n\r\n"), false,
     GW_RESPONSE_DONE, 503, GW_BODY_LENGTH, true, 0},
    {"bare LF line ends", RAW("HTTP/1.1 200 OK\nContent-Length: 2\n\n"), false, GW_RESPONSE_DONE,
     200, GW_BODY_LENGTH, true, 2},
    {"599 is a status", RAW("HTTP/1.1 599 Custom\r\nContent-Length: 0\r\n\r\n"), false,
     GW_RESPONSE_DONE, 599, GW_BODY_LENGTH, true, 0},

    /* invalid framing */
    {"two different Content-Length",
     RAW("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n"), false,
     GW_RESPONSE_INVALID, 0, GW_BODY_NONE, false, 0},
    {"Content-Length list of different values",
     RAW("HTTP/1.1 200 OK\r\nContent-Length: 7, 8\r\n\r\n"), false, GW_RESPONSE_INVALID, 0,
     GW_BODY_NONE, false, 0},
    {"Content-Length with sign", RAW("HTTP/1.1 200 OK\r\nContent-Length: +7\r\n\r\n"), false,
     GW_RESPONSE_INVALID, 0, GW_BODY_NONE, false, 0},
    {"Content-Length empty", RAW("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n"), false,
     GW_RESPONSE_INVALID, 0, GW_BODY_NONE, false, 0},
    {"Content-Length 19 digits",
     RAW("HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789\r\n\r\n"), false,
     GW_RESPONSE_INVALID, 0, GW_BODY_NONE, false, 0},
    {"different Content-Length on a 204",
     RAW("HTTP/1.1 204 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), false,
     GW_RESPONSE_INVALID, 0, GW_BODY_NONE, false, 0},
    {"Transfer-Encoding gzip", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), false,
     GW_RESPONSE_INVALID, 0, GW_BODY_NONE, false, 0},
    {"Transfer-Encoding chunked, gzip",
     RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), false, GW_RESPONSE_INVALID,
     0, GW_BODY_NONE, false, 0},
    {"Transfer-Encoding gzip, chunked",
     RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), false, GW_RESPONSE_INVALID,
     0, GW_BODY_NONE, false, 0},
    {"chunked twice",
     RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
     false, GW_RESPONSE_INVALID, 0, GW_BODY_NONE, false, 0},
    {"Transfer-Encoding empty", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n"), false,
     GW_RESPONSE_INVALID, 0, GW_BODY_NONE, false, 0},
    {"Transfer-Encoding in HTTP/1.0", RAW("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
     false, GW_RESPONSE_INVALID, 0, GW_BODY_NONE, false, 0},

    /* bad status lines */
    {"two-digit status", RAW("HTTP/1.1 20 OK\r\n\r\n"), false, GW_RESPONSE_INVALID, 0, GW_BODY_NONE,
     false, 0},
    {"four-digit status", RAW("HTTP/1.1 2000 OK\r\n\r\n"), false, GW_RESPONSE_INVALID, 0,
     GW_BODY_NONE, false, 0},
    {"letters as status", RAW("HTTP/1.1 abc\r\n\r\n"), false, GW_RESPONSE_INVALID, 0, GW_BODY_NONE,
     false, 0},
    {"status 600", RAW("HTTP/1.1 600 X\r\n\r\n"), false, GW_RESPONSE_INVALID, 0, GW_BODY_NONE,
     false, 0},
    {"status 099", RAW("HTTP/1.1 099 X\r\n\r\n"), false, GW_RESPONSE_INVALID, 0, GW_BODY_NONE,
     false, 0},
    {"HTTP/2", RAW("HTTP/2 200\r\n\r\n"), false, GW_RESPONSE_INVALID, 0, GW_BODY_NONE, false, 0},
    {"HTTP/1.2", RAW("HTTP/1.2 200 OK\r\n\r\n"), false, GW_RESPONSE_INVALID, 0, GW_BODY_NONE, false,
     0},
    {"lower-case http", RAW("http/1.1 200 OK\r\n\r\n"), false, GW_RESPONSE_INVALID, 0, GW_BODY_NONE,
     false, 0},
    {"two spaces before status", RAW("HTTP/1.1  200 OK\r\n\r\n"), false, GW_RESPONSE_INVALID, 0,
     GW_BODY_NONE, false, 0},
    {"garbage", RAW("hello world\r\n\r\n"), false, GW_RESPONSE_INVALID, 0, GW_BODY_NONE, false, 0},
    {"garbage detected early", RAW("<ht"), false, GW_RESPONSE_INVALID, 0, GW_BODY_NONE, false, 0},
    {"control byte in reason", RAW("HTTP/1.1 200 O\x01K\r\n\r\n"), false, GW_RESPONSE_INVALID, 0,
     GW_BODY_NONE, false, 0},
    {"bare CR after status line", RAW("HTTP/1.1 200 OK\rX: y\r\n\r\n"), false, GW_RESPONSE_INVALID,
     0, GW_BODY_NONE, false, 0},

    /* bad header lines */
    {"obs-fold", RAW("HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n"), false,
     GW_RESPONSE_INVALID, 0, GW_BODY_NONE, false, 0},
    {"space before colon", RAW("HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n"), false,
     GW_RESPONSE_INVALID, 0, GW_BODY_NONE, false, 0},
    {"empty header name", RAW("HTTP/1.1 200 OK\r\n: x\r\n\r\n"), false, GW_RESPONSE_INVALID, 0,
     GW_BODY_NONE, false, 0},
    {"NUL in value", RAW("HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n"), false, GW_RESPONSE_INVALID, 0,
     GW_BODY_NONE, false, 0},
    {"bare CR in value", RAW("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n"), false, GW_RESPONSE_INVALID, 0,
     GW_BODY_NONE, false, 0},
    {"bare CR as empty line", RAW("HTTP/1.1 200 OK\r\nX: a\r\n\rZ"), false, GW_RESPONSE_INVALID, 0,
     GW_BODY_NONE, false, 0},

    /* incomplete */
    {"empty buffer", RAW(""), false, GW_RESPONSE_INCOMPLETE, 0, GW_BODY_NONE, false, 0},
    {"prefix of the version", RAW("HTT"), false, GW_RESPONSE_INCOMPLETE, 0, GW_BODY_NONE, false, 0},
    {"status line cut", RAW("HTTP/1.1 20"), false, GW_RESPONSE_INCOMPLETE, 0, GW_BODY_NONE, false,
     0},
    {"reason cut", RAW("HTTP/1.1 200 O"), false, GW_RESPONSE_INCOMPLETE, 0, GW_BODY_NONE, false, 0},
    {"headers cut", RAW("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"), false, GW_RESPONSE_INCOMPLETE,
     0, GW_BODY_NONE, false, 0},
    {"final CR without LF yet", RAW("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r"), false,
     GW_RESPONSE_INCOMPLETE, 0, GW_BODY_NONE, false, 0},
};

START_TEST(test_table_results)
{
	const struct resp_case *c = &cases[_i];
	struct gw_response_head *h = malloc(sizeof(*h));
	enum gw_response_parse r =
	    gw_response_head_parse(c->raw, c->len, MAX_HEAD, c->head_request, h);

	ck_assert_msg(r == c->want, "case \"%s\": result %d, want %d", c->name, r, c->want);
	if (r == GW_RESPONSE_DONE) {
		ck_assert_msg(h->head_len == c->len, "case \"%s\": head_len %zu", c->name,
		              h->head_len);
		ck_assert_msg(h->status == c->status, "case \"%s\": status %d", c->name, h->status);
		ck_assert_msg(h->framing == c->framing, "case \"%s\": framing %d, want %d", c->name,
		              h->framing, c->framing);
		ck_assert_msg(h->keep_alive == c->keep_alive, "case \"%s\": keep_alive %d", c->name,
		              h->keep_alive);
		if (h->framing == GW_BODY_LENGTH)
			ck_assert_msg(h->content_length == c->content_length,
			              "case \"%s\": content_length %llu", c->name,
			              (unsigned long long)h->content_length);
	}
	free(h);
}
END_TEST

static struct gw_response_head head;

static enum gw_response_parse parse(const char *s, size_t len)
{
	return gw_response_head_parse(s, len, MAX_HEAD, false, &head);
}

START_TEST(test_headers_and_reason_reported)
{
	static const char r[] = "HTTP/1.1 404 Not Found\r\nContent-Type:  text/plain \r\n"
	                        "X-Empty:\r\nContent-Length: 3\r\n\r\nabc";

	ck_assert_int_eq(parse(RAW(r)), GW_RESPONSE_DONE);
	ck_assert_int_eq(head.version_minor, 1);
	ck_assert_uint_eq(head.reason_len, 9);
	ck_assert(memcmp(head.reason, "Not Found", 9) == 0);
	ck_assert_uint_eq(head.nheaders, 3);
	ck_assert_uint_eq(head.headers[0].name_len, 12);
	ck_assert(memcmp(head.headers[0].name, "Content-Type", 12) == 0);
	ck_assert_uint_eq(head.headers[0].value_len, 10);
	ck_assert(memcmp(head.headers[0].value, "text/plain", 10) == 0);
	ck_assert_uint_eq(head.headers[1].value_len, 0);
	ck_assert_uint_eq(head.head_len, sizeof(r) - 1 - 3);
}
END_TEST

START_TEST(test_missing_reason_is_empty)
{
	ck_assert_int_eq(parse(RAW("HTTP/1.0 200\r\n\r\n")), GW_RESPONSE_DONE);
	ck_assert_uint_eq(head.reason_len, 0);
	ck_assert_int_eq(head.version_minor, 0);
}
END_TEST

START_TEST(test_head_len_exact_with_body_following)
{
	static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbodyHTTP/1.1 200";

	ck_assert_int_eq(parse(RAW(r)), GW_RESPONSE_DONE);
	ck_assert_uint_eq(head.head_len, strlen("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"));
}
END_TEST

START_TEST(test_every_prefix_of_valid_head_is_incomplete)
{
	static const char r[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: y\r\n\r\n";

	for (size_t n = 0; n < sizeof(r) - 1; n++) {
		char *copy = malloc(n ? n : 1);

		memcpy(copy, r, n);
		ck_assert_msg(parse(copy, n) == GW_RESPONSE_INCOMPLETE, "prefix %zu", n);
		free(copy);
	}
}
END_TEST

START_TEST(test_head_over_limit_is_too_large)
{
	static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: 0123456789\r\n\r\n";
	size_t len = sizeof(r) - 1;
	struct gw_response_head *h = &head;

	ck_assert_int_eq(gw_response_head_parse(r, len, len, false, h), GW_RESPONSE_DONE);
	ck_assert_int_eq(gw_response_head_parse(r, len, len - 1, false, h), GW_RESPONSE_TOO_LARGE);
	ck_assert_int_eq(gw_response_head_parse(r, len, 40, false, h), GW_RESPONSE_TOO_LARGE);
}
END_TEST

START_TEST(test_incomplete_head_over_limit_is_too_large)
{
	static const char r[] =
	    "HTTP/1.1 200 OK\r\nX-Pad: 0123456789012345678901234567890123456789";

	ck_assert_int_eq(gw_response_head_parse(RAW(r), 32, false, &head), GW_RESPONSE_TOO_LARGE);
	ck_assert_int_eq(gw_response_head_parse(RAW(r), sizeof(r) - 1, false, &head),
	                 GW_RESPONSE_INCOMPLETE);
}
END_TEST

static char *many_headers(size_t n, size_t *len)
{
	size_t cap = 64 + n * 16;
	char *buf = malloc(cap);
	size_t off = (size_t)snprintf(buf, cap, "HTTP/1.1 200 OK\r\n");

	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(buf + off, cap - off, "X-%zu: v\r\n", i);
	off += (size_t)snprintf(buf + off, cap - off, "\r\n");
	*len = off;
	return buf;
}

START_TEST(test_too_many_headers_is_too_large)
{
	size_t len;
	char *ok = many_headers(GW_RESPONSE_MAX_HEADERS, &len);

	ck_assert_int_eq(gw_response_head_parse(ok, len, 1 << 20, false, &head), GW_RESPONSE_DONE);
	ck_assert_uint_eq(head.nheaders, GW_RESPONSE_MAX_HEADERS);
	free(ok);

	char *bad = many_headers(GW_RESPONSE_MAX_HEADERS + 1, &len);

	ck_assert_int_eq(gw_response_head_parse(bad, len, 1 << 20, false, &head),
	                 GW_RESPONSE_TOO_LARGE);
	free(bad);
}
END_TEST

START_TEST(test_empty_null_buffer_is_incomplete)
{
	ck_assert_int_eq(gw_response_head_parse(NULL, 0, MAX_HEAD, false, &head),
	                 GW_RESPONSE_INCOMPLETE);
}
END_TEST

START_TEST(test_largest_content_length)
{
	ck_assert_int_eq(
	    parse(RAW("HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\n")),
	    GW_RESPONSE_DONE);
	ck_assert_uint_eq(head.content_length, 999999999999999999ULL);
}
END_TEST

/* 1*DIGIT: leading zeros do not count toward the digit limit. */
START_TEST(test_content_length_leading_zeros)
{
	ck_assert_int_eq(
	    parse(RAW("HTTP/1.1 200 OK\r\nContent-Length: 0000000000000000002\r\n\r\n")),
	    GW_RESPONSE_DONE);
	ck_assert_uint_eq(head.content_length, 2);
	ck_assert_int_eq(
	    parse(RAW("HTTP/1.1 200 OK\r\nContent-Length: 01000000000000000000\r\n\r\n")),
	    GW_RESPONSE_INVALID);
}
END_TEST

/* What a HEAD or 304 answer passes on: one length, none beside chunked. */
START_TEST(test_announced_length_whatever_the_framing)
{
	ck_assert_int_eq(
	    parse(RAW(
	        "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\n")),
	    GW_RESPONSE_DONE);
	ck_assert(head.length_announced);
	ck_assert_uint_eq(head.announced_length, 5);
	ck_assert_int_eq(parse(RAW("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n"
	                           "Transfer-Encoding: chunked\r\n\r\n")),
	                 GW_RESPONSE_DONE);
	ck_assert(!head.length_announced);
	ck_assert_int_eq(parse(RAW("HTTP/1.1 200 OK\r\n\r\n")), GW_RESPONSE_DONE);
	ck_assert(!head.length_announced);
}
END_TEST

static Suite *response_head_suite(void)
{
	Suite *s = suite_create("response_head");
	TCase *tc = tcase_create("status_framing_and_keep_alive_rules");

	tcase_add_loop_test(tc, test_table_results, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	suite_add_tcase(s, tc);
	gw_test_add_case(s, "headers_and_reason_reported", test_headers_and_reason_reported,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "missing_reason_is_empty", test_missing_reason_is_empty,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "head_len_exact_with_body_following",
	                 test_head_len_exact_with_body_following, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "every_prefix_of_valid_head_is_incomplete",
	                 test_every_prefix_of_valid_head_is_incomplete, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "head_over_limit_is_too_large", test_head_over_limit_is_too_large,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "incomplete_head_over_limit_is_too_large",
	                 test_incomplete_head_over_limit_is_too_large, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "too_many_headers_is_too_large", test_too_many_headers_is_too_large,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "largest_content_length", test_largest_content_length,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "empty_null_buffer_is_incomplete", test_empty_null_buffer_is_incomplete,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "content_length_leading_zeros", test_content_length_leading_zeros,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "announced_length_whatever_the_framing",
	                 test_announced_length_whatever_the_framing, GW_TEST_DEFAULT_TIMEOUT);
	return s;
}

int main(void)
{
	return gw_test_run_suite(response_head_suite(), CK_FORK_GETENV);
}

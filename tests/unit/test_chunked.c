/*
 * gw_chunked_decode on evbuffers: whole and byte-by-byte input, extensions,
 * trailers, strict sizes, backpressure, and what is left after the end.
 */
#include <check.h>
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http/chunked.h"
#include "check_suite.h"

#define ALL ((size_t)-1)

struct fixture {
	struct gw_chunked c;
	struct evbuffer *in;
	struct evbuffer *out;
};

static struct fixture fx;

static void setup(void)
{
	gw_chunked_init(&fx.c);
	fx.in = evbuffer_new();
	fx.out = evbuffer_new();
}

static void teardown(void)
{
	evbuffer_free(fx.in);
	evbuffer_free(fx.out);
}

static enum gw_chunked_result feed(const char *s, size_t len, size_t max_out)
{
	evbuffer_add(fx.in, s, len);
	return gw_chunked_decode(&fx.c, fx.in, fx.out, max_out);
}

static enum gw_chunked_result feed_str(const char *s)
{
	return feed(s, strlen(s), ALL);
}

/* The payload decoded so far, NUL-terminated, owned by the caller. */
static char *out_string(void)
{
	size_t n = evbuffer_get_length(fx.out);
	char *s = malloc(n + 1);

	evbuffer_copyout(fx.out, s, n);
	s[n] = '\0';
	return s;
}

static void assert_out(const char *want)
{
	char *got = out_string();

	ck_assert_str_eq(got, want);
	free(got);
}

START_TEST(test_whole_body_in_one_buffer)
{
	ck_assert_int_eq(feed_str("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), GW_CHUNKED_FINISHED);
	assert_out("hello world");
	ck_assert_uint_eq(evbuffer_get_length(fx.in), 0);
	ck_assert_int_eq(fx.c.state, GW_CHUNKED_DONE);
}
END_TEST

START_TEST(test_byte_by_byte)
{
	static const char body[] = "5;a=b\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
	                           "0\r\nX-Trailer: 1\r\n\r\n";
	size_t n = sizeof(body) - 1;

	for (size_t i = 0; i + 1 < n; i++)
		ck_assert_msg(feed(body + i, 1, ALL) == GW_CHUNKED_MORE, "byte %zu", i);
	ck_assert_int_eq(feed(body + n - 1, 1, ALL), GW_CHUNKED_FINISHED);
	assert_out("helloabcdefghijklmnopqrstuvwxyz");
	ck_assert_uint_eq(evbuffer_get_length(fx.in), 0);
}
END_TEST

START_TEST(test_extensions_skipped)
{
	ck_assert_int_eq(feed_str("5;name=value;q=\"quoted str\"\r\nhello\r\n"
	                          "3 ;x\r\nabc\r\n0;last\r\n\r\n"),
	                 GW_CHUNKED_FINISHED);
	assert_out("helloabc");
}
END_TEST

START_TEST(test_trailers_consumed)
{
	ck_assert_int_eq(
	    feed_str("2\r\nhi\r\n0\r\nX-Checksum: abc\r\nServer-Timing: db;dur=3\r\n\r\n"),
	    GW_CHUNKED_FINISHED);
	assert_out("hi");
	ck_assert_uint_eq(evbuffer_get_length(fx.in), 0);
}
END_TEST

START_TEST(test_bad_trailer_invalid)
{
	ck_assert_int_eq(feed_str("0\r\nno colon here\r\n\r\n"), GW_CHUNKED_INVALID);
}
END_TEST

START_TEST(test_upper_and_lower_hex_and_leading_zeros)
{
	ck_assert_int_eq(
	    feed_str("00000000000000000000A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n"),
	    GW_CHUNKED_FINISHED);
	ck_assert_uint_eq(evbuffer_get_length(fx.out), 20);
}
END_TEST

static const char *const bad_size_lines[] = {
    "0x5\r\nhello\r\n",      /* C-style prefix */
    "-5\r\nhello\r\n",       /* sign */
    "+5\r\nhello\r\n",       /* sign */
    " 5\r\nhello\r\n",       /* leading space */
    "5 \r\nhello\r\n",       /* trailing space without extension */
    "\r\nhello\r\n",         /* no digits */
    ";x\r\nhello\r\n",       /* extension without size */
    "5g\r\nhello\r\n",       /* not hex */
    "5\nhello\r\n",          /* bare LF */
    "5\r\r\nhello\r\n",      /* CR in the line */
    "10000000000000000\r\n", /* 2^64: overflow */
    "fffffffffffffffff\r\n", /* 17 significant digits: overflow */
    "5;a\x01\r\nhello\r\n",  /* control byte in extension */
};

START_TEST(test_bad_size_line_invalid)
{
	ck_assert_msg(feed_str(bad_size_lines[_i]) == GW_CHUNKED_INVALID, "size line %d", _i);
	ck_assert_int_eq(fx.c.state, GW_CHUNKED_ERROR);
	ck_assert_uint_eq(evbuffer_get_length(fx.out), 0);
}
END_TEST

START_TEST(test_largest_size_accepted)
{
	ck_assert_int_eq(feed_str("ffffffffffffffff\r\nabc"), GW_CHUNKED_MORE);
	ck_assert_int_eq(fx.c.state, GW_CHUNKED_DATA);
	ck_assert_uint_eq(fx.c.remaining, UINT64_MAX - 3);
}
END_TEST

START_TEST(test_missing_crlf_after_data_invalid)
{
	ck_assert_int_eq(feed_str("5\r\nhelloX\r\n0\r\n\r\n"), GW_CHUNKED_INVALID);
}
END_TEST

START_TEST(test_lf_only_after_data_invalid)
{
	ck_assert_int_eq(feed_str("5\r\nhello\n0\r\n\r\n"), GW_CHUNKED_INVALID);
}
END_TEST

START_TEST(test_invalid_is_sticky)
{
	ck_assert_int_eq(feed_str("0x1\r\n"), GW_CHUNKED_INVALID);
	ck_assert_int_eq(feed_str("1\r\na\r\n0\r\n\r\n"), GW_CHUNKED_INVALID);
}
END_TEST

static char *line_of(size_t total, const char *prefix)
{
	char *s = malloc(total + 1);
	size_t p = strlen(prefix);

	memcpy(s, prefix, p);
	memset(s + p, 'x', total - p - 2);
	memcpy(s + total - 2, "\r\n", 2);
	s[total] = '\0';
	return s;
}

START_TEST(test_size_line_of_1024_bytes_accepted)
{
	char *line = line_of(1024, "3;ext=");

	ck_assert_int_eq(feed_str(line), GW_CHUNKED_MORE);
	ck_assert_int_eq(feed_str("abc\r\n0\r\n\r\n"), GW_CHUNKED_FINISHED);
	assert_out("abc");
	free(line);
}
END_TEST

START_TEST(test_size_line_over_1024_bytes_invalid)
{
	char *line = line_of(1025, "3;ext=");

	ck_assert_int_eq(feed_str(line), GW_CHUNKED_INVALID);
	free(line);
}
END_TEST

START_TEST(test_endless_size_line_invalid_without_lf)
{
	char junk[600];

	memset(junk, '0', sizeof(junk));
	ck_assert_int_eq(feed(junk, sizeof(junk), ALL), GW_CHUNKED_MORE);
	ck_assert_int_eq(feed(junk, sizeof(junk), ALL), GW_CHUNKED_INVALID);
}
END_TEST

START_TEST(test_max_out_backpressure)
{
	char payload[100];
	size_t calls = 0;
	enum gw_chunked_result r;

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (char)('a' + i % 26);
	evbuffer_add_printf(fx.in, "%zx\r\n", sizeof(payload));
	evbuffer_add(fx.in, payload, sizeof(payload));
	evbuffer_add_printf(fx.in, "\r\n0\r\n\r\n");

	do {
		size_t before = evbuffer_get_length(fx.out);

		r = gw_chunked_decode(&fx.c, fx.in, fx.out, 7);
		ck_assert_uint_le(evbuffer_get_length(fx.out) - before, 7);
		calls++;
		ck_assert_uint_lt(calls, 100);
	} while (r == GW_CHUNKED_MORE);
	ck_assert_int_eq(r, GW_CHUNKED_FINISHED);
	ck_assert_uint_eq(calls, 15); /* ceil(100 / 7) */
	ck_assert_uint_eq(evbuffer_get_length(fx.out), sizeof(payload));
	ck_assert(memcmp(evbuffer_pullup(fx.out, -1), payload, sizeof(payload)) == 0);
}
END_TEST

START_TEST(test_max_out_zero_moves_nothing)
{
	ck_assert_int_eq(feed("5\r\nhello\r\n0\r\n\r\n", 15, 0), GW_CHUNKED_MORE);
	ck_assert_uint_eq(evbuffer_get_length(fx.out), 0);
	ck_assert_int_eq(gw_chunked_decode(&fx.c, fx.in, fx.out, ALL), GW_CHUNKED_FINISHED);
	assert_out("hello");
}
END_TEST

START_TEST(test_bytes_after_end_preserved)
{
	static const char next[] = "HTTP/1.1 200 OK\r\n";

	ck_assert_int_eq(feed_str("3\r\nabc\r\n0\r\nT: 1\r\n\r\nHTTP/1.1 200 OK\r\n"),
	                 GW_CHUNKED_FINISHED);
	assert_out("abc");
	ck_assert_uint_eq(evbuffer_get_length(fx.in), sizeof(next) - 1);
	ck_assert(memcmp(evbuffer_pullup(fx.in, -1), next, sizeof(next) - 1) == 0);
	/* finished stays finished and consumes nothing more */
	ck_assert_int_eq(gw_chunked_decode(&fx.c, fx.in, fx.out, ALL), GW_CHUNKED_FINISHED);
	ck_assert_uint_eq(evbuffer_get_length(fx.in), sizeof(next) - 1);
}
END_TEST

/* A payload that sits in its own chain is handed over, not copied: the
 * output's first chain is the very memory that was added by reference. */
START_TEST(test_payload_moved_without_copy)
{
	static char payload[4096];
	struct evbuffer_iovec v;

	memset(payload, 'p', sizeof(payload));
	evbuffer_add(fx.in, "1000\r\n", 6);
	evbuffer_add_reference(fx.in, payload, sizeof(payload), NULL, NULL);
	evbuffer_add(fx.in, "\r\n0\r\n\r\n", 7);
	ck_assert_int_eq(gw_chunked_decode(&fx.c, fx.in, fx.out, ALL), GW_CHUNKED_FINISHED);
	ck_assert_uint_eq(evbuffer_get_length(fx.out), sizeof(payload));
	ck_assert_int_eq(evbuffer_peek(fx.out, -1, NULL, &v, 1), 1);
	ck_assert_ptr_eq(v.iov_base, payload);
}
END_TEST

START_TEST(test_empty_body)
{
	ck_assert_int_eq(feed_str("0\r\n\r\n"), GW_CHUNKED_FINISHED);
	ck_assert_uint_eq(evbuffer_get_length(fx.out), 0);
}
END_TEST

START_TEST(test_no_input_needs_more)
{
	ck_assert_int_eq(gw_chunked_decode(&fx.c, fx.in, fx.out, ALL), GW_CHUNKED_MORE);
}
END_TEST

static Suite *chunked_suite(void)
{
	Suite *s = suite_create("chunked");
	TCase *tc;

	gw_test_add_fixture_case(s, "whole_body_in_one_buffer", test_whole_body_in_one_buffer,
	                         GW_TEST_DEFAULT_TIMEOUT, setup, teardown);
	gw_test_add_fixture_case(s, "byte_by_byte", test_byte_by_byte, GW_TEST_DEFAULT_TIMEOUT,
	                         setup, teardown);
	gw_test_add_fixture_case(s, "extensions_skipped", test_extensions_skipped,
	                         GW_TEST_DEFAULT_TIMEOUT, setup, teardown);
	gw_test_add_fixture_case(s, "trailers_consumed", test_trailers_consumed,
	                         GW_TEST_DEFAULT_TIMEOUT, setup, teardown);
	gw_test_add_fixture_case(s, "bad_trailer_invalid", test_bad_trailer_invalid,
	                         GW_TEST_DEFAULT_TIMEOUT, setup, teardown);
	gw_test_add_fixture_case(s, "upper_and_lower_hex_and_leading_zeros",
	                         test_upper_and_lower_hex_and_leading_zeros,
	                         GW_TEST_DEFAULT_TIMEOUT, setup, teardown);
	tc = tcase_create("bad_size_line_invalid");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_bad_size_line_invalid, 0,
	                    (int)(sizeof(bad_size_lines) / sizeof(bad_size_lines[0])));
	suite_add_tcase(s, tc);
	gw_test_add_fixture_case(s, "largest_size_accepted", test_largest_size_accepted,
	                         GW_TEST_DEFAULT_TIMEOUT, setup, teardown);
	gw_test_add_fixture_case(s, "missing_crlf_after_data_invalid",
	                         test_missing_crlf_after_data_invalid, GW_TEST_DEFAULT_TIMEOUT,
	                         setup, teardown);
	gw_test_add_fixture_case(s, "lf_only_after_data_invalid", test_lf_only_after_data_invalid,
	                         GW_TEST_DEFAULT_TIMEOUT, setup, teardown);
	gw_test_add_fixture_case(s, "invalid_is_sticky", test_invalid_is_sticky,
	                         GW_TEST_DEFAULT_TIMEOUT, setup, teardown);
	gw_test_add_fixture_case(s, "size_line_of_1024_bytes_accepted",
	                         test_size_line_of_1024_bytes_accepted, GW_TEST_DEFAULT_TIMEOUT,
	                         setup, teardown);
	gw_test_add_fixture_case(s, "size_line_over_1024_bytes_invalid",
	                         test_size_line_over_1024_bytes_invalid, GW_TEST_DEFAULT_TIMEOUT,
	                         setup, teardown);
	gw_test_add_fixture_case(s, "endless_size_line_invalid_without_lf",
	                         test_endless_size_line_invalid_without_lf, GW_TEST_DEFAULT_TIMEOUT,
	                         setup, teardown);
	gw_test_add_fixture_case(s, "max_out_backpressure", test_max_out_backpressure,
	                         GW_TEST_DEFAULT_TIMEOUT, setup, teardown);
	gw_test_add_fixture_case(s, "max_out_zero_moves_nothing", test_max_out_zero_moves_nothing,
	                         GW_TEST_DEFAULT_TIMEOUT, setup, teardown);
	gw_test_add_fixture_case(s, "bytes_after_end_preserved", test_bytes_after_end_preserved,
	                         GW_TEST_DEFAULT_TIMEOUT, setup, teardown);
	gw_test_add_fixture_case(s, "payload_moved_without_copy", test_payload_moved_without_copy,
	                         GW_TEST_DEFAULT_TIMEOUT, setup, teardown);
	gw_test_add_fixture_case(s, "empty_body", test_empty_body, GW_TEST_DEFAULT_TIMEOUT, setup,
	                         teardown);
	gw_test_add_fixture_case(s, "no_input_needs_more", test_no_input_needs_more,
	                         GW_TEST_DEFAULT_TIMEOUT, setup, teardown);
	return s;
}

int main(void)
{
	return gw_test_run_suite(chunked_suite(), CK_FORK_GETENV);
}

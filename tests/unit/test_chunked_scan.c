/*
 * The chunked request-body checker: strict framing, any piece boundaries,
 * the body size limit, and where the body ends.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http/chunked_scan.h"
#include "check_suite.h"

#define NO_LIMIT UINT64_MAX

/* Feeds the whole text at once. */
static enum gw_chunk_scan_result scan_all(const char *text, uint64_t max, size_t *used,
                                          struct gw_chunk_scan *s)
{
	memset(s, 0, sizeof(*s));
	return gw_chunk_scan_feed(s, text, strlen(text), max, used);
}

/* Feeds one byte at a time; returns the first result that is not MORE. */
static enum gw_chunk_scan_result scan_bytewise(const char *text, uint64_t max, size_t *at)
{
	struct gw_chunk_scan s;
	size_t len = strlen(text);

	memset(&s, 0, sizeof(s));
	for (size_t i = 0; i < len; i++) {
		size_t used = 0;
		enum gw_chunk_scan_result r = gw_chunk_scan_feed(&s, text + i, 1, max, &used);
		if (r != GW_CSCAN_MORE) {
			*at = i + used;
			return r;
		}
	}
	*at = len;
	return GW_CSCAN_MORE;
}

START_TEST(test_valid_body_finishes_at_its_end)
{
	const char *body = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
	struct gw_chunk_scan s;
	size_t used = 0;

	ck_assert_int_eq(scan_all(body, NO_LIMIT, &used, &s), GW_CSCAN_FINISHED);
	ck_assert_uint_eq(used, strlen("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
	ck_assert_uint_eq(s.total, 11);
}
END_TEST

START_TEST(test_piece_boundaries_do_not_matter)
{
	const char *body = "a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\nX-T: 1\r\n\r\n";
	size_t at = 0;

	ck_assert_int_eq(scan_bytewise(body, NO_LIMIT, &at), GW_CSCAN_FINISHED);
	ck_assert_uint_eq(at, strlen(body));
}
END_TEST

START_TEST(test_incomplete_body_asks_for_more)
{
	struct gw_chunk_scan s;
	size_t used = 0;

	ck_assert_int_eq(scan_all("5\r\nhel", NO_LIMIT, &used, &s), GW_CSCAN_MORE);
	ck_assert_uint_eq(used, 6);
	ck_assert_int_eq(scan_all("5\r\nhello\r\n0\r\n", NO_LIMIT, &used, &s), GW_CSCAN_MORE);
}
END_TEST

START_TEST(test_malformed_framing_refused)
{
	static const char *const bad[] = {
	    "0x5\r\nhello\r\n0\r\n\r\n",     /* hex prefix */
	    "zz\r\nhello\r\n0\r\n\r\n",      /* not hex */
	    "-5\r\nhello\r\n0\r\n\r\n",      /* sign */
	    "\r\nhello\r\n0\r\n\r\n",        /* empty size */
	    "3\r\nhello\r\n0\r\n\r\n",       /* data longer than the size */
	    "5\nhello\r\n0\r\n\r\n",         /* bare LF after the size */
	    "5\r\nhello\n0\r\n\r\n",         /* bare LF after data */
	    "5;ext=1\r\nhello\r\n0\r\n\r\n", /* extensions are refused */
	    "1000000000000000\r\n",          /* 16 hex digits */
	    "5 \r\nhello\r\n0\r\n\r\n",      /* space after the size */
	    "0\r\nX: a\nb\r\n\r\n",          /* bare LF in a trailer */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gw_chunk_scan s;
		size_t used = 0;
		size_t at = 0;

		ck_assert_msg(scan_all(bad[i], NO_LIMIT, &used, &s) == GW_CSCAN_BAD, "whole: %s",
		              bad[i]);
		ck_assert_msg(scan_bytewise(bad[i], NO_LIMIT, &at) == GW_CSCAN_BAD, "bytewise: %s",
		              bad[i]);
	}
}
END_TEST

START_TEST(test_limit_counts_payload_not_framing)
{
	struct gw_chunk_scan s;
	size_t used = 0;

	ck_assert_int_eq(scan_all("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 10, &used, &s),
	                 GW_CSCAN_FINISHED);
	ck_assert_int_eq(scan_all("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 10, &used, &s),
	                 GW_CSCAN_TOO_LARGE);
}
END_TEST

START_TEST(test_limit_is_known_before_the_data_arrives)
{
	struct gw_chunk_scan s;
	size_t used = 0;

	/* The size line alone is enough to refuse. */
	ck_assert_int_eq(scan_all("ffffff\r\n", 1024, &used, &s), GW_CSCAN_TOO_LARGE);
}
END_TEST

static Suite *chunked_scan_suite(void)
{
	Suite *s = suite_create("chunked_scan");
	struct {
		const char *name;
		const TTest *test;
	} cases[] = {
	    {"valid_body_finishes_at_its_end", test_valid_body_finishes_at_its_end},
	    {"piece_boundaries_do_not_matter", test_piece_boundaries_do_not_matter},
	    {"incomplete_body_asks_for_more", test_incomplete_body_asks_for_more},
	    {"malformed_framing_refused", test_malformed_framing_refused},
	    {"limit_counts_payload_not_framing", test_limit_counts_payload_not_framing},
	    {"limit_is_known_before_the_data_arrives", test_limit_is_known_before_the_data_arrives},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gw_test_add_case(s, cases[i].name, cases[i].test, GW_TEST_DEFAULT_TIMEOUT);
	}
	return s;
}

int main(void)
{
	return gw_test_run_suite(chunked_scan_suite(), CK_FORK_GETENV);
}

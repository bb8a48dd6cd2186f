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

/* Issue 11: a trailer is checked like a head. Before, any line but one with
 * a bare LF or NUL passed, and evhttp answered a line it could not parse
 * with its own HTML 413. */
START_TEST(test_trailer_checked_like_a_head)
{
	static const char *const bad[] = {
	    "0\r\nbad trailer\r\n\r\n",                /* no colon */
	    "0\r\nX-T: a\r\n b\r\n\r\n",               /* obs-fold */
	    "0\r\n\tX-T: a\r\n\r\n",                   /* whitespace before the name */
	    "0\r\nX-T : a\r\n\r\n",                    /* space before the colon */
	    "0\r\n: a\r\n\r\n",                        /* empty name */
	    "0\r\nX(T: a\r\n\r\n",                     /* name not a token */
	    "0\r\nX-T: a\x01b\r\n\r\n",                /* control byte in the value */
	    "0\r\nX-T: a\rb\r\n\r\n",                  /* bare CR in the value */
	    "0\r\nContent-Length: 5\r\n\r\n",          /* framing */
	    "0\r\ncontent-length: 5\r\n\r\n",          /* any case */
	    "0\r\nTransfer-Encoding: chunked\r\n\r\n", /* framing */
	    "0\r\nHost: evil.example\r\n\r\n",         /* routing */
	    "0\r\nX-T: a\r\nHOST: b\r\n\r\n",          /* not only on the first line */
	    "0\r\n\r\r\n",                             /* CR not followed by LF at the end */
	};
	static const char *const good[] = {
	    "0\r\n\r\n",
	    "0\r\nX-T: a\r\n\r\n",
	    "0\r\nX-T:\r\n\r\n",                     /* empty value */
	    "0\r\nX-T: a\tb \xff\r\nX-U: c\r\n\r\n", /* HTAB, obs-text */
	    "0\r\nHost-Name: a\r\nContent-Lengths: 1\r\nX-Transfer-Encoding: c\r\n\r\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gw_chunk_scan s;
		size_t used = 0, at = 0;

		ck_assert_msg(scan_all(bad[i], NO_LIMIT, &used, &s) == GW_CSCAN_BAD, "whole: %s",
		              bad[i]);
		ck_assert_msg(scan_bytewise(bad[i], NO_LIMIT, &at) == GW_CSCAN_BAD, "bytewise: %s",
		              bad[i]);
		ck_assert_uint_eq(used, at);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct gw_chunk_scan s;
		size_t used = 0, at = 0;

		ck_assert_msg(scan_all(good[i], NO_LIMIT, &used, &s) == GW_CSCAN_FINISHED, "%s",
		              good[i]);
		ck_assert_uint_eq(used, strlen(good[i]));
		ck_assert_msg(scan_bytewise(good[i], NO_LIMIT, &at) == GW_CSCAN_FINISHED, "%s",
		              good[i]);
		ck_assert_uint_eq(at, strlen(good[i]));
	}
}
END_TEST

/* The trailer section has a budget, like the head (evhttp counts head and
 * trailer together and answers 413 itself past its own limit). */
START_TEST(test_trailer_section_is_bounded)
{
	struct gw_request_head h = {
	    .method = "POST", .method_len = 4, .head_len = 4, .chunked = true};
	struct gw_chunk_scan s;
	char body[200];
	size_t used = 0;

	/* "0\r\n" + 7 lines of "X-T: 123456789\r\n" (16 bytes) + "\r\n" */
	strcpy(body, "0\r\n");
	for (int i = 0; i < 7; i++)
		strcat(body, "X-T: 123456789\r\n");
	strcat(body, "\r\n");

	ck_assert_int_eq(gw_chunk_scan_start(&s, "POST", &h, 114), 0);
	ck_assert_int_eq(gw_chunk_scan_feed(&s, body, strlen(body), NO_LIMIT, &used),
	                 GW_CSCAN_FINISHED);
	ck_assert_int_eq(gw_chunk_scan_start(&s, "POST", &h, 113), 0);
	ck_assert_int_eq(gw_chunk_scan_feed(&s, body, strlen(body), NO_LIMIT, &used), GW_CSCAN_BAD);
	ck_assert_uint_eq(used, strlen(body) - 1); /* the byte past the budget */

	/* Without gw_chunk_scan_start: 4096 bytes. */
	{
		char big[5000];
		memset(big, 'a', sizeof(big));
		memcpy(big, "0\r\nX-T: ", 8);
		memcpy(big + sizeof(big) - 4, "\r\n\r\n", 4);
		memset(&s, 0, sizeof(s));
		ck_assert_int_eq(gw_chunk_scan_feed(&s, big, sizeof(big), NO_LIMIT, &used),
		                 GW_CSCAN_BAD);
		ck_assert_uint_eq(used, 3 + 4096);
	}
}
END_TEST

/* A head as gw_request_head_check would describe it, for gw_chunk_scan_start. */
static int start_with_head(const char *head)
{
	struct gw_request_head h = {0};
	struct gw_chunk_scan s;
	const char *why = NULL;

	ck_assert_msg(gw_request_head_check(head, strlen(head), 65536, 1 << 20, &h, &why) ==
	                  GW_HEAD_OK,
	              "%s: %s", head, why ? why : "");
	return gw_chunk_scan_start(&s, head, &h, 65536);
}

/* Issue 11: evhttp answered an Expect other than 100-continue with its own
 * HTML 417 (when a body followed) or forwarded the request (when none did). */
START_TEST(test_expect_other_than_100_continue_is_417)
{
	ck_assert_int_eq(start_with_head("POST /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
	                                 "Content-Length: 2\r\n\r\n"),
	                 0);
	ck_assert_int_eq(start_with_head("POST /a HTTP/1.1\r\nHost: h\r\nexpect:  100-Continue \r\n"
	                                 "Content-Length: 2\r\n\r\n"),
	                 0);
	ck_assert_int_eq(start_with_head("GET /a HTTP/1.1\r\nHost: h\r\nExpect-CT: x\r\n\r\n"), 0);
	ck_assert_int_eq(start_with_head("GET /a HTTP/1.1\r\nHost: h\r\nX-Expect: x\r\n\r\n"), 0);
	ck_assert_int_eq(start_with_head("POST /a HTTP/1.1\r\nHost: h\r\nExpect: foo\r\n"
	                                 "Content-Length: 2\r\n\r\n"),
	                 417);
	ck_assert_int_eq(start_with_head("GET /a HTTP/1.1\r\nHost: h\r\nExpect: foo\r\n\r\n"), 417);
	ck_assert_int_eq(start_with_head("POST /a HTTP/1.0\r\nExpect: foo\r\n\r\n"), 417);
	ck_assert_int_eq(start_with_head("POST /a HTTP/1.1\r\nHost: h\r\nExpect:\r\n\r\n"), 417);
	ck_assert_int_eq(
	    start_with_head("POST /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue, foo\r\n\r\n"),
	    417);
	ck_assert_int_eq(start_with_head("POST /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
	                                 "Expect: foo\r\n\r\n"),
	                 417);
	ck_assert_int_eq(
	    start_with_head("POST /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continuex\r\n\r\n"), 417);
	/* evhttp keeps a leading tab in the value, and answers 417 itself. */
	ck_assert_int_eq(start_with_head("POST /a HTTP/1.1\r\nHost: h\r\nExpect:\t100-continue\r\n"
	                                 "Content-Length: 2\r\n\r\n"),
	                 417);
	ck_assert_int_eq(start_with_head("POST /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\t\r\n"
	                                 "Content-Length: 2\r\n\r\n"),
	                 0);
}
END_TEST

/* evhttp reads no body for HEAD: the body would be the next request. */
START_TEST(test_head_with_a_body_is_refused)
{
	ck_assert_int_eq(start_with_head("HEAD /a HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
	ck_assert_int_eq(
	    start_with_head("HEAD /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"), 0);
	ck_assert_int_eq(
	    start_with_head("HEAD /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n"), 400);
	ck_assert_int_eq(
	    start_with_head("HEAD /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"),
	    400);
	ck_assert_int_eq(start_with_head("GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n"),
	                 0);
}
END_TEST

/* gw_chunk_scan_start leaves a fresh scanner, whatever was in it. */
START_TEST(test_start_resets_the_scanner)
{
	struct gw_request_head h = {
	    .method = "POST", .method_len = 4, .head_len = 4, .chunked = true};
	struct gw_chunk_scan s;
	size_t used = 0;

	memset(&s, 0xa5, sizeof(s));
	ck_assert_int_eq(gw_chunk_scan_start(&s, "POST", &h, 16384), 0);
	ck_assert_int_eq(gw_chunk_scan_feed(&s, "2\r\nhi\r\n0\r\n\r\n", 12, NO_LIMIT, &used),
	                 GW_CSCAN_FINISHED);
	ck_assert_uint_eq(s.total, 2);
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
	    {"trailer_checked_like_a_head", test_trailer_checked_like_a_head},
	    {"trailer_section_is_bounded", test_trailer_section_is_bounded},
	    {"expect_other_than_100_continue_is_417", test_expect_other_than_100_continue_is_417},
	    {"head_with_a_body_is_refused", test_head_with_a_body_is_refused},
	    {"start_resets_the_scanner", test_start_resets_the_scanner},
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

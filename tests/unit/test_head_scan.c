/*
 * gw_head_scan: the resumable request head check. Fed a head in pieces, it
 * reaches exactly the verdicts of the one-shot check on every prefix, and
 * the bytes it looks at stay linear in the head's size (issue 11 defect 1:
 * the connection guard used to check the whole head again on every read).
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http/request_head.h"
#include "check_suite.h"

#define MAX_HEAD (8 * 1024)
#define MAX_BODY (1024 * 1024)

#define RAW(s) s, sizeof(s) - 1

struct raw_head {
	const char *raw;
	size_t len;
};

/* Good and bad heads covering every stage of the scan (request line, each
 * part of a field line, the final checks), followed by extra bytes or not. */
static const struct raw_head heads[] = {
    {RAW("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")},
    {RAW("POST /api?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody")},
    {RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody")},
    {RAW("GET / HTTP/1.0\r\n\r\n")},
    {RAW("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")},
    {RAW("GET http://a.example:80/x HTTP/1.1\r\nHost: a.example:80\r\n\r\n")},
    {RAW("GET https://a.example?q HTTP/1.0\r\n\r\n")},
    {RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\tb \xc3\xa9  \r\nX-Empty:\r\nY:\t \r\n\r\n")},
    {RAW("GET / HTTP/1.1\r\nHost: a\r\nContent-Length:\t 12 \r\n\r\n")},
    {RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n")},
    {RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n")},
    {RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n")},
    {RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n")},
    {RAW("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n")},
    {RAW("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")},
    {RAW("GET / HTTP/1.1\r\nHost: a b\r\n\r\n")},
    {RAW("GET / HTTP/1.1\r\n\r\n")},
    {RAW("GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n")},
    {RAW("GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n")},
    {RAW("GET http:// HTTP/1.1\r\nHost: a\r\n\r\n")},
    {RAW("GET * HTTP/1.1\r\nHost: a\r\n\r\n")},
    {RAW("GET x HTTP/1.1\r\nHost: a\r\n\r\n")},
    {RAW("GET  / HTTP/1.1\r\nHost: a\r\n\r\n")},
    {RAW("GET / HTTP/1.1 \r\nHost: a\r\n\r\n")},
    {RAW("GET /\r\n\r\n")},
    {RAW("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n")},
    {RAW("GET / HTTP/2.0\r\nHost: a\r\n\r\n")},
    {RAW("GET / HTTP/0.9\r\nHost: a\r\n\r\n")},
    {RAW("GET / HTTP/1.1\nHost: a\r\n\r\n")},
    {RAW("GET / HTTP/1.1\rHost: a\r\n\r\n")},
    {RAW("GET / HTTP/1.1\r\nHost: a\n\r\n")},
    {RAW("GET / HTTP/1.1\r\nHost: a\rX\r\n\r\n")},
    {RAW("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n")},
    {RAW("GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n")},
    {RAW("GET / HTTP/1.1\r\nHost: a\r\n: y\r\n\r\n")},
    {RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\x00z\r\n\r\n")},
    {RAW("GET / HTTP/1.1\r\nHost: a\r\n\n")},
    {RAW("GET / HTTP/1.1\r\nHost: a\r\n\rX")},
    {RAW("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n")},
    {RAW("TRACE / HTTP/1.1\r\nHost: a\r\n\r\n")},
    {RAW(" GET / HTTP/1.1\r\nHost: a\r\n\r\n")},
    {RAW("G(T / HTTP/1.1\r\nHost: a\r\n\r\n")},
};

/* Two checks agree: verdict, reason and every field (pointers compared as
 * offsets into their own buffers). */
static void assert_same(const char *what, size_t at, enum gw_head_verdict v1,
                        const struct gw_request_head *h1, const char *why1, const char *b1,
                        enum gw_head_verdict v2, const struct gw_request_head *h2, const char *why2,
                        const char *b2)
{
#define OFF(h, f, b) ((h)->f ? (ptrdiff_t)((h)->f - (b)) : (ptrdiff_t)-1)
	ck_assert_msg(v1 == v2, "%s, %zu bytes: verdict %d in pieces, %d at once", what, at, v1,
	              v2);
	ck_assert_msg((why1 == NULL) == (why2 == NULL) && (!why1 || strcmp(why1, why2) == 0),
	              "%s, %zu bytes: reason '%s' in pieces, '%s' at once", what, at,
	              why1 ? why1 : "(none)", why2 ? why2 : "(none)");
	if (v1 != GW_HEAD_OK)
		return;
	ck_assert_uint_eq(h1->head_len, h2->head_len);
	ck_assert_int_eq(OFF(h1, method, b1), OFF(h2, method, b2));
	ck_assert_uint_eq(h1->method_len, h2->method_len);
	ck_assert_int_eq(OFF(h1, target, b1), OFF(h2, target, b2));
	ck_assert_uint_eq(h1->target_len, h2->target_len);
	ck_assert_int_eq(OFF(h1, path, b1), OFF(h2, path, b2));
	ck_assert_uint_eq(h1->path_len, h2->path_len);
	ck_assert_int_eq(OFF(h1, host, b1), OFF(h2, host, b2));
	ck_assert_uint_eq(h1->host_len, h2->host_len);
	ck_assert_int_eq(h1->version_major, h2->version_major);
	ck_assert_int_eq(h1->version_minor, h2->version_minor);
	ck_assert_int_eq(h1->has_content_length, h2->has_content_length);
	ck_assert_uint_eq(h1->content_length, h2->content_length);
	ck_assert_int_eq(h1->chunked, h2->chunked);
	ck_assert_int_eq(h1->absolute_form, h2->absolute_form);
#undef OFF
}

/*
 * Feeds raw in pieces of `step` bytes (0: growing pieces 1, 2, 3 ...), each
 * call on a fresh copy of the bytes so far (the caller's buffer moves as it
 * grows), and compares every answer with the one-shot check of that prefix.
 */
static void feed_and_compare(const char *raw, size_t len, size_t step, uint64_t max_head)
{
	struct gw_head_scan st;
	size_t have = 0, piece = 1;

	gw_head_scan_init(&st);
	while (have < len) {
		struct gw_request_head h1, h2;
		const char *why1 = NULL, *why2 = NULL;
		enum gw_head_verdict v1, v2;
		char *copy;

		have += step ? step : piece++;
		if (have > len)
			have = len;
		copy = malloc(have ? have : 1);
		memcpy(copy, raw, have);
		v1 = gw_head_scan_feed(&st, copy, have, max_head, MAX_BODY, &h1, &why1);
		v2 = gw_request_head_check(raw, have, max_head, MAX_BODY, &h2, &why2);
		assert_same(raw, have, v1, &h1, why1, copy, v2, &h2, why2, raw);
		free(copy);
		if (v1 != GW_HEAD_INCOMPLETE)
			return;
	}
}

START_TEST(pieces_agree_with_one_shot)
{
	static const size_t steps[] = {1, 2, 3, 5, 7, 16, 0};

	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++)
		for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
			feed_and_compare(heads[i].raw, heads[i].len, steps[k], MAX_HEAD);
			/* a limit inside the head: 414/431 reached the same way */
			feed_and_compare(heads[i].raw, heads[i].len, steps[k], 20);
		}
}
END_TEST

/* A long target, a long value and the version cut at every byte. */
START_TEST(limits_agree_with_one_shot)
{
	char *buf = malloc(3 * 1024);
	size_t n;

	n = (size_t)snprintf(buf, 3 * 1024, "GET /");
	memset(buf + n, 't', 2000);
	n += 2000;
	n += (size_t)snprintf(buf + n, 3 * 1024 - n, " HTTP/1.1\r\nHost: a\r\n\r\n");
	for (uint64_t lim = 1990; lim < 2040; lim += 7) {
		feed_and_compare(buf, n, 1, lim);
		feed_and_compare(buf, n, 13, lim);
	}
	feed_and_compare(buf, n, 1, MAX_HEAD);

	n = (size_t)snprintf(buf, 3 * 1024, "GET / HTTP/1.1\r\nHost: a\r\nX-Long: ");
	memset(buf + n, 'v', 2000);
	n += 2000;
	n += (size_t)snprintf(buf + n, 3 * 1024 - n, "\r\n\r\n");
	for (uint64_t lim = 2000; lim < 2060; lim += 11)
		feed_and_compare(buf, n, 3, lim);
	free(buf);
}
END_TEST

/* A head of about 64 KiB: one long header line, then many short ones. */
static char *big_head(size_t *len_out, size_t size)
{
	char *b = malloc(size + 64);
	size_t n = (size_t)snprintf(b, size, "GET /big HTTP/1.1\r\nHost: a\r\nX-Long: ");

	memset(b + n, 'v', size / 2);
	n += size / 2;
	memcpy(b + n, "\r\n", 2);
	n += 2;
	while (n + 16 < size) {
		memcpy(b + n, "X-Short: 12345\r\n", 16);
		n += 16;
	}
	memcpy(b + n, "\r\n", 2);
	n += 2;
	*len_out = n;
	return b;
}

/* Fed a byte at a time, a 64 KiB head is looked at about once: the bytes
 * scanned are at most twice its size (the one-shot check run again on every
 * read, the old way, looks at about n^2/2). */
START_TEST(byte_at_a_time_is_linear)
{
	size_t len;
	char *raw = big_head(&len, 64 * 1024);
	struct gw_head_scan st;
	struct gw_request_head h;
	enum gw_head_verdict v = GW_HEAD_INCOMPLETE;
	uint64_t quadratic = 0;

	gw_head_scan_init(&st);
	for (size_t have = 1; have <= len; have++) {
		v = gw_head_scan_feed(&st, raw, have, 1024 * 1024, MAX_BODY, &h, NULL);
		if (have < len)
			ck_assert_int_eq(v, GW_HEAD_INCOMPLETE);
	}
	ck_assert_int_eq(v, GW_HEAD_OK);
	ck_assert_uint_eq(h.head_len, len);
	ck_assert_msg(st.scanned <= 2 * (uint64_t)len,
	              "%llu bytes scanned for a head of %zu fed a byte at a time",
	              (unsigned long long)st.scanned, len);
	ck_assert_uint_ge(st.scanned, len);

	/* The counter does see quadratic work: a fresh scan per read (what the
	 * gateway did before) over the first 8 KiB already scans > 16x. */
	for (size_t have = 1; have <= 8192; have++) {
		struct gw_head_scan fresh;

		gw_head_scan_init(&fresh);
		gw_head_scan_feed(&fresh, raw, have, 1024 * 1024, MAX_BODY, &h, NULL);
		quadratic += fresh.scanned;
	}
	ck_assert_uint_gt(quadratic, 16 * 8192);
	free(raw);
}
END_TEST

/* Pieces of every size up to 97 bytes, and a long target: still linear. */
START_TEST(any_cut_is_linear)
{
	size_t len;
	char *raw = big_head(&len, 64 * 1024);

	for (size_t step = 2; step < 100; step += 5) {
		struct gw_head_scan st;
		struct gw_request_head h;
		enum gw_head_verdict v = GW_HEAD_INCOMPLETE;
		size_t have = 0;

		gw_head_scan_init(&st);
		while (v == GW_HEAD_INCOMPLETE && have < len) {
			have = have + step < len ? have + step : len;
			v = gw_head_scan_feed(&st, raw, have, 1024 * 1024, MAX_BODY, &h, NULL);
		}
		ck_assert_int_eq(v, GW_HEAD_OK);
		ck_assert_uint_le(st.scanned, 2 * (uint64_t)len);
	}
	free(raw);

	/* a 60 KiB target, byte by byte */
	raw = malloc(64 * 1024);
	len = (size_t)snprintf(raw, 64, "GET /");
	memset(raw + len, 't', 60 * 1024);
	len += 60 * 1024;
	len += (size_t)snprintf(raw + len, 64, " HTTP/1.1\r\nHost: a\r\n\r\n");
	{
		struct gw_head_scan st;
		struct gw_request_head h;
		enum gw_head_verdict v = GW_HEAD_INCOMPLETE;

		gw_head_scan_init(&st);
		for (size_t have = 1; have <= len && v == GW_HEAD_INCOMPLETE; have++)
			v = gw_head_scan_feed(&st, raw, have, 1024 * 1024, MAX_BODY, &h, NULL);
		ck_assert_int_eq(v, GW_HEAD_OK);
		ck_assert_uint_eq(h.target_len, 60 * 1024 + 1);
		ck_assert_uint_le(st.scanned, 2 * (uint64_t)len);
	}
	free(raw);
}
END_TEST

/* A limit lowered (reload) below what was already read: too large. */
START_TEST(limit_lowered_mid_head)
{
	static const char raw[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: 0123456789\r\n";
	struct gw_head_scan st;
	struct gw_request_head h;
	const char *why = NULL;

	gw_head_scan_init(&st);
	ck_assert_int_eq(gw_head_scan_feed(&st, raw, sizeof(raw) - 1, MAX_HEAD, MAX_BODY, &h, &why),
	                 GW_HEAD_INCOMPLETE);
	ck_assert_int_eq(gw_head_scan_feed(&st, raw, sizeof(raw) - 1, 20, MAX_BODY, &h, &why),
	                 GW_HEAD_HEADERS_TOO_LARGE);
	ck_assert_ptr_nonnull(why);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("head_scan");

	gw_test_add_case(s, "pieces_agree_with_one_shot", pieces_agree_with_one_shot, 30);
	gw_test_add_case(s, "limits_agree_with_one_shot", limits_agree_with_one_shot, 30);
	gw_test_add_case(s, "byte_at_a_time_is_linear", byte_at_a_time_is_linear, 30);
	gw_test_add_case(s, "any_cut_is_linear", any_cut_is_linear, 30);
	gw_test_add_case(s, "limit_lowered_mid_head", limit_lowered_mid_head, 30);
	return gw_test_run_suite(s, CK_FORK_GETENV);
}

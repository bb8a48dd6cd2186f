/*
 * libFuzzer harness for gw_chunk_scan_feed, the strict scanner of chunked
 * request bodies (client side).
 *
 * Byte 0 picks max_body, byte 1 where the body is cut in two; the rest is
 * the client's bytes. Invariants checked beyond the sanitizers:
 *  - the verdict, where the body ends (or where the error is) and the
 *    payload total do not depend on how the bytes are cut: all at once, in
 *    two pieces, or one byte at a time;
 *  - MORE consumes everything it was given; FINISHED ends in CRLF; the
 *    payload total stays within max_body unless the answer is TOO_LARGE;
 *  - a scanner that finished keeps saying FINISHED without taking a byte
 *    (what follows is the next request), one that failed keeps failing.
 *
 * Dictionary: http.dict
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http/chunked_scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant: when it does not hold, say which and crash for libFuzzer. */
#define require(cond) require_at((cond), #cond, __LINE__)

static void require_at(int cond, const char *what, int line)
{
	if (!cond) {
		fprintf(stderr, "invariant failed at line %d: %s\n", line, what);
		abort();
	}
}

struct verdict {
	enum gw_chunk_scan_result result;
	size_t end; /* absolute: end of the body, or the bad byte */
	uint64_t total;
};

/* Feeds body in pieces of at most step bytes, the first one cut bytes. */
static struct verdict scan(const char *body, size_t len, size_t cut, size_t step, uint64_t max_body,
                           struct gw_chunk_scan *s)
{
	struct verdict v = {GW_CSCAN_MORE, 0, 0};
	size_t at = 0;

	memset(s, 0, sizeof(*s));
	do {
		size_t n = at == 0 && cut ? cut : step;
		size_t used = (size_t)-1;

		if (n > len - at)
			n = len - at;
		v.result = gw_chunk_scan_feed(s, body + at, n, max_body, &used);
		require(used <= n);
		if (v.result == GW_CSCAN_MORE)
			require(used == n);
		at += used;
		if (v.result != GW_CSCAN_MORE)
			break;
	} while (at < len);
	v.end = at;
	v.total = s->total;
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t body_limits[] = {0, 10, 1000, UINT64_MAX};
	struct gw_chunk_scan s;
	struct verdict whole, split, bytes;
	const char *body;
	size_t len, used;
	uint64_t max_body;

	if (size < 2)
		return 0;
	max_body = body_limits[data[0] & 3];
	body = (const char *)data + 2;
	len = size - 2;

	bytes = scan(body, len, 0, 1, max_body, &s);
	split = scan(body, len, len ? data[1] % (len + 1) : 0, len + 1, max_body, &s);
	whole = scan(body, len, 0, len + 1, max_body, &s);
	require(whole.result == split.result && whole.result == bytes.result);
	require(whole.end == split.end && whole.end == bytes.end);
	require(whole.total == split.total && whole.total == bytes.total);

	switch (whole.result) {
	case GW_CSCAN_MORE:
		require(whole.end == len);
		require(whole.total <= max_body);
		break;
	case GW_CSCAN_FINISHED:
		require(whole.end >= 5 && memcmp(body + whole.end - 2, "\r\n", 2) == 0);
		require(whole.total <= max_body);
		used = 1;
		require(gw_chunk_scan_feed(&s, "x", 1, max_body, &used) == GW_CSCAN_FINISHED);
		require(used == 0);
		break;
	case GW_CSCAN_BAD:
		require(whole.end < len);
		require(whole.total <= max_body);
		require(gw_chunk_scan_feed(&s, "0\r\n\r\n", 5, max_body, &used) == GW_CSCAN_BAD);
		break;
	case GW_CSCAN_TOO_LARGE:
		require(whole.total > max_body);
		require(gw_chunk_scan_feed(&s, "0\r\n\r\n", 5, max_body, &used) == GW_CSCAN_BAD);
		break;
	}
	return 0;
}

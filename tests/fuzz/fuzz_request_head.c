/*
 * libFuzzer harness for gw_request_head_check and gw_request_head_end.
 *
 * Byte 0 picks the header limit, byte 1 the body limit, the rest is the
 * client's bytes. Besides what the sanitizers catch, it checks the promises
 * the rest of the gateway relies on: a good head ends in CRLF CRLF exactly
 * at head_len, agrees with gw_request_head_end, points only inside the
 * buffer, respects the limits and framing rules, and is judged the same
 * whatever follows it or however it was cut (every prefix is INCOMPLETE);
 * and the SSE2 span agrees with the byte-class table.
 *
 * Dictionary: http.dict
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http/request_head.h"

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

static int inside(const char *p, size_t n, const char *buf, size_t len)
{
	return n == 0 || (p >= buf && p + n <= buf + len);
}

static void check_ok(const char *buf, size_t len, uint64_t max_head, uint64_t max_body,
                     const struct gw_request_head *h)
{
	struct gw_request_head again;

	require(h->head_len >= 4 && h->head_len <= len && h->head_len <= max_head);
	require(memcmp(buf + h->head_len - 4, "\r\n\r\n", 4) == 0);
	require(gw_request_head_end(buf, len) == h->head_len);
	require(h->method_len > 0 && inside(h->method, h->method_len, buf, h->head_len));
	require(h->target_len > 0 && inside(h->target, h->target_len, buf, h->head_len));
	require(inside(h->path, h->path_len, buf, h->head_len));
	require(inside(h->host, h->host_len, buf, h->head_len));
	require(h->version_major == 1);
	require(h->version_minor >= 1 || h->version_minor == 0);
	require(!(h->chunked && h->has_content_length));
	require(!h->has_content_length || h->content_length <= max_body);
	require(h->version_minor == 0 || h->host != NULL);
	for (size_t i = 0; i < h->head_len; i++)
		require(buf[i] != '\0');

	/* what follows the head does not change the verdict */
	require(gw_request_head_check(buf, h->head_len, max_head, max_body, &again, NULL) ==
	        GW_HEAD_OK);
	require(again.head_len == h->head_len && again.content_length == h->content_length &&
	        again.host == h->host && again.path == h->path);
	/* a head cut short is incomplete, never an error */
	require(gw_request_head_check(buf, h->head_len - 1, max_head, max_body, &again, NULL) ==
	        GW_HEAD_INCOMPLETE);
	require(gw_request_head_check(buf, h->head_len / 2, max_head, max_body, &again, NULL) ==
	        GW_HEAD_INCOMPLETE);
}

/* The vectorised span must agree with the byte table on any bytes. */
static void check_spans(const char *buf, size_t len)
{
	static const unsigned int classes[] = {GW_HTTP_FIELD, GW_HTTP_TARGET, GW_HTTP_TCHAR};

	for (size_t k = 0; k < sizeof(classes) / sizeof(classes[0]); k++) {
		size_t p = 0;

		while (p < len && (gw_http_cclass[(unsigned char)buf[p]] & classes[k]))
			p++;
		require(gw_http_span(buf, 0, len, classes[k]) == p);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t head_limits[] = {16, 64, 256, 8192};
	static const uint64_t body_limits[] = {0, 10, 1000, UINT64_MAX};
	struct gw_request_head h;
	const char *why = NULL;
	const char *buf;
	size_t len;
	uint64_t max_head, max_body;
	enum gw_head_verdict v;

	if (size < 2)
		return 0;
	max_head = head_limits[data[0] & 3];
	max_body = body_limits[data[1] & 3];
	buf = (const char *)data + 2;
	len = size - 2;

	v = gw_request_head_check(buf, len, max_head, max_body, &h, &why);
	require(v >= GW_HEAD_OK && v <= GW_HEAD_BODY_TOO_LARGE);
	if (v == GW_HEAD_OK)
		check_ok(buf, len, max_head, max_body, &h);
	else if (v == GW_HEAD_INCOMPLETE)
		require(len <= max_head && why == NULL);
	else
		require(why != NULL && why[0] != '\0');
	if (v == GW_HEAD_HEADERS_TOO_LARGE || v == GW_HEAD_URI_TOO_LONG)
		require(len > max_head);
	require(gw_request_head_end(buf, len) <= len);
	check_spans(buf, len);
	return 0;
}

/*
 * libFuzzer harness for gw_chunked_decode (the upstream side's chunked
 * decoder), on its own rather than behind a response head, and against
 * gw_chunk_scan_feed (the client side's scanner) on the same bytes.
 *
 * Byte 0 picks where the body is cut in two and the payload budget per
 * call; the rest is the body. Invariants checked beyond the sanitizers:
 *  - the decoder moves at most max_out payload bytes per call, and gives
 *    the same verdict, payload and leftover whether the body arrives at
 *    once with no budget or in two pieces under a small budget;
 *  - a finished body leaves exactly what follows it in the input, and the
 *    payload is never longer than the bytes consumed;
 *  - when both the decoder and the scanner accept the body, they agree on
 *    where it ends and on the payload length (the two ends of the gateway
 *    must never frame the same bytes differently).
 *
 * Dictionary: http.dict
 */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http/chunked.h"
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

struct decoded {
	enum gw_chunked_result result;
	struct evbuffer *out;
	struct evbuffer *in;
	size_t consumed; /* input bytes the decoder took (framing and payload) */
};

/* Feeds body[0..cut) then the rest, calling the decoder until it stops
 * making progress, at most max_out payload bytes per call. */
static void decode(const char *body, size_t len, size_t cut, size_t max_out, struct decoded *d)
{
	struct gw_chunked c;
	size_t added = cut;

	gw_chunked_init(&c);
	d->in = evbuffer_new();
	d->out = evbuffer_new();
	require(d->in && d->out);
	evbuffer_add(d->in, body, cut);
	for (int piece = 0; piece < 2; piece++) {
		if (piece == 1) {
			evbuffer_add(d->in, body + cut, len - cut);
			added = len;
		}
		for (;;) {
			size_t in_before = evbuffer_get_length(d->in);
			size_t out_before = evbuffer_get_length(d->out);

			d->result = gw_chunked_decode(&c, d->in, d->out, max_out);
			require(evbuffer_get_length(d->out) - out_before <= max_out);
			require(evbuffer_get_length(d->in) <= in_before);
			if (d->result != GW_CHUNKED_MORE)
				break;
			if (evbuffer_get_length(d->in) == in_before &&
			    evbuffer_get_length(d->out) == out_before)
				break;
		}
		if (d->result != GW_CHUNKED_MORE) {
			/* the rest arrives after the end: it must stay in the input */
			if (piece == 0)
				evbuffer_add(d->in, body + cut, len - cut);
			break;
		}
	}
	d->consumed = added - (evbuffer_get_length(d->in) - (len - added));
	if (d->result == GW_CHUNKED_INVALID)
		return;
	require(evbuffer_get_length(d->out) <= d->consumed);
	if (d->result == GW_CHUNKED_FINISHED) {
		/* the last chunk "0\r\n" and the empty line at least */
		require(d->consumed >= 5 && d->consumed <= len);
		require(memcmp(body + d->consumed - 2, "\r\n", 2) == 0);
		require(evbuffer_get_length(d->in) == len - d->consumed);
	}
}

static int same_bytes(struct evbuffer *a, struct evbuffer *b)
{
	size_t n = evbuffer_get_length(a);

	return n == evbuffer_get_length(b) &&
	       (n == 0 || memcmp(evbuffer_pullup(a, -1), evbuffer_pullup(b, -1), n) == 0);
}

static void free_decoded(struct decoded *d)
{
	evbuffer_free(d->in);
	evbuffer_free(d->out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct decoded whole, split;
	struct gw_chunk_scan scan = {0};
	enum gw_chunk_scan_result sr;
	const char *body;
	size_t len, cut, max_out, used = 0;

	if (size < 1)
		return 0;
	body = (const char *)data + 1;
	len = size - 1;
	cut = len ? data[0] % (len + 1) : 0;
	max_out = 1 + (data[0] >> 4);

	decode(body, len, len, (size_t)-1, &whole);
	decode(body, len, cut, max_out, &split);
	require(whole.result == split.result);
	if (whole.result != GW_CHUNKED_INVALID) {
		require(same_bytes(whole.out, split.out));
		require(same_bytes(whole.in, split.in));
	}

	sr = gw_chunk_scan_feed(&scan, body, len, UINT64_MAX, &used);
	require(used <= len);
	if (sr == GW_CSCAN_FINISHED && whole.result == GW_CHUNKED_FINISHED) {
		require(used == whole.consumed);
		require(scan.total == evbuffer_get_length(whole.out));
	}
	free_decoded(&whole);
	free_decoded(&split);
	return 0;
}

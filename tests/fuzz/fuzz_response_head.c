/*
 * libFuzzer harness for gw_response_head_parse and, behind it, the chunked
 * body decoder: the path an upstream's bytes take.
 *
 * Byte 0: bit 0 = response to HEAD, bits 1-2 pick max_head; byte 1 picks how
 * the body is cut and the payload budget per call. Invariants checked beyond
 * the sanitizers: a parsed head stays inside the buffer, is judged the same
 * without what follows it, and its every prefix is INCOMPLETE; framing and
 * keep-alive obey the rules of response_head.h; and a chunked body decodes
 * to the same payload, leftover and verdict whether it arrives at once with
 * no budget limit or in two pieces under a small max_out.
 *
 * Dictionary: http.dict
 */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http/chunked.h"
#include "gateway/http/request_head.h"
#include "gateway/http/response_head.h"

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

static void check_head(const char *buf, size_t len, size_t max_head, bool head_request,
                       const struct gw_response_head *h)
{
	static struct gw_response_head again;

	require(h->head_len > 0 && h->head_len <= len && h->head_len <= max_head);
	require(buf[h->head_len - 1] == '\n');
	require(h->status >= 100 && h->status <= 599);
	require(h->version_minor == 0 || h->version_minor == 1);
	require(inside(h->reason, h->reason_len, buf, h->head_len));
	require(h->nheaders <= GW_RESPONSE_MAX_HEADERS);
	for (size_t i = 0; i < h->nheaders; i++) {
		const struct gw_header_ref *f = &h->headers[i];

		require(f->name_len > 0 && inside(f->name, f->name_len, buf, h->head_len));
		require(inside(f->value, f->value_len, buf, h->head_len));
		for (size_t j = 0; j < f->name_len; j++)
			require(gw_http_is(f->name[j], GW_HTTP_TCHAR));
		for (size_t j = 0; j < f->value_len; j++)
			require(gw_http_is(f->value[j], GW_HTTP_FIELD));
		require(f->value_len == 0 ||
		        (f->value[0] != ' ' && f->value[f->value_len - 1] != ' '));
	}
	if (h->framing == GW_BODY_CLOSE)
		require(!h->keep_alive);
	if (head_request || h->status < 200 || h->status == 204 || h->status == 304)
		require(h->framing == GW_BODY_NONE);

	require(gw_response_head_parse(buf, h->head_len, max_head, head_request, &again) ==
	        GW_RESPONSE_DONE);
	require(again.head_len == h->head_len && again.framing == h->framing &&
	        again.keep_alive == h->keep_alive && again.nheaders == h->nheaders &&
	        again.content_length == h->content_length);
	require(gw_response_head_parse(buf, h->head_len - 1, max_head, head_request, &again) ==
	        GW_RESPONSE_INCOMPLETE);
}

struct decoded {
	enum gw_chunked_result result;
	struct evbuffer *out;
	struct evbuffer *in;
};

/* Feeds body[0..cut) then the rest, calling the decoder until it stops
 * making progress, at most max_out payload bytes per call. */
static void decode(const char *body, size_t len, size_t cut, size_t max_out, struct decoded *d)
{
	struct gw_chunked c;

	gw_chunked_init(&c);
	d->in = evbuffer_new();
	d->out = evbuffer_new();
	evbuffer_add(d->in, body, cut);
	for (int piece = 0; piece < 2; piece++) {
		if (piece == 1)
			evbuffer_add(d->in, body + cut, len - cut);
		for (;;) {
			size_t in_before = evbuffer_get_length(d->in);
			size_t out_before = evbuffer_get_length(d->out);

			d->result = gw_chunked_decode(&c, d->in, d->out, max_out);
			require(evbuffer_get_length(d->out) - out_before <= max_out);
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
}

static int same_bytes(struct evbuffer *a, struct evbuffer *b)
{
	size_t n = evbuffer_get_length(a);

	return n == evbuffer_get_length(b) &&
	       (n == 0 || memcmp(evbuffer_pullup(a, -1), evbuffer_pullup(b, -1), n) == 0);
}

static void check_chunked(const char *body, size_t len, uint8_t knob)
{
	struct decoded whole, split;
	size_t cut = len ? knob % (len + 1) : 0;
	size_t max_out = 1 + (knob >> 4);

	decode(body, len, len, (size_t)-1, &whole);
	decode(body, len, cut, max_out, &split);
	require(whole.result == split.result);
	if (whole.result != GW_CHUNKED_INVALID) {
		require(same_bytes(whole.out, split.out));
		require(same_bytes(whole.in, split.in));
	}
	evbuffer_free(whole.in);
	evbuffer_free(whole.out);
	evbuffer_free(split.in);
	evbuffer_free(split.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t head_limits[] = {64, 512, 4096, 65536};
	static struct gw_response_head h;
	const char *buf;
	size_t len, max_head;
	bool head_request;
	enum gw_response_parse r;

	if (size < 2)
		return 0;
	head_request = data[0] & 1;
	max_head = head_limits[(data[0] >> 1) & 3];
	buf = (const char *)data + 2;
	len = size - 2;

	r = gw_response_head_parse(buf, len, max_head, head_request, &h);
	require(r >= GW_RESPONSE_DONE && r <= GW_RESPONSE_TOO_LARGE);
	if (r == GW_RESPONSE_INCOMPLETE)
		require(len <= max_head);
	if (r != GW_RESPONSE_DONE)
		return 0;
	check_head(buf, len, max_head, head_request, &h);
	if (h.framing == GW_BODY_CHUNKED)
		check_chunked(buf + h.head_len, len - h.head_len, data[1]);
	return 0;
}

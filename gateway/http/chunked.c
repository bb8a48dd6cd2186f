/*
 * Incremental chunked-body decoder on evbuffers (see chunked.h).
 *
 * Payload is moved chain by chain with evbuffer_remove_buffer, which hands
 * whole chains over instead of copying bytes; only the framing lines (size
 * lines, trailers, the CRLF after each chunk) are ever looked at. A framing
 * line is located with a search bounded to GW_CHUNKED_LINE_MAX bytes, so a
 * peer that never sends LF costs at most that much scanning per call and is
 * refused once that many bytes are buffered.
 *
 * Strictness is the point: a size line is hex digits only (leading zeros
 * allowed, value below 2^64; no "0x", no sign, no spaces but the BWS before
 * an extension's ";"), lines end in CRLF, and the CRLF after each chunk's
 * data must be there.
 * A lenient decoder here would let an upstream desynchronise the connection.
 */
#include "chunked.h"
#include "request_head.h"

#include <event2/buffer.h>
#include <string.h>
#include <sys/types.h>

#define MOVE_STEP ((size_t)1 << 30) /* evbuffer_remove_buffer returns an int */

void gw_chunked_init(struct gw_chunked *c)
{
	c->state = GW_CHUNKED_SIZE;
	c->remaining = 0;
}

/* What one step of the state machine did. */
enum step {
	STEP_AGAIN = 0, /* made progress: run the next step */
	STEP_WAIT,      /* needs more input, or the payload budget is spent */
	STEP_BAD,       /* framing error: the decoder is now in GW_CHUNKED_ERROR */
};

static enum step fail(struct gw_chunked *c)
{
	c->state = GW_CHUNKED_ERROR;
	return STEP_BAD;
}

/*
 * Finds the next line at the start of in. Returns its length, LF included,
 * with *line pointing at contiguous bytes; 0 when no LF is buffered yet;
 * -1 when the line is longer than GW_CHUNKED_LINE_MAX or does not end in CRLF.
 */
static ssize_t next_line(struct evbuffer *in, const char **line)
{
	size_t avail = evbuffer_get_length(in);
	size_t window = avail < GW_CHUNKED_LINE_MAX ? avail : GW_CHUNKED_LINE_MAX;
	struct evbuffer_ptr end, lf;
	size_t n;

	if (evbuffer_ptr_set(in, &end, window, EVBUFFER_PTR_SET) < 0)
		return -1;
	lf = evbuffer_search_range(in, "\n", 1, NULL, &end);
	if (lf.pos < 0)
		return avail >= GW_CHUNKED_LINE_MAX ? -1 : 0;
	n = (size_t)lf.pos + 1;
	*line = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
	if (!*line || n < 2 || (*line)[n - 2] != '\r')
		return -1;
	return (ssize_t)n;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)gw_http_lower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * chunk-size [ BWS ";" chunk-ext ] over n bytes (CRLF excluded). The
 * extension is skipped but must be made of field bytes (no CR, LF or other
 * control byte but HTAB).
 */
static bool parse_size_line(const char *l, size_t n, uint64_t *size)
{
	uint64_t v = 0;
	size_t i = 0;
	int d;

	while (i < n && (d = hex_value(l[i])) >= 0) {
		if (v >> 60)
			return false; /* another digit would overflow */
		v = v << 4 | (uint64_t)d;
		i++;
	}
	if (i == 0)
		return false;
	if (i < n) {
		while (i < n && (l[i] == ' ' || l[i] == '\t'))
			i++;
		if (i == n || l[i] != ';')
			return false;
		for (i++; i < n; i++)
			if (!gw_http_is(l[i], GW_HTTP_FIELD))
				return false;
	}
	*size = v;
	return true;
}

/* A trailer field: a token, a colon, field bytes. Discarded once checked. */
static bool valid_trailer_line(const char *l, size_t n)
{
	size_t i = 0;

	while (i < n && gw_http_is(l[i], GW_HTTP_TCHAR))
		i++;
	if (i == 0 || i == n || l[i] != ':')
		return false;
	for (i++; i < n; i++)
		if (!gw_http_is(l[i], GW_HTTP_FIELD))
			return false;
	return true;
}

static enum step on_size(struct gw_chunked *c, struct evbuffer *in)
{
	const char *line;
	ssize_t n = next_line(in, &line);
	uint64_t size;

	if (n <= 0)
		return n == 0 ? STEP_WAIT : fail(c);
	if (!parse_size_line(line, (size_t)n - 2, &size))
		return fail(c);
	evbuffer_drain(in, (size_t)n);
	c->remaining = size;
	c->state = size ? GW_CHUNKED_DATA : GW_CHUNKED_TRAILER;
	return STEP_AGAIN;
}

static enum step on_data_crlf(struct gw_chunked *c, struct evbuffer *in)
{
	char crlf[2];
	ev_ssize_t got = evbuffer_copyout(in, crlf, 2);

	if (got <= 0)
		return STEP_WAIT;
	if (crlf[0] != '\r' || (got == 2 && crlf[1] != '\n'))
		return fail(c);
	if (got < 2)
		return STEP_WAIT;
	evbuffer_drain(in, 2);
	c->state = GW_CHUNKED_SIZE;
	return STEP_AGAIN;
}

static enum step on_trailer(struct gw_chunked *c, struct evbuffer *in)
{
	const char *line;
	ssize_t n = next_line(in, &line);

	if (n <= 0)
		return n == 0 ? STEP_WAIT : fail(c);
	if (n > 2 && !valid_trailer_line(line, (size_t)n - 2))
		return fail(c);
	evbuffer_drain(in, (size_t)n);
	if (n == 2)
		c->state = GW_CHUNKED_DONE;
	return STEP_AGAIN;
}

/* Moves payload, at most *budget bytes; chains change hands, bytes stay put. */
static enum step on_data(struct gw_chunked *c, struct evbuffer *in, struct evbuffer *out,
                         size_t *budget)
{
	size_t avail = evbuffer_get_length(in);
	size_t n = *budget;
	int moved;

	if (avail == 0 || n == 0)
		return STEP_WAIT;
	if (n > avail)
		n = avail;
	if (n > c->remaining)
		n = (size_t)c->remaining;
	if (n > MOVE_STEP)
		n = MOVE_STEP;
	moved = evbuffer_remove_buffer(in, out, n);
	if (moved <= 0)
		return STEP_WAIT;
	c->remaining -= (uint64_t)moved;
	*budget -= (size_t)moved;
	if (c->remaining == 0)
		c->state = GW_CHUNKED_DATA_CRLF;
	return STEP_AGAIN;
}

/*
 * Runs the state machine while it makes progress. Framing is consumed even
 * when the payload budget is spent, so a body whose last byte fills the
 * budget still finishes in the same call.
 */
enum gw_chunked_result gw_chunked_decode(struct gw_chunked *c, struct evbuffer *in,
                                         struct evbuffer *out, size_t max_out)
{
	size_t budget = max_out;
	enum step r;

	for (;;) {
		switch (c->state) {
		case GW_CHUNKED_SIZE:
			r = on_size(c, in);
			break;
		case GW_CHUNKED_DATA:
			r = on_data(c, in, out, &budget);
			break;
		case GW_CHUNKED_DATA_CRLF:
			r = on_data_crlf(c, in);
			break;
		case GW_CHUNKED_TRAILER:
			r = on_trailer(c, in);
			break;
		case GW_CHUNKED_DONE:
			return GW_CHUNKED_FINISHED;
		default:
			return GW_CHUNKED_INVALID;
		}
		if (r == STEP_WAIT)
			return GW_CHUNKED_MORE;
		if (r == STEP_BAD)
			return GW_CHUNKED_INVALID;
	}
}

#include "chunked_scan.h"

#include <stdbool.h>
#include <string.h>

/* Trailer section allowed when gw_chunk_scan_start did not say. */
#define GW_CSCAN_TRAILER_DEFAULT 4096

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One more byte of the trailer section: false once over its budget. */
static bool trailer_byte(struct gw_chunk_scan *s)
{
	uint64_t max = s->trailer_max ? s->trailer_max : GW_CSCAN_TRAILER_DEFAULT;

	return ++s->trailer_len <= max;
}

/*
 * Fields that must not be in a trailer (RFC 9110 6.5.1): framing and
 * routing. A recipient that merges trailers into the head (evhttp does)
 * would otherwise let them change how the request was framed or routed
 * after the fact.
 */
static bool trailer_name_refused(const struct gw_chunk_scan *s)
{
	switch (s->name_len) {
	case 4:
		return memcmp(s->name, "host", 4) == 0;
	case 14:
		return memcmp(s->name, "content-length", 14) == 0;
	case 17:
		return memcmp(s->name, "transfer-encoding", 17) == 0;
	}
	return false;
}

/*
 * A byte-at-a-time state machine over RFC 9112 section 7.1:
 *   chunk = 1*HEXDIG CRLF data CRLF ; last = 1*"0" CRLF
 *   trailer-section = *( field-line CRLF ) ; then CRLF
 *   field-line = field-name ":" OWS field-value OWS
 * Payload runs are skipped in one step, so the cost is per framing byte.
 * Sizes are refused above 15 hex digits (no overflow) and bare LF is refused
 * everywhere, as in request heads.
 */
enum gw_chunk_scan_result gw_chunk_scan_feed(struct gw_chunk_scan *s, const char *p, size_t len,
                                             uint64_t max_body, size_t *used)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = (unsigned char)p[i];
		int h;

		switch (s->state) {
		case GW_CSCAN_SIZE:
			h = hex_value(c);
			if (h >= 0) {
				if (++s->digits > 15)
					goto bad;
				s->remaining = s->remaining * 16 + (uint64_t)h;
				i++;
				break;
			}
			if (s->digits == 0)
				goto bad;
			if (c == ';') {
				/* Chunk extensions: evhttp's decoder cannot take
				 * them, so they are refused rather than mangled. */
				goto bad;
			} else if (c == '\r') {
				s->state = GW_CSCAN_SIZE_LF;
			} else {
				goto bad;
			}
			i++;
			break;
		case GW_CSCAN_SIZE_LF:
			if (c != '\n')
				goto bad;
			i++;
			s->digits = 0;
			if (s->remaining == 0) {
				s->state = GW_CSCAN_TRAILER;
				break;
			}
			s->total += s->remaining;
			if (s->total > max_body) {
				*used = i;
				s->state = GW_CSCAN_INVALID;
				return GW_CSCAN_TOO_LARGE;
			}
			s->state = GW_CSCAN_DATA;
			break;
		case GW_CSCAN_DATA: {
			size_t take = len - i;
			if (take > s->remaining)
				take = (size_t)s->remaining;
			s->remaining -= take;
			i += take;
			if (s->remaining == 0)
				s->state = GW_CSCAN_DATA_CR;
			break;
		}
		case GW_CSCAN_DATA_CR:
			if (c != '\r')
				goto bad; /* more data than the size said */
			s->state = GW_CSCAN_DATA_LF;
			i++;
			break;
		case GW_CSCAN_DATA_LF:
			if (c != '\n')
				goto bad;
			s->state = GW_CSCAN_SIZE;
			i++;
			break;
		case GW_CSCAN_TRAILER:
			/* What starts a line decides what it is: CR the end of
			 * the section, a token a field; SP or HTAB would be
			 * obs-fold, anything else is not a field line. */
			if (!trailer_byte(s))
				goto bad;
			if (c == '\r') {
				s->state = GW_CSCAN_END_LF;
			} else if (gw_http_is((char)c, GW_HTTP_TCHAR)) {
				s->name[0] = (char)gw_http_lower(c);
				s->name_len = 1;
				s->state = GW_CSCAN_TRAILER_NAME;
			} else {
				goto bad;
			}
			i++;
			break;
		case GW_CSCAN_TRAILER_NAME:
			if (!trailer_byte(s))
				goto bad;
			if (gw_http_is((char)c, GW_HTTP_TCHAR)) {
				if (s->name_len < GW_CSCAN_NAME_KEEP)
					s->name[s->name_len] = (char)gw_http_lower(c);
				s->name_len++;
			} else if (c == ':') {
				/* No space before the colon, as in the head. */
				if (trailer_name_refused(s))
					goto bad;
				s->state = GW_CSCAN_TRAILER_VALUE;
			} else {
				goto bad;
			}
			i++;
			break;
		case GW_CSCAN_TRAILER_VALUE:
			if (!trailer_byte(s))
				goto bad;
			if (c == '\r')
				s->state = GW_CSCAN_TRAILER_LF;
			else if (!gw_http_is((char)c, GW_HTTP_FIELD))
				goto bad; /* NUL, bare LF, other controls */
			i++;
			break;
		case GW_CSCAN_TRAILER_LF:
			if (!trailer_byte(s) || c != '\n')
				goto bad;
			s->state = GW_CSCAN_TRAILER;
			i++;
			break;
		case GW_CSCAN_END_LF:
			if (!trailer_byte(s) || c != '\n')
				goto bad;
			i++;
			s->state = GW_CSCAN_DONE;
			*used = i;
			return GW_CSCAN_FINISHED;
		case GW_CSCAN_DONE:
			*used = i;
			return GW_CSCAN_FINISHED;
		case GW_CSCAN_INVALID:
			goto bad;
		}
	}
	*used = len;
	return s->state == GW_CSCAN_DONE ? GW_CSCAN_FINISHED : GW_CSCAN_MORE;
bad:
	s->state = GW_CSCAN_INVALID;
	*used = i;
	return GW_CSCAN_BAD;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Every Expect field of the head says exactly "100-continue", the value
 * read as evhttp reads it (evhttp looks at the first Expect field only, and
 * answers 417 itself when that is not it). The head has
 * passed gw_request_head_check: lines end in CRLF and a field name runs
 * straight into its colon, so a field is recognised by its first 7 bytes.
 */
static bool expectations_met(const char *head, size_t head_len)
{
	const char *end = head + head_len;
	const char *line = memchr(head, '\n', head_len);

	while (line && ++line < end && *line != '\r') {
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		const char *v, *vend;

		if (!eol)
			break;
		if (eol - line >= 8 && gw_http_ieq(line, 7, "expect:", 7)) {
			v = line + 7;
			vend = eol - 1; /* the CR */
			/* evhttp skips spaces before a value, not tabs: it
			 * takes "\t100-continue" for another expectation. */
			while (v < vend && *v == ' ')
				v++;
			while (vend > v && is_ows(vend[-1]))
				vend--;
			if (!gw_http_ieq(v, (size_t)(vend - v), "100-continue", 12))
				return false;
		}
		line = eol;
	}
	return true;
}

int gw_chunk_scan_start(struct gw_chunk_scan *s, const char *head, const struct gw_request_head *h,
                        uint64_t max_header_bytes)
{
	memset(s, 0, sizeof(*s));
	s->trailer_max = max_header_bytes;
	if (h->method_len == 4 && memcmp(h->method, "HEAD", 4) == 0 &&
	    (h->chunked || (h->has_content_length && h->content_length > 0)))
		return 400;
	if (!expectations_met(head, h->head_len))
		return 417;
	return 0;
}

#include "chunked_scan.h"

#include <stdbool.h>

/* Longest size or trailer line accepted. */
#define GW_CSCAN_MAX_LINE 4096

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

/*
 * A byte-at-a-time state machine over RFC 9112 section 7.1:
 *   chunk = 1*HEXDIG CRLF data CRLF ; last = 1*"0" CRLF
 *   trailer *( field-line CRLF ) CRLF
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
			s->line_len = 0;
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
			if (c == '\r') {
				s->state = GW_CSCAN_TRAILER_LF;
			} else if (c == '\n' || c == 0 || ++s->line_len > GW_CSCAN_MAX_LINE) {
				goto bad;
			}
			i++;
			break;
		case GW_CSCAN_TRAILER_LF:
			if (c != '\n')
				goto bad;
			i++;
			if (s->line_len == 0) {
				s->state = GW_CSCAN_DONE;
				*used = i;
				return GW_CSCAN_FINISHED;
			}
			s->line_len = 0;
			s->state = GW_CSCAN_TRAILER;
			break;
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

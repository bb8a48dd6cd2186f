/*
 * Strict parser for upstream response heads (see response_head.h).
 *
 * Like the request check, it reads the head once, left to right, never past
 * max_head bytes, and judges only complete lines; an upstream that answers
 * with something that is not HTTP/1.x is refused after its first bytes
 * instead of after a timeout. Header values are referenced in place, so a
 * parse costs no allocation and no copy.
 */
#include "response_head.h"
#include "header_rules.h"
#include "request_head.h"

#include <string.h>

/* Significant digits (leading zeros aside) of a Content-Length: at most
 * 10^18 - 1 bytes, far beyond any body, with no overflow. */
#define CL_MAX_DIGITS 18

struct scan {
	const char *buf;
	size_t pos;
	size_t end; /* min(len, max_head) */
	bool over;  /* the buffer holds more than max_head bytes */
};

/* What the header lines said about framing and the connection. */
struct framing {
	bool has_cl;
	uint64_t cl;
	unsigned int chunked; /* number of "chunked" codings seen */
	bool has_te;
	bool conn_close;
	bool conn_keep_alive;
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static size_t span(const char *buf, size_t p, size_t end, unsigned int cls)
{
	while (p < end && gw_http_is(buf[p], cls))
		p++;
	return p;
}

/*
 * A line ends at p with LF or CRLF (bare LF is allowed in responses, RFC
 * 9112 2.2). Returns the offset after it, 0 when more bytes are needed, or
 * (size_t)-1 for a bare CR or any other byte.
 */
#define EOL_MORE ((size_t)0)
#define EOL_BAD  ((size_t)-1)

static size_t line_end(const struct scan *s, size_t p)
{
	if (p == s->end)
		return EOL_MORE;
	if (s->buf[p] == '\n')
		return p + 1;
	if (s->buf[p] != '\r')
		return EOL_BAD;
	if (p + 1 == s->end)
		return EOL_MORE;
	return s->buf[p + 1] == '\n' ? p + 2 : EOL_BAD;
}

/*
 * "HTTP/1." ("0" | "1") SP 3DIGIT [SP reason] EOL. The fixed prefix is
 * compared on the bytes available so far, so garbage is refused at once.
 */
static enum gw_response_parse parse_status_line(struct scan *s, struct gw_response_head *h)
{
	static const char prefix[] = "HTTP/1.";
	const char *b = s->buf;
	size_t avail = s->end;
	size_t n = avail < 7 ? avail : 7;
	size_t p, eol;

	if (avail == 0)
		return GW_RESPONSE_INCOMPLETE; /* buf may be NULL (empty evbuffer pullup) */
	if (memcmp(b, prefix, n) != 0)
		return GW_RESPONSE_INVALID;
	if (avail < 13)
		return GW_RESPONSE_INCOMPLETE;
	if ((b[7] != '0' && b[7] != '1') || b[8] != ' ')
		return GW_RESPONSE_INVALID;
	if (b[9] < '1' || b[9] > '5' || !is_digit(b[10]) || !is_digit(b[11]))
		return GW_RESPONSE_INVALID;
	h->version_minor = b[7] - '0';
	h->status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
	p = 12;
	h->reason = b + p;
	if (b[p] == ' ') {
		h->reason = b + 13;
		p = gw_http_span(b, 13, s->end, GW_HTTP_FIELD);
	}
	h->reason_len = (size_t)(b + p - h->reason);
	eol = line_end(s, p);
	if (eol == EOL_MORE)
		return GW_RESPONSE_INCOMPLETE;
	if (eol == EOL_BAD)
		return GW_RESPONSE_INVALID;
	s->pos = eol;
	return GW_RESPONSE_DONE;
}

/* Content-Length: one or more equal values, as separate lines or as a list. */
static bool take_content_length(struct framing *fr, const char *v, size_t n)
{
	const char *pos = v;
	const char *elem;
	size_t elem_len;
	bool any = false;

	while (gw_http_list_next(&pos, v + n, &elem, &elem_len)) {
		uint64_t cl = 0;

		size_t significant = 0;

		for (size_t i = 0; i < elem_len; i++) {
			if (!is_digit(elem[i]))
				return false;
			if (significant == 0 && elem[i] == '0')
				continue; /* 1*DIGIT: leading zeros are allowed */
			if (++significant > CL_MAX_DIGITS)
				return false;
			cl = cl * 10 + (uint64_t)(elem[i] - '0');
		}
		if (fr->has_cl && fr->cl != cl)
			return false;
		fr->has_cl = true;
		fr->cl = cl;
		any = true;
	}
	return any;
}

/*
 * Transfer-Encoding: the only coding accepted is a single "chunked". The
 * gateway drops Transfer-Encoding (hop-by-hop) when it forwards, so any other
 * coding ("gzip, chunked") would reach the client undeclared; and a coding
 * after chunked leaves no way to find the end of the body.
 */
static bool take_transfer_encoding(struct framing *fr, const char *v, size_t n)
{
	const char *pos = v;
	const char *elem;
	size_t elem_len;
	bool any = false;

	fr->has_te = true;
	while (gw_http_list_next(&pos, v + n, &elem, &elem_len)) {
		if (!gw_http_ieq(elem, elem_len, "chunked", 7))
			return false;
		fr->chunked++;
		any = true;
	}
	return any && fr->chunked == 1;
}

static void take_connection(struct framing *fr, const char *v, size_t n)
{
	const char *pos = v;
	const char *elem;
	size_t elem_len;

	while (gw_http_list_next(&pos, v + n, &elem, &elem_len)) {
		if (gw_http_ieq(elem, elem_len, "close", 5))
			fr->conn_close = true;
		else if (gw_http_ieq(elem, elem_len, "keep-alive", 10))
			fr->conn_keep_alive = true;
	}
}

static bool take_field(struct framing *fr, const struct gw_header_ref *f)
{
	switch (f->name_len) {
	case 10:
		if (gw_http_ieq(f->name, 10, "connection", 10))
			take_connection(fr, f->value, f->value_len);
		break;
	case 14:
		if (gw_http_ieq(f->name, 14, "content-length", 14))
			return take_content_length(fr, f->value, f->value_len);
		break;
	case 17:
		if (gw_http_ieq(f->name, 17, "transfer-encoding", 17))
			return take_transfer_encoding(fr, f->value, f->value_len);
		break;
	}
	return true;
}

/*
 * One header line at s->pos: NAME ":" OWS VALUE OWS EOL, the name running
 * straight into the colon. It is written into the next free slot of
 * h->headers (the caller made sure there is one) and counted only once the
 * whole line is known to be valid.
 */
static enum gw_response_parse parse_field_line(struct scan *s, struct gw_response_head *h,
                                               struct framing *fr)
{
	const char *b = s->buf;
	size_t name = s->pos;
	size_t p = span(b, name, s->end, GW_HTTP_TCHAR);
	size_t value, vend, eol;
	struct gw_header_ref *f;

	if (p == s->end)
		return GW_RESPONSE_INCOMPLETE;
	if (b[p] != ':' || p == name)
		return GW_RESPONSE_INVALID;
	f = &h->headers[h->nheaders];
	f->name = b + name;
	f->name_len = p - name;
	p++;
	while (p < s->end && is_ows(b[p]))
		p++;
	value = p;
	p = gw_http_span(b, p, s->end, GW_HTTP_FIELD);
	eol = line_end(s, p);
	if (eol == EOL_MORE)
		return GW_RESPONSE_INCOMPLETE;
	if (eol == EOL_BAD)
		return GW_RESPONSE_INVALID;
	for (vend = p; vend > value && is_ows(b[vend - 1]); vend--)
		;
	f->value = b + value;
	f->value_len = vend - value;
	if (!take_field(fr, f))
		return GW_RESPONSE_INVALID;
	h->nheaders++;
	s->pos = eol;
	return GW_RESPONSE_DONE;
}

/*
 * Header lines until the empty line. A line starting with SP or HTAB is
 * obs-fold: refused, since the value cannot be unfolded in place (RFC 9112
 * 5.2 lets a proxy answer 502 instead).
 */
static enum gw_response_parse parse_fields(struct scan *s, struct gw_response_head *h,
                                           struct framing *fr)
{
	enum gw_response_parse r;

	for (;;) {
		size_t eol;

		if (s->pos == s->end)
			return GW_RESPONSE_INCOMPLETE;
		if (s->buf[s->pos] == '\r' || s->buf[s->pos] == '\n') {
			eol = line_end(s, s->pos);
			if (eol == EOL_MORE)
				return GW_RESPONSE_INCOMPLETE;
			if (eol == EOL_BAD)
				return GW_RESPONSE_INVALID;
			h->head_len = eol;
			return GW_RESPONSE_DONE;
		}
		if (is_ows(s->buf[s->pos]))
			return GW_RESPONSE_INVALID;
		if (h->nheaders == GW_RESPONSE_MAX_HEADERS)
			return GW_RESPONSE_TOO_LARGE;
		r = parse_field_line(s, h, fr);
		if (r != GW_RESPONSE_DONE)
			return r;
	}
}

static bool status_has_no_body(int status)
{
	return status < 200 || status == 204 || status == 304;
}

/*
 * A 204 that announces a body (Content-Length other than 0, or
 * Transfer-Encoding; RFC 9110 8.6 and 9112 6.1 forbid both) or a 304 with
 * Transfer-Encoding: the response still ends at the empty line (RFC 9112
 * 6.3), but the server most likely sends body bytes after it, now or a
 * moment later, which would be read as the start of the next response. The
 * connection is not reused. (A 304's Content-Length is allowed: it is the
 * length of the representation the client holds, not of a body.)
 */
static bool announces_forbidden_body(int status, const struct framing *fr)
{
	if (status == 204)
		return fr->has_te || (fr->has_cl && fr->cl != 0);
	if (status == 304)
		return fr->has_te;
	return false;
}

/*
 * Framing (RFC 9112 6.3): no body for HEAD, 1xx, 204 and 304 whatever the
 * headers say; then chunked beats Content-Length (and then the connection
 * cannot be trusted for another request); then Content-Length; else the body
 * runs until the upstream closes.
 */
static enum gw_response_parse decide_framing(struct gw_response_head *h, const struct framing *fr,
                                             bool head_request)
{
	if (fr->has_te && h->version_minor == 0)
		return GW_RESPONSE_INVALID; /* RFC 9112 6.1: faulty framing */
	if (h->status < 200 && (fr->has_te || (fr->has_cl && fr->cl != 0)))
		return GW_RESPONSE_INVALID; /* an interim answer with a body: what follows is not a response */
	if (head_request || status_has_no_body(h->status))
		h->framing = GW_BODY_NONE;
	else if (fr->has_te)
		h->framing = GW_BODY_CHUNKED;
	else if (fr->has_cl)
		h->framing = GW_BODY_LENGTH;
	else
		h->framing = GW_BODY_CLOSE;
	if (h->framing == GW_BODY_LENGTH)
		h->content_length = fr->cl;
	/* RFC 9112 6.3: a Content-Length beside Transfer-Encoding is removed */
	h->length_announced = fr->has_cl && !fr->has_te;
	h->announced_length = h->length_announced ? fr->cl : 0;

	if (h->version_minor >= 1)
		h->keep_alive = !fr->conn_close;
	else
		h->keep_alive = fr->conn_keep_alive && !fr->conn_close;
	if (h->framing == GW_BODY_CLOSE || (fr->has_te && fr->has_cl) || h->status == 101)
		h->keep_alive = false;
	if (announces_forbidden_body(h->status, fr))
		h->keep_alive = false;
	return GW_RESPONSE_DONE;
}

enum gw_response_parse gw_response_head_parse(const char *buf, size_t len, size_t max_head,
                                              bool head_request, struct gw_response_head *head)
{
	struct scan s = {.buf = buf, .pos = 0, .end = len, .over = false};
	struct framing fr = {0};
	enum gw_response_parse r;

	head->head_len = 0;
	head->nheaders = 0;
	head->framing = GW_BODY_NONE;
	head->content_length = 0;
	head->length_announced = false;
	head->announced_length = 0;
	head->keep_alive = false;
	if (len > max_head) {
		s.end = max_head;
		s.over = true;
	}
	r = parse_status_line(&s, head);
	if (r == GW_RESPONSE_DONE)
		r = parse_fields(&s, head, &fr);
	if (r == GW_RESPONSE_DONE)
		r = decide_framing(head, &fr, head_request);
	if (r == GW_RESPONSE_INCOMPLETE && s.over)
		r = GW_RESPONSE_TOO_LARGE;
	return r;
}

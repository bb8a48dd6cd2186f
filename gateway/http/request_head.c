/*
 * Strict request head validation (see request_head.h for the rules).
 *
 * The check reads the head once, left to right, byte class by byte class,
 * and stops at the first thing that is wrong. It never looks past
 * max_header_bytes: a head that has not ended by then is too large whatever
 * follows. Because it only ever judges complete lines, the verdict for a byte
 * stream does not depend on how the stream was cut into reads: every prefix
 * of a good head is INCOMPLETE, and a bad line is refused as soon as it is
 * complete (no point in waiting for the rest of a head that will be refused).
 *
 * The reading is a small state machine (struct gw_head_scan): when the bytes
 * run out it stops where it is, and the next call with more bytes resumes
 * there, so a head that arrives in many pieces still costs one pass.
 */
#include "request_head.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/*
 * The character class table, built at compile time from the RFC grammar so
 * that the parsers pay one load per byte instead of a chain of comparisons.
 */
#define CC_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define CC_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define CC_TCHAR(c)                                                                                \
	(CC_ALPHA(c) || CC_DIGIT(c) || (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' ||     \
	 (c) == '&' || (c) == '\'' || (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' ||      \
	 (c) == '^' || (c) == '_' || (c) == '`' || (c) == '|' || (c) == '~')
#define CC_FIELD(c)  ((c) == '\t' || ((c) >= 0x20 && (c) != 0x7f))
#define CC_TARGET(c) ((c) > 0x20 && (c) < 0x7f)
#define CC_HOST(c)                                                                                 \
	(CC_ALPHA(c) || CC_DIGIT(c) || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~' ||     \
	 (c) == '!' || (c) == '$' || (c) == '&' || (c) == '\'' || (c) == '(' || (c) == ')' ||      \
	 (c) == '*' || (c) == '+' || (c) == ',' || (c) == ';' || (c) == '=' || (c) == ':' ||       \
	 (c) == '[' || (c) == ']' || (c) == '%')
#define CC(c)                                                                                      \
	((CC_TCHAR(c) ? GW_HTTP_TCHAR : 0) | (CC_FIELD(c) ? GW_HTTP_FIELD : 0) |                   \
	 (CC_TARGET(c) ? GW_HTTP_TARGET : 0) | (CC_HOST(c) ? GW_HTTP_HOST : 0))
#define CC_ROW(b)                                                                                  \
	CC((b) + 0), CC((b) + 1), CC((b) + 2), CC((b) + 3), CC((b) + 4), CC((b) + 5), CC((b) + 6), \
	    CC((b) + 7), CC((b) + 8), CC((b) + 9), CC((b) + 10), CC((b) + 11), CC((b) + 12),       \
	    CC((b) + 13), CC((b) + 14), CC((b) + 15)

const unsigned char gw_http_cclass[256] = {
    CC_ROW(0x00), CC_ROW(0x10), CC_ROW(0x20), CC_ROW(0x30), CC_ROW(0x40), CC_ROW(0x50),
    CC_ROW(0x60), CC_ROW(0x70), CC_ROW(0x80), CC_ROW(0x90), CC_ROW(0xa0), CC_ROW(0xb0),
    CC_ROW(0xc0), CC_ROW(0xd0), CC_ROW(0xe0), CC_ROW(0xf0),
};

#define CL_MAX_DIGITS 18 /* 10^18 - 1 fits in uint64_t with room to spare */

/*
 * What one call sees: the head's bytes so far. end is min(len,
 * max_header_bytes); over says that the buffer holds more than that, so
 * running out of bytes means "too large". What the scan has learned lives in
 * struct gw_head_scan, as offsets (the caller's buffer may move between
 * calls).
 */
struct scan {
	const char *buf;
	size_t end;
	bool over;
};

/* Stages of gw_head_scan.stage: where the scan resumes. */
enum {
	ST_METHOD = 0, /* the method, from pos (0 for a new head) */
	ST_TARGET,     /* the target, from pos (it started at target_off) */
	ST_VERSION,    /* "HTTP/D.D" CRLF at pos, read whole once all ten bytes are here */
	ST_LINE,       /* the first byte of a header line, or the final CRLF, at pos */
	ST_NAME,       /* a header name, from pos (it started at line_off) */
	ST_OWS,        /* whitespace after the colon, from pos */
	ST_VALUE,      /* a header value, from pos (it started at value_off) */
	ST_END,        /* the empty line is read: pos is the head's length */
};

static enum gw_head_verdict refuse(const char **why, const char *reason)
{
	*why = reason;
	return GW_HEAD_BAD_REQUEST;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Runs p forward over bytes of class cls, not past end. */
static size_t span(const char *buf, size_t p, size_t end, unsigned int cls)
{
	while (p < end && gw_http_is(buf[p], cls))
		p++;
	return p;
}

#if defined(__SSE2__)
/*
 * Field values and targets are ranges of printable bytes, so a 16-byte block
 * can be judged with a few vector compares instead of 16 table loads and
 * branches. "x <= limit" is an unsigned saturating subtraction that yields
 * zero; bytes >= 0x80 (obs-text) are allowed in values but not in targets,
 * whose movemask adds their sign bits. HTAB is allowed in values but looks
 * like a control byte here: the block is resumed right after it.
 */
static size_t span_sse2(const char *buf, size_t p, size_t end, unsigned int cls)
{
	const bool target = cls == GW_HTTP_TARGET;
	const __m128i limit = _mm_set1_epi8(target ? 0x20 : 0x1f);
	const __m128i del = _mm_set1_epi8(0x7f);
	const __m128i zero = _mm_setzero_si128();

	while (p <= end && end - p >= 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)(buf + p));
		__m128i ctl = _mm_cmpeq_epi8(_mm_subs_epu8(x, limit), zero);
		__m128i bad = _mm_or_si128(ctl, _mm_cmpeq_epi8(x, del));
		unsigned int mask = (unsigned int)_mm_movemask_epi8(bad);

		if (target)
			mask |= (unsigned int)_mm_movemask_epi8(x);
		if (mask == 0) {
			p += 16;
			continue;
		}
		p += (size_t)__builtin_ctz(mask);
		if (target || buf[p] != '\t')
			return p;
		p++;
	}
	return span(buf, p, end, cls);
}
#endif

size_t gw_http_span(const char *buf, size_t p, size_t end, unsigned int cls)
{
#if defined(__SSE2__)
	if (cls == GW_HTTP_FIELD || cls == GW_HTTP_TARGET)
		return span_sse2(buf, p, end, cls);
#endif
	return span(buf, p, end, cls);
}

static bool method_is(const char *b, const struct gw_head_scan *st, const char *m, size_t n)
{
	return st->method_len == n && memcmp(b, m, n) == 0;
}

/* The method runs from 0 to a single space. */
static enum gw_head_verdict scan_method(struct gw_head_scan *st, const struct scan *s,
                                        const char **why)
{
	const char *b = s->buf;
	size_t p = span(b, st->pos, s->end, GW_HTTP_TCHAR);

	st->pos = p;
	if (p == s->end)
		return GW_HEAD_INCOMPLETE;
	if (p == 0)
		return refuse(why, "request line does not start with a method");
	if (b[p] != ' ')
		return refuse(why, "method not followed by a single space");
	st->method_len = p;
	st->target_off = p + 1;
	st->pos = p + 1;
	st->stage = ST_TARGET;
	return GW_HEAD_OK;
}

/* The target runs to a single space; a space inside it, or a missing
 * version, fall out as "wrong separator". */
static enum gw_head_verdict scan_target(struct gw_head_scan *st, const struct scan *s,
                                        const char **why)
{
	const char *b = s->buf;
	size_t p = gw_http_span(b, st->pos, s->end, GW_HTTP_TARGET);

	st->pos = p;
	if (p == s->end) {
		if (s->over) {
			*why = "request target too long";
			return GW_HEAD_URI_TOO_LONG;
		}
		return GW_HEAD_INCOMPLETE;
	}
	if (p == st->target_off)
		return refuse(why, "empty request target");
	if (b[p] == '\r' || b[p] == '\n')
		return refuse(why, "request line without HTTP version (HTTP/0.9)");
	if (b[p] != ' ')
		return refuse(why, "invalid byte in request target");
	st->target_len = p - st->target_off;
	st->pos = p + 1;
	st->stage = ST_VERSION;
	return GW_HEAD_OK;
}

/*
 * Authority of an absolute-form target: host[:port] made of host bytes only,
 * non-empty, ending at "/", "?" or the end of the target. Userinfo ("@") is
 * refused as RFC 9110 4.2.4 asks, and so is anything else outside the class.
 */
static enum gw_head_verdict scan_authority(struct gw_head_scan *st, const char *b, size_t skip,
                                           const char **why)
{
	const char *a = b + st->target_off + skip;
	size_t n = st->target_len - skip;
	size_t i = span(a, 0, n, GW_HTTP_HOST);

	if (i == 0)
		return refuse(why, "absolute-form target without host");
	if (i < n && a[i] != '/' && a[i] != '?')
		return refuse(why, "invalid byte in target authority");
	st->absolute_form = true;
	st->authority_off = st->target_off + skip;
	st->authority_len = i;
	st->path_off = st->authority_off + i;
	st->path_len = n - i;
	return GW_HEAD_OK;
}

static enum gw_head_verdict scan_target_form(struct gw_head_scan *st, const char *b,
                                             const char **why)
{
	const char *t = b + st->target_off;
	size_t n = st->target_len;

	st->path_off = st->target_off;
	st->path_len = n;
	if (t[0] == '/')
		return GW_HEAD_OK;
	if (n == 1 && t[0] == '*') {
		if (method_is(b, st, "OPTIONS", 7))
			return GW_HEAD_OK;
		return refuse(why, "asterisk-form target with a method other than OPTIONS");
	}
	if (n >= 7 && gw_http_ieq(t, 7, "http://", 7))
		return scan_authority(st, b, 7, why);
	if (n >= 8 && gw_http_ieq(t, 8, "https://", 8))
		return scan_authority(st, b, 8, why);
	return refuse(why, "target is not origin-form, absolute-form or *");
}

/*
 * "HTTP/D.D" CRLF at pos. The version is compared on fixed offsets: the only
 * accepted form is exactly ten bytes, so there is nothing to search (and
 * waiting for all ten costs at most ten looks at them).
 */
static enum gw_head_verdict scan_version(struct gw_head_scan *st, const struct scan *s,
                                         const char **why)
{
	const char *b = s->buf;
	const char *v = b + st->pos;

	if (s->end - st->pos < 10)
		return GW_HEAD_INCOMPLETE;
	if (memcmp(v, "HTTP/", 5) != 0 || !CC_DIGIT(v[5]) || v[6] != '.' || !CC_DIGIT(v[7]))
		return refuse(why, "malformed HTTP version");
	if (v[8] != '\r')
		return refuse(why, v[8] == '\n' ? "bare LF" : "malformed HTTP version");
	if (v[9] != '\n')
		return refuse(why, "bare CR");
	st->version_major = (unsigned char)(v[5] - '0');
	st->version_minor = (unsigned char)(v[7] - '0');
	st->pos += 10;
	if (st->version_major == 0)
		return refuse(why, "HTTP/0.x");
	if (st->version_major != 1) {
		*why = "HTTP major version not 1";
		return GW_HEAD_VERSION;
	}
	if (method_is(b, st, "CONNECT", 7) || method_is(b, st, "TRACE", 5)) {
		*why = "CONNECT and TRACE are not allowed";
		return GW_HEAD_METHOD;
	}
	st->stage = ST_LINE;
	return scan_target_form(st, b, why);
}

/* Content-Length: 1 to 18 digits and nothing else (no sign, no list). */
static enum gw_head_verdict take_content_length(struct gw_head_scan *st, const char *v, size_t n,
                                                const char **why)
{
	uint64_t cl = 0;

	if (st->has_content_length)
		return refuse(why, "repeated Content-Length");
	if (n == 0 || n > CL_MAX_DIGITS)
		return refuse(why, "invalid Content-Length");
	for (size_t i = 0; i < n; i++) {
		if (!CC_DIGIT(v[i]))
			return refuse(why, "invalid Content-Length");
		cl = cl * 10 + (uint64_t)(v[i] - '0');
	}
	st->has_content_length = true;
	st->content_length = cl;
	return GW_HEAD_OK;
}

static enum gw_head_verdict take_transfer_encoding(struct gw_head_scan *st, const char *v, size_t n,
                                                   const char **why)
{
	if (st->te_seen)
		return refuse(why, "repeated Transfer-Encoding");
	st->te_seen = true;
	if (!gw_http_ieq(v, n, "chunked", 7))
		return refuse(why, "Transfer-Encoding other than chunked");
	st->chunked = true;
	return GW_HEAD_OK;
}

static enum gw_head_verdict take_host(struct gw_head_scan *st, size_t off, const char *v, size_t n,
                                      const char **why)
{
	if (st->host_seen)
		return refuse(why, "repeated Host");
	if (span(v, 0, n, GW_HTTP_HOST) != n)
		return refuse(why, "invalid Host");
	st->host_seen = true;
	st->host_off = off;
	st->host_len = n;
	return GW_HEAD_OK;
}

/* Only three header names matter to framing and routing; the length test
 * rejects almost every other header before any byte comparison. */
static enum gw_head_verdict take_field(struct gw_head_scan *st, const char *b, size_t value,
                                       size_t n, const char **why)
{
	const char *name = b + st->line_off;

	switch (st->name_len) {
	case 4:
		if (gw_http_ieq(name, 4, "host", 4))
			return take_host(st, value, b + value, n, why);
		break;
	case 14:
		if (gw_http_ieq(name, 14, "content-length", 14))
			return take_content_length(st, b + value, n, why);
		break;
	case 17:
		if (gw_http_ieq(name, 17, "transfer-encoding", 17))
			return take_transfer_encoding(st, b + value, n, why);
		break;
	}
	return GW_HEAD_OK;
}

/*
 * What starts a line decides what it is: CRLF ends the head, a bare LF is
 * refused, SP or HTAB is obs-fold (also refused, as is whitespace between
 * the request line and the first field); anything else starts a field line.
 */
static enum gw_head_verdict scan_line(struct gw_head_scan *st, const struct scan *s,
                                      const char **why)
{
	const char *b = s->buf;

	if (st->pos == s->end)
		return GW_HEAD_INCOMPLETE;
	switch (b[st->pos]) {
	case '\r':
		if (st->pos + 1 == s->end)
			return GW_HEAD_INCOMPLETE;
		if (b[st->pos + 1] != '\n')
			return refuse(why, "bare CR");
		st->pos += 2;
		st->stage = ST_END;
		return GW_HEAD_OK;
	case '\n':
		return refuse(why, "bare LF");
	case ' ':
	case '\t':
		return refuse(why, "obs-fold or whitespace before a header name");
	}
	st->line_off = st->pos;
	st->stage = ST_NAME;
	return GW_HEAD_OK;
}

/* NAME ":" : the name must run straight into the colon, so
 * "Transfer-Encoding : chunked" and ": x" are refused here. */
static enum gw_head_verdict scan_name(struct gw_head_scan *st, const struct scan *s,
                                      const char **why)
{
	const char *b = s->buf;
	size_t p = span(b, st->pos, s->end, GW_HTTP_TCHAR);

	st->pos = p;
	if (p == s->end)
		return GW_HEAD_INCOMPLETE;
	if (b[p] != ':' || p == st->line_off)
		return refuse(why, "invalid header name");
	st->name_len = p - st->line_off;
	st->pos = p + 1;
	st->stage = ST_OWS;
	return GW_HEAD_OK;
}

static enum gw_head_verdict scan_ows(struct gw_head_scan *st, const struct scan *s)
{
	while (st->pos < s->end && is_ows(s->buf[st->pos]))
		st->pos++;
	if (st->pos == s->end)
		return GW_HEAD_INCOMPLETE;
	st->value_off = st->pos;
	st->stage = ST_VALUE;
	return GW_HEAD_OK;
}

/* VALUE OWS CRLF: no control byte but HTAB; the field is judged once its
 * line is complete. */
static enum gw_head_verdict scan_value(struct gw_head_scan *st, const struct scan *s,
                                       const char **why)
{
	const char *b = s->buf;
	size_t p = gw_http_span(b, st->pos, s->end, GW_HTTP_FIELD);
	size_t vend;
	enum gw_head_verdict v;

	st->pos = p;
	if (p == s->end)
		return GW_HEAD_INCOMPLETE;
	if (b[p] == '\n')
		return refuse(why, "bare LF");
	if (b[p] != '\r')
		return refuse(why, "control byte in header value");
	if (p + 1 == s->end)
		return GW_HEAD_INCOMPLETE; /* resumes at the CR */
	if (b[p + 1] != '\n')
		return refuse(why, "bare CR");
	for (vend = p; vend > st->value_off && is_ows(b[vend - 1]); vend--)
		;
	v = take_field(st, b, st->value_off, vend - st->value_off, why);
	if (v != GW_HEAD_OK)
		return v;
	st->pos = p + 2;
	st->stage = ST_LINE;
	return GW_HEAD_OK;
}

/*
 * Rules that need the whole head: Host presence, framing, the body limit.
 * An absolute-form target's authority is the reported host when Host
 * agrees with it.
 */
static enum gw_head_verdict scan_finish(const struct gw_head_scan *st, const char *b,
                                        uint64_t max_body_bytes, struct gw_request_head *h,
                                        const char **why)
{
	if (st->version_minor >= 1 && !st->host_seen)
		return refuse(why, "HTTP/1.1 request without Host");
	if (st->absolute_form) {
		if (st->host_seen && !gw_http_ieq(b + st->authority_off, st->authority_len,
		                                  b + st->host_off, st->host_len))
			return refuse(why, "absolute-form authority differs from Host");
		h->host = b + st->authority_off;
		h->host_len = st->authority_len;
	} else if (st->host_seen) {
		h->host = b + st->host_off;
		h->host_len = st->host_len;
	}
	if (st->te_seen && st->version_minor == 0)
		return refuse(why, "Transfer-Encoding in an HTTP/1.0 request");
	if (st->te_seen && st->has_content_length)
		return refuse(why, "both Content-Length and Transfer-Encoding");
	if (st->has_content_length && st->content_length > max_body_bytes) {
		*why = "Content-Length over max_body_bytes";
		return GW_HEAD_BODY_TOO_LARGE;
	}
	h->head_len = st->pos;
	h->method = b;
	h->method_len = st->method_len;
	h->target = b + st->target_off;
	h->target_len = st->target_len;
	h->path = b + st->path_off;
	h->path_len = st->path_len;
	h->version_major = st->version_major;
	h->version_minor = st->version_minor;
	h->has_content_length = st->has_content_length;
	h->content_length = st->content_length;
	h->chunked = st->chunked;
	h->absolute_form = st->absolute_form;
	return GW_HEAD_OK;
}

void gw_head_scan_init(struct gw_head_scan *st)
{
	*st = (struct gw_head_scan){0};
}

enum gw_head_verdict gw_head_scan_feed(struct gw_head_scan *st, const char *buf, size_t len,
                                       uint64_t max_header_bytes, uint64_t max_body_bytes,
                                       struct gw_request_head *head, const char **why)
{
	struct scan s = {.buf = buf, .end = len, .over = false};
	const char *reason = NULL;
	size_t start = st->pos;
	size_t stop;
	enum gw_head_verdict v = GW_HEAD_OK;

	*head = (struct gw_request_head){0};
	if (len > max_header_bytes) {
		s.end = (size_t)max_header_bytes;
		s.over = true;
	}
	if (st->pos > s.end) {
		/* The limit shrank under a head already read past it. */
		s.over = true;
		v = GW_HEAD_INCOMPLETE;
	}
	while (v == GW_HEAD_OK && st->stage != ST_END) {
		switch (st->stage) {
		case ST_METHOD:
			v = scan_method(st, &s, &reason);
			break;
		case ST_TARGET:
			v = scan_target(st, &s, &reason);
			break;
		case ST_VERSION:
			v = scan_version(st, &s, &reason);
			break;
		case ST_LINE:
			v = scan_line(st, &s, &reason);
			break;
		case ST_NAME:
			v = scan_name(st, &s, &reason);
			break;
		case ST_OWS:
			v = scan_ows(st, &s);
			break;
		default:
			v = scan_value(st, &s, &reason);
			break;
		}
	}
	if (v == GW_HEAD_OK)
		v = scan_finish(st, buf, max_body_bytes, head, &reason);
	if (v == GW_HEAD_INCOMPLETE && s.over) {
		v = GW_HEAD_HEADERS_TOO_LARGE;
		reason = "request head over max_header_bytes";
	}
	/* Every byte from where this call resumed to where it stopped (all of
	 * them while incomplete) was looked at about once. */
	stop = v == GW_HEAD_INCOMPLETE || v == GW_HEAD_HEADERS_TOO_LARGE ? s.end : st->pos;
	if (stop > start)
		st->scanned += stop - start;
	if (why)
		*why = reason;
	return v;
}

enum gw_head_verdict gw_request_head_check(const char *buf, size_t len, uint64_t max_header_bytes,
                                           uint64_t max_body_bytes, struct gw_request_head *head,
                                           const char **why)
{
	struct gw_head_scan st;

	gw_head_scan_init(&st);
	return gw_head_scan_feed(&st, buf, len, max_header_bytes, max_body_bytes, head, why);
}

/*
 * The end of the head is the first empty line: an LF followed by CRLF or by
 * another LF. Looking for LF with memchr and then at the next byte or two
 * finds "\r\n\r\n" and the bare-LF forms ("\n\n", "\n\r\n") in one pass.
 */
size_t gw_request_head_end(const char *buf, size_t len)
{
	const char *p = buf;
	const char *end = buf + len;

	while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		p++;
		if (p < end && *p == '\n')
			return (size_t)(p + 1 - buf);
		if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
			return (size_t)(p + 2 - buf);
	}
	return 0;
}

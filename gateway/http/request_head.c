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

/* Where the scan is. end is min(len, max_header_bytes); over says that the
 * buffer holds more than that, so running out of bytes means "too large". */
struct scan {
	const char *buf;
	size_t pos;
	size_t end;
	bool over;
};

/* What the header lines said, beyond what struct gw_request_head keeps. */
struct fields {
	bool host_seen;
	bool te_seen;
	const char *host; /* the Host header value */
	size_t host_len;
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

/*
 * "HTTP/D.D" CRLF at p. The version is compared on fixed offsets: the only
 * accepted form is exactly ten bytes, so there is nothing to search.
 */
static enum gw_head_verdict parse_version(struct scan *s, size_t p, struct gw_request_head *h,
                                          const char **why)
{
	const char *v = s->buf + p;

	if (s->end - p < 10)
		return GW_HEAD_INCOMPLETE;
	if (memcmp(v, "HTTP/", 5) != 0 || !CC_DIGIT(v[5]) || v[6] != '.' || !CC_DIGIT(v[7]))
		return refuse(why, "malformed HTTP version");
	if (v[8] != '\r')
		return refuse(why, v[8] == '\n' ? "bare LF" : "malformed HTTP version");
	if (v[9] != '\n')
		return refuse(why, "bare CR");
	h->version_major = v[5] - '0';
	h->version_minor = v[7] - '0';
	s->pos = p + 10;
	if (h->version_major == 0)
		return refuse(why, "HTTP/0.x");
	if (h->version_major != 1) {
		*why = "HTTP major version not 1";
		return GW_HEAD_VERSION;
	}
	return GW_HEAD_OK;
}

/*
 * Authority of an absolute-form target: host[:port] made of host bytes only,
 * non-empty, ending at "/", "?" or the end of the target. Userinfo ("@") is
 * refused as RFC 9110 4.2.4 asks, and so is anything else outside the class.
 */
static enum gw_head_verdict parse_authority(struct gw_request_head *h, size_t skip,
                                            const char **why)
{
	const char *a = h->target + skip;
	size_t n = h->target_len - skip;
	size_t i = span(a, 0, n, GW_HTTP_HOST);

	if (i == 0)
		return refuse(why, "absolute-form target without host");
	if (i < n && a[i] != '/' && a[i] != '?')
		return refuse(why, "invalid byte in target authority");
	h->absolute_form = true;
	h->host = a;
	h->host_len = i;
	h->path = a + i;
	h->path_len = n - i;
	return GW_HEAD_OK;
}

static enum gw_head_verdict check_target_form(struct gw_request_head *h, const char **why)
{
	const char *t = h->target;
	size_t n = h->target_len;

	h->path = t;
	h->path_len = n;
	if (t[0] == '/')
		return GW_HEAD_OK;
	if (n == 1 && t[0] == '*') {
		if (h->method_len == 7 && memcmp(h->method, "OPTIONS", 7) == 0)
			return GW_HEAD_OK;
		return refuse(why, "asterisk-form target with a method other than OPTIONS");
	}
	if (n >= 7 && gw_http_ieq(t, 7, "http://", 7))
		return parse_authority(h, 7, why);
	if (n >= 8 && gw_http_ieq(t, 8, "https://", 8))
		return parse_authority(h, 8, why);
	return refuse(why, "target is not origin-form, absolute-form or *");
}

static bool method_is(const struct gw_request_head *h, const char *m, size_t n)
{
	return h->method_len == n && memcmp(h->method, m, n) == 0;
}

/*
 * METHOD SP TARGET SP HTTP/D.D CRLF. Each part is a run of its own byte class
 * that must stop at exactly the expected separator, which makes double
 * spaces, spaces inside the target and a missing version all fall out as
 * "wrong separator".
 */
static enum gw_head_verdict parse_request_line(struct scan *s, struct gw_request_head *h,
                                               const char **why)
{
	const char *b = s->buf;
	size_t p = span(b, 0, s->end, GW_HTTP_TCHAR);
	size_t t;
	enum gw_head_verdict v;

	if (p == s->end)
		return GW_HEAD_INCOMPLETE;
	if (p == 0)
		return refuse(why, "request line does not start with a method");
	if (b[p] != ' ')
		return refuse(why, "method not followed by a single space");
	h->method = b;
	h->method_len = p;

	t = p + 1;
	p = gw_http_span(b, t, s->end, GW_HTTP_TARGET);
	if (p == s->end) {
		if (s->over) {
			*why = "request target too long";
			return GW_HEAD_URI_TOO_LONG;
		}
		return GW_HEAD_INCOMPLETE;
	}
	if (p == t)
		return refuse(why, "empty request target");
	if (b[p] == '\r' || b[p] == '\n')
		return refuse(why, "request line without HTTP version (HTTP/0.9)");
	if (b[p] != ' ')
		return refuse(why, "invalid byte in request target");
	h->target = b + t;
	h->target_len = p - t;

	v = parse_version(s, p + 1, h, why);
	if (v != GW_HEAD_OK)
		return v;
	if (method_is(h, "CONNECT", 7) || method_is(h, "TRACE", 5)) {
		*why = "CONNECT and TRACE are not allowed";
		return GW_HEAD_METHOD;
	}
	return check_target_form(h, why);
}

/* Content-Length: 1 to 18 digits and nothing else (no sign, no list). */
static enum gw_head_verdict take_content_length(struct gw_request_head *h, const char *v, size_t n,
                                                const char **why)
{
	uint64_t cl = 0;

	if (h->has_content_length)
		return refuse(why, "repeated Content-Length");
	if (n == 0 || n > CL_MAX_DIGITS)
		return refuse(why, "invalid Content-Length");
	for (size_t i = 0; i < n; i++) {
		if (!CC_DIGIT(v[i]))
			return refuse(why, "invalid Content-Length");
		cl = cl * 10 + (uint64_t)(v[i] - '0');
	}
	h->has_content_length = true;
	h->content_length = cl;
	return GW_HEAD_OK;
}

static enum gw_head_verdict take_transfer_encoding(struct gw_request_head *h, struct fields *f,
                                                   const char *v, size_t n, const char **why)
{
	if (f->te_seen)
		return refuse(why, "repeated Transfer-Encoding");
	f->te_seen = true;
	if (!gw_http_ieq(v, n, "chunked", 7))
		return refuse(why, "Transfer-Encoding other than chunked");
	h->chunked = true;
	return GW_HEAD_OK;
}

static enum gw_head_verdict take_host(struct fields *f, const char *v, size_t n, const char **why)
{
	if (f->host_seen)
		return refuse(why, "repeated Host");
	if (span(v, 0, n, GW_HTTP_HOST) != n)
		return refuse(why, "invalid Host");
	f->host_seen = true;
	f->host = v;
	f->host_len = n;
	return GW_HEAD_OK;
}

/* Only three header names matter to framing and routing; the length test
 * rejects almost every other header before any byte comparison. */
static enum gw_head_verdict take_field(struct gw_request_head *h, struct fields *f,
                                       const char *name, size_t name_len, const char *v, size_t n,
                                       const char **why)
{
	switch (name_len) {
	case 4:
		if (gw_http_ieq(name, 4, "host", 4))
			return take_host(f, v, n, why);
		break;
	case 14:
		if (gw_http_ieq(name, 14, "content-length", 14))
			return take_content_length(h, v, n, why);
		break;
	case 17:
		if (gw_http_ieq(name, 17, "transfer-encoding", 17))
			return take_transfer_encoding(h, f, v, n, why);
		break;
	}
	return GW_HEAD_OK;
}

/*
 * One header line at s->pos, known not to start with CR, LF, SP or HTAB:
 * NAME ":" OWS VALUE OWS CRLF. The name must run straight into the colon, so
 * "Transfer-Encoding : chunked" and ": x" are refused here.
 */
static enum gw_head_verdict parse_field_line(struct scan *s, struct gw_request_head *h,
                                             struct fields *f, const char **why)
{
	const char *b = s->buf;
	size_t name = s->pos;
	size_t p = span(b, name, s->end, GW_HTTP_TCHAR);
	size_t name_len = p - name;
	size_t value, vend;
	enum gw_head_verdict v;

	if (p == s->end)
		return GW_HEAD_INCOMPLETE;
	if (b[p] != ':' || name_len == 0)
		return refuse(why, "invalid header name");
	p++;
	while (p < s->end && is_ows(b[p]))
		p++;
	value = p;
	p = gw_http_span(b, p, s->end, GW_HTTP_FIELD);
	if (p == s->end)
		return GW_HEAD_INCOMPLETE;
	if (b[p] == '\n')
		return refuse(why, "bare LF");
	if (b[p] != '\r')
		return refuse(why, "control byte in header value");
	if (p + 1 == s->end)
		return GW_HEAD_INCOMPLETE;
	if (b[p + 1] != '\n')
		return refuse(why, "bare CR");
	for (vend = p; vend > value && is_ows(b[vend - 1]); vend--)
		;
	v = take_field(h, f, b + name, name_len, b + value, vend - value, why);
	if (v != GW_HEAD_OK)
		return v;
	s->pos = p + 2;
	return GW_HEAD_OK;
}

/*
 * Rules that need the whole head: Host presence, framing, the body limit.
 * An absolute-form target's authority was stored in h->host when the request
 * line was parsed; it stays the reported host when Host agrees with it.
 */
static enum gw_head_verdict check_head(struct gw_request_head *h, const struct fields *f,
                                       uint64_t max_body_bytes, const char **why)
{
	if (h->version_minor >= 1 && !f->host_seen)
		return refuse(why, "HTTP/1.1 request without Host");
	if (h->absolute_form) {
		if (f->host_seen && !gw_http_ieq(h->host, h->host_len, f->host, f->host_len))
			return refuse(why, "absolute-form authority differs from Host");
	} else {
		h->host = f->host;
		h->host_len = f->host_len;
	}
	if (f->te_seen && h->version_minor == 0)
		return refuse(why, "Transfer-Encoding in an HTTP/1.0 request");
	if (f->te_seen && h->has_content_length)
		return refuse(why, "both Content-Length and Transfer-Encoding");
	if (h->has_content_length && h->content_length > max_body_bytes) {
		*why = "Content-Length over max_body_bytes";
		return GW_HEAD_BODY_TOO_LARGE;
	}
	return GW_HEAD_OK;
}

/*
 * Header lines until the empty line. What starts a line decides what it is:
 * CRLF ends the head, a bare LF is refused, SP or HTAB is obs-fold (also
 * refused, as is whitespace between the request line and the first field).
 */
static enum gw_head_verdict parse_fields(struct scan *s, struct gw_request_head *h,
                                         struct fields *f, const char **why)
{
	const char *b = s->buf;
	enum gw_head_verdict v;

	for (;;) {
		if (s->pos == s->end)
			return GW_HEAD_INCOMPLETE;
		switch (b[s->pos]) {
		case '\r':
			if (s->pos + 1 == s->end)
				return GW_HEAD_INCOMPLETE;
			if (b[s->pos + 1] != '\n')
				return refuse(why, "bare CR");
			h->head_len = s->pos + 2;
			return GW_HEAD_OK;
		case '\n':
			return refuse(why, "bare LF");
		case ' ':
		case '\t':
			return refuse(why, "obs-fold or whitespace before a header name");
		}
		v = parse_field_line(s, h, f, why);
		if (v != GW_HEAD_OK)
			return v;
	}
}

enum gw_head_verdict gw_request_head_check(const char *buf, size_t len, uint64_t max_header_bytes,
                                           uint64_t max_body_bytes, struct gw_request_head *head,
                                           const char **why)
{
	struct scan s = {.buf = buf, .pos = 0, .end = len, .over = false};
	struct fields f = {0};
	const char *reason = NULL;
	enum gw_head_verdict v;

	*head = (struct gw_request_head){0};
	if (len > max_header_bytes) {
		s.end = (size_t)max_header_bytes;
		s.over = true;
	}
	v = parse_request_line(&s, head, &reason);
	if (v == GW_HEAD_OK)
		v = parse_fields(&s, head, &f, &reason);
	if (v == GW_HEAD_OK)
		v = check_head(head, &f, max_body_bytes, &reason);
	if (v == GW_HEAD_INCOMPLETE && s.over) {
		v = GW_HEAD_HEADERS_TOO_LARGE;
		reason = "request head over max_header_bytes";
	}
	if (why)
		*why = reason;
	return v;
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

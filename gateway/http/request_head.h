/*
 * Strict validation of a client's request head, on the raw bytes, before
 * evhttp's lenient parser sees them.
 *
 * evhttp accepts many things a proxy must refuse (NOTES: two Content-Length
 * values, "Transfer-Encoding: gzip", a space before the colon, NUL in values,
 * obs-fold, bare LF, HTTP/0.9, absolute-form targets ...). The gateway sees
 * every byte first (an evbuffer callback on the client connection), finds the
 * end of the head, and runs gw_request_head_check on it. Only a head that
 * passes reaches evhttp's parser and then routing.
 */
#ifndef GW_HTTP_REQUEST_HEAD_H
#define GW_HTTP_REQUEST_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gw_head_verdict {
	GW_HEAD_OK = 0,
	GW_HEAD_INCOMPLETE,        /* no end of head yet, and within limits */
	GW_HEAD_BAD_REQUEST,       /* 400 bad_request */
	GW_HEAD_HEADERS_TOO_LARGE, /* 431 headers_too_large */
	GW_HEAD_URI_TOO_LONG,      /* 414 uri_too_long */
	GW_HEAD_VERSION,           /* 505 version_not_supported */
	GW_HEAD_METHOD,            /* 405 method_not_allowed: CONNECT, TRACE */
	GW_HEAD_BODY_TOO_LARGE,    /* 413 body_too_large: Content-Length over the limit */
};

/* What the check learned, valid when the verdict is GW_HEAD_OK. Pointers
 * point into the buffer that was checked. */
struct gw_request_head {
	size_t head_len; /* bytes of the head, final empty line included */
	const char *method;
	size_t method_len;
	const char *target;
	size_t target_len;
	const char *path; /* origin-form part of the target: the target itself, or what follows
			     the authority of an absolute-form target (may be empty), or "*" */
	size_t path_len;
	int version_major;
	int version_minor;
	bool has_content_length;
	uint64_t content_length;
	bool chunked;
	const char *host; /* the Host header value, or the authority of an absolute-form target */
	size_t host_len;
	bool absolute_form;
};

/*
 * Checks the head at the start of buf (len bytes available, possibly more
 * than one request or only part of one).
 *
 * Rules (each failure is GW_HEAD_BAD_REQUEST unless said otherwise):
 * - lines end in CRLF; a bare LF or a bare CR anywhere in the head is refused
 * - request line: METHOD SP TARGET SP HTTP/D.D, exactly two single spaces;
 *   method a token; CONNECT and TRACE -> GW_HEAD_METHOD; other unknown
 *   tokens are allowed through (the router answers them);
 *   no version (HTTP/0.9 style) -> bad request; major version not 1 ->
 *   GW_HEAD_VERSION; 1.2 and up are accepted (served as 1.1)
 * - target: origin-form ("/..."), absolute-form ("http://host/..." or
 *   https) or "*" (OPTIONS only); no spaces, no control bytes, no bytes >= 0x7f
 * - target longer than max_header_bytes -> GW_HEAD_URI_TOO_LONG
 * - header lines: NAME ":" OWS VALUE OWS; name a non-empty token (no space
 *   before the colon); value without NUL, CR, LF or other control bytes but
 *   HTAB; a line starting with SP or HTAB (obs-fold) is refused
 * - Content-Length: digits only (no sign, no spaces inside), at most 18
 *   digits; present more than once (even with the same value, or as a list)
 *   -> bad request; over max_body_bytes -> GW_HEAD_BODY_TOO_LARGE
 * - Transfer-Encoding: only exactly "chunked" (case-insensitive) once;
 *   with Content-Length -> bad request
 * - Host: HTTP/1.1 needs exactly one; two -> bad request; HTTP/1.0 may omit
 * - absolute-form target whose authority differs from Host (case-insensitive)
 *   -> bad request
 * - the whole head larger than max_header_bytes -> GW_HEAD_HEADERS_TOO_LARGE
 *   (checked also while incomplete: an incomplete head already over the limit
 *   is too large, not incomplete)
 *
 * *why is set to a short static reason for logs when the verdict is an error.
 *
 * How the rules are applied (request_head.c):
 * - the head is read once, left to right, never past max_header_bytes; the
 *   first problem found wins, and a bad line is refused as soon as it is
 *   complete, even before the head has ended. Every proper prefix of a good
 *   head is GW_HEAD_INCOMPLETE, so cutting the input differently never
 *   changes the verdict
 * - GW_HEAD_URI_TOO_LONG: the limit is reached while the target is still
 *   being read (a target longer than max_header_bytes always is)
 * - "HTTP/0.x" is a bad request like the version-less HTTP/0.9 form (SPEC 4);
 *   other majors but 1 are GW_HEAD_VERSION
 * - Transfer-Encoding in an HTTP/1.0 request is refused (RFC 9112 6.1)
 * - Host and absolute-form authorities: host[:port] bytes only (no space,
 *   "/", "@" ...); the reported host is the authority for absolute-form
 * - leading empty lines are not skipped here: the caller drops them first
 */
enum gw_head_verdict gw_request_head_check(const char *buf, size_t len, uint64_t max_header_bytes,
                                           uint64_t max_body_bytes, struct gw_request_head *head,
                                           const char **why);

/*
 * The same check, resumable: a head that arrives in pieces is checked as it
 * grows, each byte looked at about once, instead of from its first byte on
 * every read (a head trickled a byte at a time would cost O(n^2)).
 *
 *   struct gw_head_scan st;
 *   gw_head_scan_init(&st);
 *   while ((v = gw_head_scan_feed(&st, buf, len, ...)) == GW_HEAD_INCOMPLETE)
 *           ... more bytes: buf grows (it may move), len with it ...
 *
 * Each call gets the whole head so far: the same bytes as before, at the
 * same offsets, plus new ones. The scan resumes where the last call ran out
 * of bytes, keeping what it learned as offsets. Verdicts, *head and *why are
 * exactly those of gw_request_head_check(buf, len, ...) for every way of
 * cutting the bytes. Once the verdict is not INCOMPLETE the state is spent:
 * init it again for the next head. An all-zero state is an initialised one.
 */
struct gw_head_scan {
	/* Private to request_head.c. */
	size_t pos;          /* where the scan resumes */
	unsigned char stage; /* what is read at pos */
	unsigned char version_major, version_minor;
	bool host_seen, te_seen, has_content_length, chunked, absolute_form;
	size_t method_len; /* the method starts at 0 */
	size_t target_off, target_len;
	size_t path_off, path_len;
	size_t authority_off, authority_len; /* absolute-form */
	size_t host_off, host_len;           /* the Host header's value */
	size_t line_off, name_len;           /* the header line being read */
	size_t value_off;
	uint64_t content_length;
	/* Public, read-only: bytes looked at over every call so far (an upper
	 * bound). Linear in the head's size however it is cut; tests check it. */
	uint64_t scanned;
};

void gw_head_scan_init(struct gw_head_scan *st);
enum gw_head_verdict gw_head_scan_feed(struct gw_head_scan *st, const char *buf, size_t len,
                                       uint64_t max_header_bytes, uint64_t max_body_bytes,
                                       struct gw_request_head *head, const char **why);

/* Offset just past the end of the head ("\r\n\r\n", or "\n\n" so that a
 * bare-LF head is found and refused), or 0 when not found in buf. */
size_t gw_request_head_end(const char *buf, size_t len);

/*
 * Character classes of RFC 9110/9112, shared by the gateway's HTTP parsers
 * (one table lookup per byte).
 */
enum gw_http_cclass_bits {
	GW_HTTP_TCHAR = 1,  /* token: ALPHA DIGIT !#$%&'*+-.^_`|~ */
	GW_HTTP_FIELD = 2,  /* field value / reason phrase: VCHAR SP HTAB obs-text */
	GW_HTTP_TARGET = 4, /* request target: VCHAR (0x21..0x7e) */
	GW_HTTP_HOST = 8,   /* uri-host [":" port]: unreserved sub-delims pct ":" "[" "]" */
};

extern const unsigned char gw_http_cclass[256];

/* Offset of the first byte at or after p (before end) outside class cls, or
 * end. GW_HTTP_FIELD and GW_HTTP_TARGET runs, most of a head's bytes, are
 * scanned 16 bytes at a time where SSE2 is available. */
size_t gw_http_span(const char *buf, size_t p, size_t end, unsigned int cls);

static inline bool gw_http_is(char c, unsigned int cls)
{
	return gw_http_cclass[(unsigned char)c] & cls;
}

static inline unsigned char gw_http_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* ASCII case-insensitive equality of a (alen bytes) and b (blen bytes). */
static inline bool gw_http_ieq(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++)
		if (gw_http_lower((unsigned char)a[i]) != gw_http_lower((unsigned char)b[i]))
			return false;
	return true;
}

#endif

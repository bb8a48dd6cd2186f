/*
 * The gateway's own strict parser for upstream response heads.
 *
 * An upstream response that is invalid (bad status line, two different
 * Content-Length values, oversized head, bad chunk sizes) is a failed try and
 * the connection is never reused, so the parser must be exact where evhttp's
 * client is lenient.
 */
#ifndef GW_HTTP_RESPONSE_HEAD_H
#define GW_HTTP_RESPONSE_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_RESPONSE_MAX_HEADERS 100

enum gw_body_framing {
	GW_BODY_NONE = 0, /* HEAD request, 1xx, 204, 304 */
	GW_BODY_LENGTH,   /* Content-Length */
	GW_BODY_CHUNKED,  /* Transfer-Encoding: chunked */
	GW_BODY_CLOSE,    /* until the upstream closes */
};

struct gw_header_ref {
	const char *name;
	size_t name_len;
	const char *value; /* OWS trimmed */
	size_t value_len;
};

/* Pointers point into the parsed buffer. */
struct gw_response_head {
	size_t head_len;
	int version_minor; /* HTTP/1.x */
	int status;        /* 100..599 */
	const char *reason;
	size_t reason_len;
	enum gw_body_framing framing;
	uint64_t content_length; /* GW_BODY_LENGTH */
	/* The Content-Length the upstream announced (its equal values
	 * collapsed to one), whatever the framing: a HEAD or 304 answer
	 * passes it on. false when absent or beside Transfer-Encoding. */
	bool length_announced;
	uint64_t announced_length;
	bool keep_alive; /* the connection may carry another request after this one */
	struct gw_header_ref headers[GW_RESPONSE_MAX_HEADERS];
	size_t nheaders;
};

enum gw_response_parse {
	GW_RESPONSE_DONE = 0,   /* head parsed; *head filled */
	GW_RESPONSE_INCOMPLETE, /* need more bytes */
	GW_RESPONSE_INVALID,
	GW_RESPONSE_TOO_LARGE, /* head over max_head bytes, or more than GW_RESPONSE_MAX_HEADERS */
};

/*
 * Parses the response head at the start of buf. head_request: the request
 * was HEAD (no body whatever the headers say).
 * Rules: "HTTP/1.0" or "HTTP/1.1" SP 3DIGIT SP reason CRLF (reason may be
 * empty, the SP before it may be missing); CRLF line ends (bare LF accepted,
 * as RFC 9112 allows for responses); header names are tokens; values have no
 * control bytes but HTAB; Content-Length digits only, several equal values
 * allowed, different values invalid; Transfer-Encoding other than chunked
 * (last coding) invalid; both -> chunked wins and keep_alive is false.
 * keep_alive: HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with
 * "Connection: keep-alive"; never for GW_BODY_CLOSE.
 * Details (response_head.c): the only Transfer-Encoding accepted is a single
 * "chunked" (the gateway drops the header when forwarding, so "gzip, chunked"
 * would reach the client undeclared); Transfer-Encoding in an HTTP/1.0
 * response is invalid (RFC 9112 6.1); Content-Length may also be a list of
 * equal values ("5, 5"); a 101 is never keep_alive; obs-fold is invalid;
 * a 1xx with Transfer-Encoding or a non-zero Content-Length is invalid; a
 * 204 with either, or a 304 with Transfer-Encoding, ends at its empty line
 * like any 204/304 but is never keep_alive (body bytes would follow it).
 * Bytes are judged as they come: garbage is INVALID after its first bytes,
 * and every proper prefix of a valid head is INCOMPLETE.
 */
enum gw_response_parse gw_response_head_parse(const char *buf, size_t len, size_t max_head,
                                              bool head_request, struct gw_response_head *head);

#endif

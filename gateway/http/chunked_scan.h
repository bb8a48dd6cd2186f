/*
 * Strict syntax check of a chunked request body, on the raw bytes as they
 * arrive from the client, before evhttp's lenient decoder sees them (it takes
 * "0x5" as a size and answers a bad size, or a trailer line it cannot parse,
 * with its own HTML 413).
 *
 * It copies nothing and keeps a few bytes of state, so it can follow a body
 * piece by piece, whatever the piece boundaries.
 *
 * gw_chunk_scan_start also holds the head rules about the body that evhttp
 * would otherwise apply by itself, with its own HTML answers or none
 * (Expect, a body on HEAD).
 */
#ifndef GW_HTTP_CHUNKED_SCAN_H
#define GW_HTTP_CHUNKED_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "request_head.h"

enum gw_chunk_scan_state {
	GW_CSCAN_SIZE = 0,      /* hex digits of a chunk size */
	GW_CSCAN_SIZE_LF,       /* LF after the size line's CR */
	GW_CSCAN_DATA,          /* payload */
	GW_CSCAN_DATA_CR,       /* CR after payload */
	GW_CSCAN_DATA_LF,       /* LF after payload */
	GW_CSCAN_TRAILER,       /* start of a trailer line (or of the final empty line) */
	GW_CSCAN_TRAILER_NAME,  /* a trailer field's name */
	GW_CSCAN_TRAILER_VALUE, /* its value */
	GW_CSCAN_TRAILER_LF,    /* LF ending a trailer line */
	GW_CSCAN_END_LF,        /* LF of the final empty line */
	GW_CSCAN_DONE,
	GW_CSCAN_INVALID,
};

/* Longest trailer field name kept for the comparison with refused names. */
#define GW_CSCAN_NAME_KEEP 17

struct gw_chunk_scan {
	enum gw_chunk_scan_state state;
	uint64_t remaining;            /* payload bytes left in the current chunk */
	uint64_t total;                /* payload bytes so far */
	uint64_t trailer_max;          /* bytes allowed for the trailer section; 0: 4096 */
	uint64_t trailer_len;          /* trailer bytes so far */
	unsigned digits;               /* hex digits of the current size */
	unsigned name_len;             /* bytes of the current trailer field name */
	char name[GW_CSCAN_NAME_KEEP]; /* its first bytes, lower case */
};

enum gw_chunk_scan_result {
	GW_CSCAN_MORE = 0,  /* all bytes consumed, body not finished */
	GW_CSCAN_FINISHED,  /* body finished; *used tells where */
	GW_CSCAN_BAD,       /* syntax error */
	GW_CSCAN_TOO_LARGE, /* payload over max_body */
};

/*
 * Feeds len bytes. *used: bytes that belong to the body (all of them unless
 * FINISHED, when what follows is the next request; for BAD, the offset of
 * the byte found wrong).
 *
 * Framing (RFC 9112 7.1): sizes are 1-15 hex digits and nothing else (no
 * extensions, no spaces), every line ends in CRLF. The trailer section is
 * checked like a head: each line is NAME ":" VALUE with NAME a token and
 * VALUE field bytes (no NUL or other controls but HTAB); a line starting
 * with SP or HTAB (obs-fold) is refused, so are Content-Length,
 * Transfer-Encoding and Host in a trailer (framing and routing fields, RFC
 * 9110 6.5.1), and a trailer section over trailer_max bytes.
 */
enum gw_chunk_scan_result gw_chunk_scan_feed(struct gw_chunk_scan *s, const char *p, size_t len,
                                             uint64_t max_body, size_t *used);

/*
 * Before the body of a request whose head passed gw_request_head_check
 * (head: its bytes, h: what the check learned): applies the rules about
 * the body that evhttp would otherwise apply itself, and readies s for the
 * body (its trailer section may take up to max_header_bytes).
 *
 * Returns 0, or the status of the gateway's refusal:
 * - 417 (expectation_failed): an Expect field whose value is not exactly
 *   "100-continue" (case-insensitive, spaces around it; an empty value, a
 *   list, or a tab before it, which evhttp keeps in the value, included),
 *   whatever the method and version: evhttp would answer its own HTML 417
 *   to a request with a body, and pass the others on, expectation unmet;
 * - 400 (bad_request): a HEAD request with a body (Content-Length over 0,
 *   or chunked): evhttp reads no body for HEAD and would take it for the
 *   next request on the connection (request smuggling).
 */
int gw_chunk_scan_start(struct gw_chunk_scan *s, const char *head, const struct gw_request_head *h,
                        uint64_t max_header_bytes);

#endif

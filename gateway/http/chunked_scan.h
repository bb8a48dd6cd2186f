/*
 * Strict syntax check of a chunked request body, on the raw bytes as they
 * arrive from the client, before evhttp's lenient decoder sees them (it takes
 * "0x5" as a size and answers a bad size with its own 413).
 *
 * It copies nothing and keeps a few bytes of state, so it can follow a body
 * piece by piece, whatever the piece boundaries.
 */
#ifndef GW_HTTP_CHUNKED_SCAN_H
#define GW_HTTP_CHUNKED_SCAN_H

#include <stddef.h>
#include <stdint.h>

enum gw_chunk_scan_state {
	GW_CSCAN_SIZE = 0,   /* hex digits of a chunk size */
	GW_CSCAN_SIZE_LF,    /* LF after the size line's CR */
	GW_CSCAN_DATA,       /* payload */
	GW_CSCAN_DATA_CR,    /* CR after payload */
	GW_CSCAN_DATA_LF,    /* LF after payload */
	GW_CSCAN_TRAILER,    /* a trailer line (or the final empty line) */
	GW_CSCAN_TRAILER_LF, /* LF ending a trailer line */
	GW_CSCAN_DONE,
	GW_CSCAN_INVALID,
};

struct gw_chunk_scan {
	enum gw_chunk_scan_state state;
	uint64_t remaining; /* payload bytes left in the current chunk */
	uint64_t total;     /* payload bytes so far */
	unsigned digits;    /* hex digits of the current size */
	unsigned line_len;  /* bytes of the current size/trailer line */
};

enum gw_chunk_scan_result {
	GW_CSCAN_MORE = 0,  /* all bytes consumed, body not finished */
	GW_CSCAN_FINISHED,  /* body finished; *used tells where */
	GW_CSCAN_BAD,       /* syntax error */
	GW_CSCAN_TOO_LARGE, /* payload over max_body */
};

/* Feeds len bytes. *used: bytes that belong to the body (all of them unless
 * FINISHED, when what follows is the next request). */
enum gw_chunk_scan_result gw_chunk_scan_feed(struct gw_chunk_scan *s, const char *p, size_t len,
                                             uint64_t max_body, size_t *used);

#endif

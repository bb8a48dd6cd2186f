/*
 * Incremental decoder for chunked bodies (upstream responses).
 *
 * It moves payload bytes from the input buffer to the output buffer without
 * copying them where it can (evbuffer_remove_buffer), and consumes the chunk
 * framing and trailers.
 */
#ifndef GW_HTTP_CHUNKED_H
#define GW_HTTP_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define GW_CHUNKED_LINE_MAX 1024

enum gw_chunked_state {
	GW_CHUNKED_SIZE = 0, /* reading "HEX[;ext]\r\n" */
	GW_CHUNKED_DATA,
	GW_CHUNKED_DATA_CRLF,
	GW_CHUNKED_TRAILER,
	GW_CHUNKED_DONE,
	GW_CHUNKED_ERROR,
};

struct gw_chunked {
	enum gw_chunked_state state;
	uint64_t remaining; /* payload bytes left in the current chunk */
};

enum gw_chunked_result {
	GW_CHUNKED_MORE = 0, /* consumed what it could; needs more input */
	GW_CHUNKED_FINISHED, /* last chunk and trailers consumed */
	GW_CHUNKED_INVALID,  /* bad size line (not hex, "0x", sign, overflow, too long) */
};

void gw_chunked_init(struct gw_chunked *c);
/* Decodes from in into out; at most max_out payload bytes are moved per call
 * (backpressure). Bytes after the final CRLF stay in in.
 * GW_CHUNKED_MORE also means "max_out reached": call again once out has
 * drained if in still holds bytes. Framing is consumed even when max_out is
 * spent, so the call that moves the last payload byte can already finish.
 * Size lines and trailer lines are limited to GW_CHUNKED_LINE_MAX bytes (CRLF
 * included); lines end in CRLF; trailer lines must look like "name: value". */
enum gw_chunked_result gw_chunked_decode(struct gw_chunked *c, struct evbuffer *in,
                                         struct evbuffer *out, size_t max_out);

#endif

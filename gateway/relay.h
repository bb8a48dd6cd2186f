/*
 * Writes a proxied response to the client.
 *
 * evhttp's reply functions cost a third of a proxied request: every header
 * is strdup'ed into a list, printed with evbuffer_add_printf, then freed. The
 * gateway instead formats the response head itself, straight from the
 * upstream's parsed head into one buffer, and hands evhttp finished bytes.
 *
 * How it stays within evhttp's rules (libevent 2.1): the bytes go out through
 * evhttp_send_reply_chunk_with_cb, which appends them to the connection's
 * output and arms evhttp's write callback, and the reply ends with
 * evhttp_send_reply_end, which runs evhttp's normal completion (keep-alive
 * or close, next request). The request's response code stays 0 and its
 * "chunked" flag off, so evhttp adds no framing of its own; the gateway does
 * the framing. Whether evhttp closes the connection afterwards follows the
 * request and the "Connection: close" the gateway records in the output
 * headers (gw_relay_will_close).
 */
#ifndef GW_RELAY_H
#define GW_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "http/response_head.h"

struct evbuffer;
struct evhttp_request;
struct evhttp_connection;

enum gw_relay_framing {
	GW_RELAY_NO_BODY = 0, /* HEAD, 1xx, 204, 304: no body; the length header (if
	                         any) is passed on, except on 1xx and 204 */
	GW_RELAY_LENGTH,      /* Content-Length: length */
	GW_RELAY_CHUNKED,     /* the gateway frames the body in chunks */
	GW_RELAY_CLOSE,       /* no length: the body ends when the connection closes
	                         (HTTP/1.0 client, body of unknown length) */
};

struct gw_relay_head {
	const struct gw_response_head *upstream; /* status and headers to pass on */
	enum gw_relay_framing framing;
	uint64_t length;        /* GW_RELAY_LENGTH */
	const char *request_id; /* returned as X-Request-ID */
	const char *connection; /* "close", "keep-alive" or NULL: the Connection header */
};

/*
 * Appends the response head to out: "HTTP/1.1 STATUS REASON" (see
 * gw_relay_reason), a Date unless the upstream sent one, the upstream's
 * end-to-end headers (hop-by-hop ones, Content-Length and X-Request-ID
 * removed), the framing header (for NO_BODY outside 1xx/204: the
 * upstream's announced Content-Length, once), the gateway's X-Request-ID
 * and Connection. Returns the head's length.
 */
size_t gw_relay_format_head(const struct gw_relay_head *h, struct evbuffer *out);

/*
 * The reason phrase sent for an upstream answer: the upstream's own when it
 * has one of printable ASCII (SP, HTAB, VCHAR; the parser already refused
 * CR, LF and other controls), else the standard phrase of the status
 * (gw_reply_reason; "" for an unregistered code). *len gets its length.
 */
const char *gw_relay_reason(const struct gw_response_head *up, size_t *len);

/* Appends one chunk of a GW_RELAY_CHUNKED body (moves data's bytes). */
void gw_relay_frame_chunk(struct evbuffer *out, struct evbuffer *data);
/* Appends the last chunk of a GW_RELAY_CHUNKED body. */
void gw_relay_frame_end(struct evbuffer *out);

/* Decides whether the client connection closes after this reply, and
 * records it for evhttp. Returns the Connection header value to send. */
const char *gw_relay_will_close(struct evhttp_request *req, bool force_close);

/* Sends bytes (moved out of data); drained(arg) runs when the client's
 * output buffer is empty again. */
void gw_relay_send(struct evhttp_request *req, struct evbuffer *data,
                   void (*drained)(struct evhttp_connection *, void *), void *arg);
/* The reply is complete: evhttp finishes it once the bytes are written, which
 * may be at once: the request, and the connection when it closes, may be
 * gone when this returns. */
void gw_relay_end(struct evhttp_request *req);

#endif

#include "relay.h"

#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "evhttp_adapter.h"
#include "http/header_rules.h"
#include "reply.h"
#include "util/outbuf.h"

static bool name_is(const struct gw_header_ref *r, const char *lower, size_t len)
{
	return r->name_len == len && strncasecmp(r->name, lower, len) == 0;
}

/* A reason phrase passes when it is printable ASCII (SP, HTAB, VCHAR): no
 * obs-text, whose meaning depends on a charset the client cannot know. */
static bool reason_is_clean(const char *r, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)r[i];

		if ((c < 0x20 && c != '\t') || c >= 0x7f)
			return false;
	}
	return true;
}

const char *gw_relay_reason(const struct gw_response_head *up, size_t *len)
{
	const char *std;

	if (up->reason && up->reason_len > 0 && reason_is_clean(up->reason, up->reason_len)) {
		*len = up->reason_len;
		return up->reason;
	}
	std = gw_reply_reason(up->status);
	*len = strlen(std);
	return std;
}

/* RFC 9110 8.6: no Content-Length in a 1xx or 204 (a 304's may pass: it
 * describes the representation the client already holds). */
static bool status_forbids_length(int status)
{
	return status < 200 || status == 204;
}

size_t gw_relay_format_head(const struct gw_relay_head *h, struct evbuffer *out)
{
	const struct gw_response_head *up = h->upstream;
	bool has_date = false;
	const char *conn = NULL;
	size_t conn_len = 0;
	size_t before = evbuffer_get_length(out);
	size_t reason_len;
	const char *reason = gw_relay_reason(up, &reason_len);
	struct gw_outbuf o;

	gw_outbuf_init(&o, out);
	gw_outbuf_add_lit(&o, "HTTP/1.1 ");
	gw_outbuf_add_u64(&o, (uint64_t)up->status);
	gw_outbuf_add_lit(&o, " ");
	gw_outbuf_add(&o, reason, reason_len);
	gw_outbuf_add_lit(&o, "\r\n");

	for (size_t i = 0; i < up->nheaders; i++) {
		if (name_is(&up->headers[i], "connection", 10)) {
			conn = up->headers[i].value;
			conn_len = up->headers[i].value_len;
		} else if (name_is(&up->headers[i], "date", 4)) {
			has_date = true;
		}
	}
	if (has_date && gw_http_list_has(conn, conn_len, "date", 4))
		has_date = false; /* "Connection: Date" removes it below */
	if (!has_date) {          /* RFC 9110 6.6.1: a recipient with a clock adds one */
		gw_outbuf_add_lit(&o, "Date: ");
		gw_outbuf_add(&o, gw_http_date_now(), GW_HTTP_DATE_LEN);
		gw_outbuf_add_lit(&o, "\r\n");
	}
	for (size_t i = 0; i < up->nheaders; i++) {
		const struct gw_header_ref *r = &up->headers[i];
		if (gw_header_is_hop_by_hop(r->name, r->name_len, conn, conn_len))
			continue;
		if (name_is(r, "content-length", 14))
			continue; /* the gateway writes the length (below) */
		if (name_is(r, "x-request-id", 12))
			continue; /* the gateway's own id is returned below */
		gw_outbuf_add_header(&o, r->name, r->name_len, r->value, r->value_len);
	}
	if (h->framing == GW_RELAY_LENGTH) {
		gw_outbuf_add_lit(&o, "Content-Length: ");
		gw_outbuf_add_u64(&o, h->length);
		gw_outbuf_add_lit(&o, "\r\n");
	} else if (h->framing == GW_RELAY_NO_BODY && up->length_announced &&
	           !status_forbids_length(up->status)) {
		/* HEAD or 304: the length of the representation, once (equal
		 * duplicates collapsed, none beside Transfer-Encoding) */
		gw_outbuf_add_lit(&o, "Content-Length: ");
		gw_outbuf_add_u64(&o, up->announced_length);
		gw_outbuf_add_lit(&o, "\r\n");
	} else if (h->framing == GW_RELAY_CHUNKED) {
		gw_outbuf_add_lit(&o, "Transfer-Encoding: chunked\r\n");
	}
	gw_outbuf_add_header(&o, "X-Request-ID", sizeof("X-Request-ID") - 1, h->request_id,
	                     strlen(h->request_id));
	if (h->connection)
		gw_outbuf_add_header(&o, "Connection", sizeof("Connection") - 1, h->connection,
		                     strlen(h->connection));
	gw_outbuf_add_lit(&o, "\r\n");
	gw_outbuf_flush(&o);
	return evbuffer_get_length(out) - before;
}

void gw_relay_frame_chunk(struct evbuffer *out, struct evbuffer *data)
{
	size_t len = evbuffer_get_length(data);
	struct gw_outbuf o;

	if (len == 0)
		return; /* an empty chunk would end the body */
	gw_outbuf_init(&o, out);
	gw_outbuf_add_hex(&o, len);
	gw_outbuf_add_lit(&o, "\r\n");
	gw_outbuf_flush(&o);
	evbuffer_add_buffer(out, data);
	evbuffer_add(out, "\r\n", 2);
}

void gw_relay_frame_end(struct evbuffer *out)
{
	evbuffer_add(out, "0\r\n\r\n", 5);
}

/* Is this header list's Connection value the given token? */
static bool connection_has(const struct evkeyvalq *headers, const char *token)
{
	const char *v = evhttp_find_header(headers, "Connection");
	size_t tlen = strlen(token);

	while (v && *v) {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		if (strncasecmp(v, token, tlen) == 0 &&
		    (v[tlen] == '\0' || v[tlen] == ',' || v[tlen] == ' ' || v[tlen] == '\t'))
			return true;
		v = strchr(v, ',');
	}
	return false;
}

/*
 * The client keeps its connection unless it asked to close, or speaks
 * HTTP/1.0 without keep-alive, or the gateway is draining. evhttp decides
 * the same way after the reply, from the request's headers and the
 * "Connection: close" recorded in the output headers.
 */
const char *gw_relay_will_close(struct evhttp_request *req, bool force_close)
{
	const struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	bool http10 = gw_evhttp_request_is_http10(req);

	if (force_close) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		return "close";
	}
	if (connection_has(in, "close"))
		return "close";
	if (http10)
		return connection_has(in, "keep-alive") ? "keep-alive" : "close";
	return NULL;
}

void gw_relay_send(struct evhttp_request *req, struct evbuffer *data,
                   void (*drained)(struct evhttp_connection *, void *), void *arg)
{
	gw_evhttp_send_framed(req, data, drained, arg);
}

void gw_relay_end(struct evhttp_request *req)
{
	gw_evhttp_end_framed(req);
}

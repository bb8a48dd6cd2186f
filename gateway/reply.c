#include "reply.h"

#include <stdio.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

const char *gw_reply_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Error";
	}
}

static int format_body(const struct gw_error_reply *e, char *out, size_t size)
{
	return snprintf(out, size, "{\"error\":\"%s\",\"request_id\":\"%s\"}\n", e->code,
	                e->request_id);
}

size_t gw_reply_error(struct evhttp_request *req, const struct gw_error_reply *e)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct evbuffer *body = evbuffer_new();
	char text[160];
	char retry[16];
	int n = format_body(e, text, sizeof(text));

	evhttp_clear_headers(out);
	evhttp_add_header(out, "Content-Type",
	                  e->content_type ? e->content_type : "application/json");
	evhttp_add_header(out, "X-Gateway-Error", e->code);
	evhttp_add_header(out, "X-Request-ID", e->request_id);
	if (e->allow)
		evhttp_add_header(out, "Allow", e->allow);
	if (e->retry_after_s > 0) {
		snprintf(retry, sizeof(retry), "%d", e->retry_after_s);
		evhttp_add_header(out, "Retry-After", retry);
	}
	if (e->close)
		evhttp_add_header(out, "Connection", "close");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)
		evhttp_add_header(out, "Content-Length", "0");
	else if (e->content_type)
		evbuffer_add(body, e->body, e->body_len);
	else
		evbuffer_add(body, text, (size_t)n);
	n = (int)evbuffer_get_length(body);
	evhttp_send_reply(req, e->status, gw_reply_reason(e->status), body);
	evbuffer_free(body);
	return (size_t)n;
}

size_t gw_reply_error_raw(const struct gw_error_reply *e, char *out, size_t out_size)
{
	char text[160];
	int body_len = format_body(e, text, sizeof(text));
	int n = snprintf(out, out_size,
	                 "HTTP/1.1 %d %s\r\n"
	                 "Content-Type: application/json\r\n"
	                 "Content-Length: %d\r\n"
	                 "X-Gateway-Error: %s\r\n"
	                 "X-Request-ID: %s\r\n"
	                 "%s%s%s"
	                 "Connection: close\r\n\r\n%s",
	                 e->status, gw_reply_reason(e->status), body_len, e->code, e->request_id,
	                 e->allow ? "Allow: " : "", e->allow ? e->allow : "",
	                 e->allow ? "\r\n" : "", text);
	if (n < 0 || (size_t)n >= out_size)
		return 0;
	return (size_t)n;
}

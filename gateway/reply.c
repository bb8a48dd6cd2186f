#include "reply.h"

#include <stdio.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "http/header_rules.h"

/*
 * The IANA HTTP Status Code Registry: RFC 9110 section 15 and the codes
 * other RFCs registered (102, 103, 207, 208, 226, 423, 424, 425, 428, 429,
 * 431, 451, 506, 507, 508, 511). 306 and 418 are "(Unused)" and 510 is
 * obsolete: like any unregistered code they get an empty phrase, which RFC
 * 9112 4 allows ("HTTP/1.1 299 "); a client goes by the number.
 */
const char *gw_reply_reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 101:
		return "Switching Protocols";
	case 102:
		return "Processing";
	case 103:
		return "Early Hints";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 203:
		return "Non-Authoritative Information";
	case 204:
		return "No Content";
	case 205:
		return "Reset Content";
	case 206:
		return "Partial Content";
	case 207:
		return "Multi-Status";
	case 208:
		return "Already Reported";
	case 226:
		return "IM Used";
	case 300:
		return "Multiple Choices";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 303:
		return "See Other";
	case 304:
		return "Not Modified";
	case 305:
		return "Use Proxy";
	case 307:
		return "Temporary Redirect";
	case 308:
		return "Permanent Redirect";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 402:
		return "Payment Required";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 406:
		return "Not Acceptable";
	case 407:
		return "Proxy Authentication Required";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 410:
		return "Gone";
	case 411:
		return "Length Required";
	case 412:
		return "Precondition Failed";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 415:
		return "Unsupported Media Type";
	case 416:
		return "Range Not Satisfiable";
	case 417:
		return "Expectation Failed";
	case 421:
		return "Misdirected Request";
	case 422:
		return "Unprocessable Content";
	case 423:
		return "Locked";
	case 424:
		return "Failed Dependency";
	case 425:
		return "Too Early";
	case 426:
		return "Upgrade Required";
	case 428:
		return "Precondition Required";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 451:
		return "Unavailable For Legal Reasons";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	case 506:
		return "Variant Also Negotiates";
	case 507:
		return "Insufficient Storage";
	case 508:
		return "Loop Detected";
	case 511:
		return "Network Authentication Required";
	default:
		return "";
	}
}

/* RFC 9110 6.4.1, 8.6: these answers have no body and a 204 no length. */
static bool status_has_no_body(int status)
{
	return (status >= 100 && status < 200) || status == 204 || status == 304;
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
	/* evhttp adds a Date itself only for HTTP/1.1 requests, formatting it
	 * each time: the cached one serves both. */
	evhttp_add_header(out, "Date", gw_http_date_now());
	if (status_has_no_body(e->status))
		; /* a route fallback may say 204 or 304: no body, and evhttp adds no length */
	else if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)
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
	char retry[32] = "";
	int body_len = format_body(e, text, sizeof(text));
	int n;

	if (e->retry_after_s > 0)
		snprintf(retry, sizeof(retry), "Retry-After: %d\r\n", e->retry_after_s);
	n = snprintf(out, out_size,
	             "HTTP/1.1 %d %s\r\n"
	             "Date: %s\r\n"
	             "Content-Type: application/json\r\n"
	             "Content-Length: %d\r\n"
	             "X-Gateway-Error: %s\r\n"
	             "X-Request-ID: %s\r\n"
	             "%s%s%s%s"
	             "Connection: close\r\n\r\n%s",
	             e->status, gw_reply_reason(e->status), gw_http_date_now(), body_len, e->code,
	             e->request_id, e->allow ? "Allow: " : "", e->allow ? e->allow : "",
	             e->allow ? "\r\n" : "", retry, text);
	if (n < 0 || (size_t)n >= out_size)
		return 0;
	return (size_t)n;
}

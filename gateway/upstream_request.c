/*
 * The request as the upstream sees it (SPEC section 3): the client's
 * end-to-end headers, plus the ones the gateway sets itself.
 */
#include "upstream_request.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "client_conn.h"
#include "http/header_rules.h"
#include "router.h"
#include "txn.h"
#include "util/clock.h"
#include "util/outbuf.h"

/* Upstream request target buffer. */
#define GW_TARGET_MAX GW_UPSTREAM_TARGET_MAX

const char *gw_method_name(unsigned method)
{
	switch (method) {
	case GW_METHOD_GET:
		return "GET";
	case GW_METHOD_POST:
		return "POST";
	case GW_METHOD_HEAD:
		return "HEAD";
	case GW_METHOD_PUT:
		return "PUT";
	case GW_METHOD_DELETE:
		return "DELETE";
	case GW_METHOD_OPTIONS:
		return "OPTIONS";
	case GW_METHOD_TRACE:
		return "TRACE";
	case GW_METHOD_CONNECT:
		return "CONNECT";
	case GW_METHOD_PATCH:
		return "PATCH";
	default:
		return "UNKNOWN";
	}
}

const char *gw_origin_target(const char *uri)
{
	if (strncasecmp(uri, "http://", 7) == 0 || strncasecmp(uri, "https://", 8) == 0) {
		const char *p = strstr(uri, "://") + 3;
		const char *slash = strpbrk(p, "/?");
		return slash ? slash : "/";
	}
	return uri;
}

/* Request headers the gateway writes itself instead of passing on. */
enum replaced_header {
	KEEP = 0,
	DROP, /* Content-Length, Expect, X-Request-ID, X-Request-Timeout-Ms, X-Forwarded-Proto/Host */
	HOST, /* becomes X-Forwarded-Host */
	XFF,  /* the client address is appended */
	VIA,  /* "1.1 gateway" is appended */
};

static enum replaced_header classify(const char *name, size_t len)
{
	switch (len) {
	case 3:
		return strcasecmp(name, "via") == 0 ? VIA : KEEP;
	case 4:
		return strcasecmp(name, "host") == 0 ? HOST : KEEP;
	case 6:
		return strcasecmp(name, "expect") == 0 ? DROP : KEEP;
	case 12:
		return strcasecmp(name, "x-request-id") == 0 ? DROP : KEEP;
	case 14:
		return strcasecmp(name, "content-length") == 0 ? DROP : KEEP;
	case 15:
		return strcasecmp(name, "x-forwarded-for") == 0 ? XFF : KEEP;
	case 16:
		return strcasecmp(name, "x-forwarded-host") == 0 ? DROP : KEEP;
	case 17:
		return strcasecmp(name, "x-forwarded-proto") == 0 ? DROP : KEEP;
	case 20:
		return strcasecmp(name, "x-request-timeout-ms") == 0 ? DROP : KEEP;
	default:
		return KEEP;
	}
}

int gw_upstream_request_write(const struct gw_txn *txn, struct evbuffer *dst)
{
	struct evhttp_request *req = txn->req;
	const struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const struct gw_server_conf *server = &txn->route->upstream->servers[txn->server_idx];
	struct evbuffer *body = evhttp_request_get_input_buffer(req);
	size_t body_len = evbuffer_get_length(body);
	const char *uri = gw_origin_target(evhttp_request_get_uri(req));
	const char *query = strchr(uri, '?');
	size_t path_len = query ? (size_t)(query - uri) : strlen(uri);
	const char *conn = evhttp_find_header(in, "Connection");
	size_t conn_len = conn ? strlen(conn) : 0;
	const char *client = txn->cc ? txn->cc->client_ip : "";
	const char *xff = NULL, *via = NULL, *host = NULL;
	const char *method = gw_method_name(txn->method);
	char target[GW_TARGET_MAX];
	uint64_t now = gw_clock_now_ms();
	const struct evkeyval *h;
	struct gw_outbuf o;
	int n;

	n = gw_router_strip_prefix(txn->route, uri, path_len, query ? query + 1 : NULL, target,
	                           sizeof(target));
	if (n < 0)
		return -1;
	gw_outbuf_init(&o, dst);
	gw_outbuf_add_str(&o, method);
	gw_outbuf_add_lit(&o, " ");
	gw_outbuf_add(&o, target, (size_t)n);
	gw_outbuf_add_lit(&o, " HTTP/1.1\r\nHost: ");
	gw_outbuf_add_str(&o, server->address);
	gw_outbuf_add_lit(&o, "\r\n");
	TAILQ_FOREACH(h, in, next)
	{
		size_t name_len = strlen(h->key);
		switch (classify(h->key, name_len)) {
		case HOST:
			host = h->value;
			continue;
		case XFF:
			xff = h->value;
			continue;
		case VIA:
			via = h->value;
			continue;
		case DROP:
			continue;
		case KEEP:
			break;
		}
		if (gw_request_header_dropped(h->key, name_len, conn, conn_len,
		                              txn->config->limits.keep_underscores_in_headers))
			continue;
		gw_outbuf_add_header(&o, h->key, name_len, h->value, strlen(h->value));
	}
	gw_outbuf_add_lit(&o, "X-Forwarded-For: ");
	if (xff) {
		gw_outbuf_add_str(&o, xff);
		gw_outbuf_add_lit(&o, ", ");
	}
	gw_outbuf_add_str(&o, client);
	if (txn->cc && txn->cc->ssl)
		gw_outbuf_add_lit(&o, "\r\nX-Forwarded-Proto: https\r\n");
	else
		gw_outbuf_add_lit(&o, "\r\nX-Forwarded-Proto: http\r\n");
	if (host)
		gw_outbuf_add_header(&o, "X-Forwarded-Host", sizeof("X-Forwarded-Host") - 1, host,
		                     strlen(host));
	gw_outbuf_add_lit(&o, "Via: ");
	if (via) {
		gw_outbuf_add_str(&o, via);
		gw_outbuf_add_lit(&o, ", ");
	}
	gw_outbuf_add_lit(&o, "1.1 gateway\r\n");
	gw_outbuf_add_header(&o, "X-Request-ID", sizeof("X-Request-ID") - 1, txn->request_id,
	                     strlen(txn->request_id));
	gw_outbuf_add_lit(&o, "X-Request-Timeout-Ms: ");
	gw_outbuf_add_u64(&o, txn->deadline_ms > now ? txn->deadline_ms - now : 1);
	gw_outbuf_add_lit(&o, "\r\n");
	if (body_len > 0 || txn->method == GW_METHOD_POST || txn->method == GW_METHOD_PUT ||
	    txn->method == GW_METHOD_PATCH) {
		gw_outbuf_add_lit(&o, "Content-Length: ");
		gw_outbuf_add_u64(&o, body_len);
		gw_outbuf_add_lit(&o, "\r\n");
	}
	gw_outbuf_add_lit(&o, "\r\n");
	gw_outbuf_flush(&o);
	if (body_len > 0)
		evbuffer_add_buffer_reference(dst, body); /* the body stays for a retry */
	return 0;
}

#include "txn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>

#include "access_log.h"
#include "client_conn.h"
#include "http/header_rules.h"
#include "reply.h"
#include "router.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"
#include "worker.h"

/* Client output above this pauses reading from the upstream. */
#define GW_CLIENT_OUT_HIGH (256 * 1024)
/* An HTTP/1.0 client cannot take a streamed body of unknown length: the
 * gateway holds such a body whole, up to this size. */
#define GW_HELD_BODY_MAX (64 * 1024 * 1024)
/* Upstream request target buffer. */
#define GW_TARGET_MAX 8192

static const struct gw_upconn_handler upstream_handler;
static void start_try(struct gw_txn *txn);

static const char *method_name(unsigned method)
{
	switch (method) {
	case GW_METHOD_GET: return "GET";
	case GW_METHOD_POST: return "POST";
	case GW_METHOD_HEAD: return "HEAD";
	case GW_METHOD_PUT: return "PUT";
	case GW_METHOD_DELETE: return "DELETE";
	case GW_METHOD_OPTIONS: return "OPTIONS";
	case GW_METHOD_TRACE: return "TRACE";
	case GW_METHOD_CONNECT: return "CONNECT";
	case GW_METHOD_PATCH: return "PATCH";
	default: return "UNKNOWN";
	}
}

/* The request target without scheme and authority (absolute-form). */
static const char *origin_target(const char *uri)
{
	if (strncasecmp(uri, "http://", 7) == 0 || strncasecmp(uri, "https://", 8) == 0) {
		const char *p = strstr(uri, "://") + 3;
		const char *slash = strpbrk(p, "/?");
		return slash ? slash : "/";
	}
	return uri;
}

static void set_deadline(struct gw_txn *txn, uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};

	evtimer_add(&txn->deadline_ev, &tv);
}

/* ---- end of a transaction ---------------------------------------------- */

static void log_access(struct gw_txn *txn)
{
	const struct gw_route_conf *route = txn->route;
	const char *uri = txn->req ? evhttp_request_get_uri(txn->req) : NULL;
	struct gw_access_entry e = {
		.request_id = txn->request_id,
		.client = txn->cc ? txn->cc->client_ip : NULL,
		.method = method_name(txn->method),
		.path = uri ? origin_target(uri) : NULL,
		.route = route ? route->name : NULL,
		.upstream = route ? route->upstream->name : NULL,
		.server = route && txn->server_idx >= 0
				  ? route->upstream->servers[txn->server_idx].address
				  : NULL,
		.status = txn->status,
		.bytes = txn->bytes_sent,
		.duration_us = gw_clock_now_us() - txn->start_us,
		.error = txn->error_code,
	};
	gw_access_log_add(txn->worker->log_buf, &e);
}

/* Ends the current try's bookkeeping (least_request counts), once. */
static void try_done(struct gw_txn *txn)
{
	if (txn->try_active) {
		txn->pool->inflight[txn->server_idx]--;
		txn->try_active = false;
	}
}

/* Drops whatever the current try holds: connection, place in a queue. */
static void stop_upstream(struct gw_txn *txn)
{
	if (txn->up) {
		gw_upconn_abandon(txn->up);
		txn->up = NULL;
	}
	if (txn->waiter.queued)
		gw_pool_cancel_wait(txn->pool, (size_t)txn->server_idx, &txn->waiter);
	try_done(txn);
}

/* Frees the transaction; the reply is finished (or cannot be). */
static void txn_end(struct gw_txn *txn)
{
	log_access(txn);
	stop_upstream(txn);
	if (txn->cc) {
		gw_client_conn_request_ends(txn->cc);
		txn->cc->txn = NULL;
	}
	event_del(&txn->deadline_ev);
	if (txn->held_body)
		evbuffer_free(txn->held_body);
	txn->worker->inflight--;
	gw_config_unref(txn->config);
	free(txn);
}

/* Answers with a gateway error (only before any reply byte). */
static void fail_request(struct gw_txn *txn, int status, const char *code, const char *allow,
			 bool close)
{
	struct gw_error_reply e = {
		.status = status,
		.code = code,
		.request_id = txn->request_id,
		.close = close || txn->worker->draining,
		.allow = allow,
	};

	txn->status = status;
	txn->error_code = code;
	if (txn->req)
		txn->bytes_sent = gw_reply_error(txn->req, &e);
	txn_end(txn);
}

/* The reply started and cannot be finished properly: cut the client off so
 * that it sees a truncated response rather than a wrong one. */
static void abort_reply(struct gw_txn *txn)
{
	struct gw_client_conn *cc = txn->cc;

	if (txn->status == 0)
		txn->status = 502;
	if (cc)
		gw_client_conn_abort(cc); /* evhttp frees the request; txn ends via client_gone */
	else
		txn_end(txn);
}

void gw_txn_client_gone(struct gw_txn *txn)
{
	struct evhttp_request *req = txn->req;

	txn->client_gone = true;
	txn->cc = NULL;
	stop_upstream(txn);
	if (!txn->reply_started || txn->status == 0)
		txn->status = 499; /* client closed the request */
	/* A request evhttp detached from its dead connection is ours to free. */
	if (req && evhttp_request_get_connection(req) == NULL) {
		if (txn->reply_started)
			evhttp_send_reply_end(req);
		else
			evhttp_send_reply(req, 500, "Gone", NULL);
	}
	txn->req = NULL;
	txn_end(txn);
}

/* ---- response relay ----------------------------------------------------- */

/* Copies the upstream's response headers for the client (SPEC section 3). */
static void copy_response_headers(struct gw_txn *txn, const struct gw_response_head *h)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(txn->req);
	const char *conn = NULL;
	size_t conn_len = 0;
	char name[256];
	char value[8192];
	bool keep_length = txn->head_request || h->status == 304;

	for (size_t i = 0; i < h->nheaders; i++) {
		if (h->headers[i].name_len == 10 &&
		    strncasecmp(h->headers[i].name, "connection", 10) == 0) {
			conn = h->headers[i].value;
			conn_len = h->headers[i].value_len;
		}
	}
	for (size_t i = 0; i < h->nheaders; i++) {
		const struct gw_header_ref *r = &h->headers[i];
		if (r->name_len >= sizeof(name) || r->value_len >= sizeof(value))
			continue;
		if (gw_header_is_hop_by_hop(r->name, r->name_len, conn, conn_len))
			continue;
		if (r->name_len == 14 && strncasecmp(r->name, "content-length", 14) == 0 &&
		    !keep_length)
			continue; /* evhttp writes the length it sends */
		if (r->name_len == 12 && strncasecmp(r->name, "x-request-id", 12) == 0)
			continue; /* the gateway's own id is returned below */
		memcpy(name, r->name, r->name_len);
		name[r->name_len] = '\0';
		memcpy(value, r->value, r->value_len);
		value[r->value_len] = '\0';
		evhttp_add_header(out, name, value);
	}
	evhttp_add_header(out, "X-Request-ID", txn->request_id);
	if (txn->worker->draining)
		evhttp_add_header(out, "Connection", "close");
}

static void on_response(void *owner, const struct gw_response_head *h, struct evbuffer *body)
{
	struct gw_txn *txn = owner;

	txn->up = NULL;
	try_done(txn);
	gw_client_conn_watch_close(txn->cc, false);
	copy_response_headers(txn, h);
	txn->status = h->status;
	txn->bytes_sent = evbuffer_get_length(body);
	if (txn->head_request)
		evbuffer_drain(body, evbuffer_get_length(body));
	evhttp_send_reply(txn->req, h->status, NULL, body); /* NULL: the standard phrase */
	txn_end(txn);
}

static void on_client_drained(struct evhttp_connection *evcon, void *arg)
{
	struct gw_txn *txn = arg;

	if (txn->up)
		gw_upconn_pause(txn->up, false);
}

static void on_head(void *owner, const struct gw_response_head *h)
{
	struct gw_txn *txn = owner;
	struct evkeyvalq *out = evhttp_request_get_output_headers(txn->req);
	char len[24];

	copy_response_headers(txn, h);
	txn->status = h->status;
	if (h->framing == GW_BODY_LENGTH) {
		snprintf(len, sizeof(len), "%llu", (unsigned long long)h->content_length);
		evhttp_add_header(out, "Content-Length", len);
	} else if (txn->client_http10) {
		txn->held_body = evbuffer_new();
		set_deadline(txn, txn->route->timeout_ms);
		return;
	}
	evhttp_send_reply_start(txn->req, h->status, NULL);
	txn->reply_started = true;
	/* From now on the route timeout bounds the silence between pieces. */
	set_deadline(txn, txn->route->timeout_ms);
}

static void on_body(void *owner, struct evbuffer *data, bool last)
{
	struct gw_txn *txn = owner;
	size_t n = evbuffer_get_length(data);

	if (last) {
		txn->up = NULL;
		try_done(txn);
		gw_client_conn_watch_close(txn->cc, false);
	}
	txn->bytes_sent += n;
	if (txn->held_body) {
		evbuffer_add_buffer(txn->held_body, data);
		if (last) {
			evhttp_send_reply(txn->req, txn->status, NULL, txn->held_body);
			txn_end(txn);
		} else if (evbuffer_get_length(txn->held_body) > GW_HELD_BODY_MAX) {
			txn->error_code = "upstream_unavailable";
			fail_request(txn, 502, "upstream_unavailable", NULL, true);
		} else {
			set_deadline(txn, txn->route->timeout_ms);
		}
		return;
	}
	if (n > 0) {
		struct evhttp_connection *evcon = evhttp_request_get_connection(txn->req);
		evhttp_send_reply_chunk_with_cb(txn->req, data, on_client_drained, txn);
		evbuffer_drain(data, evbuffer_get_length(data)); /* HEAD: nothing is sent */
		if (!last && evcon &&
		    evbuffer_get_length(bufferevent_get_output(
			    evhttp_connection_get_bufferevent(evcon))) > GW_CLIENT_OUT_HIGH)
			gw_upconn_pause(txn->up, true);
	}
	if (last) {
		evhttp_send_reply_end(txn->req);
		txn_end(txn);
	} else {
		set_deadline(txn, txn->route->timeout_ms);
	}
}

static bool retry_allowed_after_stale(const struct gw_txn *txn)
{
	const struct evkeyvalq *in;

	if (!txn->up_reused || txn->stale_retries >= 3)
		return false;
	switch (txn->method) {
	case GW_METHOD_GET:
	case GW_METHOD_HEAD:
	case GW_METHOD_OPTIONS:
	case GW_METHOD_PUT:
	case GW_METHOD_DELETE:
		return true;
	default:
		in = evhttp_request_get_input_headers(txn->req);
		return evhttp_find_header(in, "Idempotency-Key") != NULL;
	}
}

static void on_error(void *owner, enum gw_try_result result, int err)
{
	struct gw_txn *txn = owner;

	txn->up = NULL;
	try_done(txn);
	if (txn->reply_started || txn->held_body) {
		abort_reply(txn);
		return;
	}
	/* A pooled connection that the server had already closed: the request
	 * never reached it. Try again on another connection. */
	if (result == GW_TRY_RESET && retry_allowed_after_stale(txn)) {
		txn->stale_retries++;
		start_try(txn);
		return;
	}
	gw_client_conn_watch_close(txn->cc, false);
	if (result == GW_TRY_TIMEOUT)
		fail_request(txn, 504, "upstream_timeout", NULL, false);
	else
		fail_request(txn, 502, "upstream_unavailable", NULL, false);
}

static const struct gw_upconn_handler upstream_handler = {
	.on_response = on_response,
	.on_head = on_head,
	.on_body = on_body,
	.on_error = on_error,
};

/* ---- request to the upstream -------------------------------------------- */

static void add_header(struct evbuffer *out, const char *name, const char *value)
{
	evbuffer_add(out, name, strlen(name));
	evbuffer_add(out, ": ", 2);
	evbuffer_add(out, value, strlen(value));
	evbuffer_add(out, "\r\n", 2);
}

/* Headers the gateway writes itself instead of passing on. */
static bool replaced_header(const char *name)
{
	static const char *const names[] = {
		"host",	     "content-length",	  "expect", "x-forwarded-for", "x-forwarded-proto",
		"x-forwarded-host", "via", "x-request-id", "x-request-timeout-ms",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i]) == 0)
			return true;
	return false;
}

/* Writes the request head and body for the upstream (SPEC section 3). */
static int write_request(struct gw_txn *txn, struct evbuffer *out)
{
	struct evhttp_request *req = txn->req;
	const struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const struct gw_server_conf *server = &txn->route->upstream->servers[txn->server_idx];
	struct evbuffer *body = evhttp_request_get_input_buffer(req);
	const char *uri = origin_target(evhttp_request_get_uri(req));
	const char *query = strchr(uri, '?');
	size_t path_len = query ? (size_t)(query - uri) : strlen(uri);
	const char *conn = evhttp_find_header(in, "Connection");
	const char *xff = evhttp_find_header(in, "X-Forwarded-For");
	const char *via = evhttp_find_header(in, "Via");
	const char *host = evhttp_find_header(in, "Host");
	char target[GW_TARGET_MAX];
	char buf[1024];
	uint64_t now = gw_clock_now_ms();
	const struct evkeyval *h;
	int n;

	n = gw_router_strip_prefix(txn->route, uri, path_len, query ? query + 1 : NULL, target,
				   sizeof(target));
	if (n < 0)
		return -1;
	evbuffer_add(out, method_name(txn->method), strlen(method_name(txn->method)));
	evbuffer_add(out, " ", 1);
	evbuffer_add(out, target, (size_t)n);
	evbuffer_add(out, " HTTP/1.1\r\n", 11);
	add_header(out, "Host", server->address);
	TAILQ_FOREACH(h, in, next) {
		if (replaced_header(h->key))
			continue;
		if (gw_header_is_hop_by_hop(h->key, strlen(h->key), conn, conn ? strlen(conn) : 0))
			continue;
		add_header(out, h->key, h->value);
	}
	if (xff) {
		snprintf(buf, sizeof(buf), "%s, %s", xff, txn->cc ? txn->cc->client_ip : "");
		add_header(out, "X-Forwarded-For", buf);
	} else {
		add_header(out, "X-Forwarded-For", txn->cc ? txn->cc->client_ip : "");
	}
	add_header(out, "X-Forwarded-Proto", "http");
	if (host)
		add_header(out, "X-Forwarded-Host", host);
	if (via) {
		snprintf(buf, sizeof(buf), "%s, 1.1 gateway", via);
		add_header(out, "Via", buf);
	} else {
		add_header(out, "Via", "1.1 gateway");
	}
	add_header(out, "X-Request-ID", txn->request_id);
	snprintf(buf, sizeof(buf), "%llu",
		 (unsigned long long)(txn->deadline_ms > now ? txn->deadline_ms - now : 1));
	add_header(out, "X-Request-Timeout-Ms", buf);
	if (evbuffer_get_length(body) > 0 || txn->method == GW_METHOD_POST ||
	    txn->method == GW_METHOD_PUT || txn->method == GW_METHOD_PATCH) {
		snprintf(buf, sizeof(buf), "%zu", evbuffer_get_length(body));
		add_header(out, "Content-Length", buf);
	}
	evbuffer_add(out, "\r\n", 2);
	if (evbuffer_get_length(body) > 0)
		evbuffer_add_buffer_reference(out, body); /* the body stays for a retry */
	return 0;
}

static void send_on(struct gw_txn *txn, struct gw_upconn *c)
{
	txn->up = c;
	txn->up_reused = c->requests > 0;
	if (write_request(txn, c->out) < 0) {
		gw_upconn_abandon(c);
		txn->up = NULL;
		try_done(txn);
		fail_request(txn, 414, "uri_too_long", NULL, false);
		return;
	}
	gw_upconn_start(c, &upstream_handler, txn, txn->head_request);
}

static void on_connection_ready(struct gw_pool_waiter *w, struct gw_upconn *c)
{
	struct gw_txn *txn = (struct gw_txn *)((char *)w - offsetof(struct gw_txn, waiter));

	if (!c) {
		try_done(txn);
		fail_request(txn, 502, "upstream_unavailable", NULL, false);
		return;
	}
	send_on(txn, c);
}

static void start_try(struct gw_txn *txn)
{
	struct gw_upconn *c;
	int idx = gw_pool_pick(txn->pool);

	if (idx < 0) {
		fail_request(txn, 503, "no_healthy_upstream", NULL, false);
		return;
	}
	txn->server_idx = idx;
	txn->pool->inflight[idx]++;
	txn->try_active = true;
	txn->waiter.ready = on_connection_ready;
	c = gw_pool_get(txn->pool, (size_t)idx, &txn->waiter);
	if (c) {
		send_on(txn, c);
		return;
	}
	if (txn->waiter.queued)
		return; /* a connection comes when one frees up */
	try_done(txn);
	fail_request(txn, 502, "upstream_unavailable", NULL, false);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct gw_txn *txn = arg;

	if (txn->reply_started || txn->held_body) {
		/* the upstream went silent in the middle of a body */
		stop_upstream(txn);
		abort_reply(txn);
		return;
	}
	stop_upstream(txn);
	gw_client_conn_watch_close(txn->cc, false);
	fail_request(txn, 504, "upstream_timeout", NULL, false);
}

/* ---- entry ------------------------------------------------------------- */

static void pick_request_id(struct gw_txn *txn)
{
	const char *id = evhttp_find_header(evhttp_request_get_input_headers(txn->req),
					    "X-Request-ID");
	size_t len = id ? strlen(id) : 0;

	if (id && len < sizeof(txn->request_id) && gw_request_id_acceptable(id, len))
		memcpy(txn->request_id, id, len + 1);
	else
		gw_request_id_new(txn->request_id);
}

void gw_txn_handle(struct evhttp_request *req, void *arg)
{
	struct gw_worker *w = arg;
	struct gw_txn *txn = gw_calloc(1, sizeof(*txn));
	const char *uri = origin_target(evhttp_request_get_uri(req));
	const char *query = strchr(uri, '?');
	const struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *host = evhttp_find_header(in, "Host");
	struct gw_route_query q;
	unsigned allow = 0;

	txn->worker = w;
	txn->req = req;
	txn->cc = gw_client_conn_of(req);
	txn->config = gw_config_ref(w->config);
	txn->start_us = gw_clock_now_us();
	txn->server_idx = -1;
	txn->method = (unsigned)evhttp_request_get_command(req);
	txn->head_request = txn->method == GW_METHOD_HEAD;
	txn->client_http10 = req->major == 1 && req->minor == 0;
	if (req->major == 1 && req->minor > 1)
		req->minor = 1; /* HTTP/1.2 and up are served as 1.1 */
	/* An absolute-form target is not a forward-proxy request here (the
	 * check against Host is done); keep-alive rules stay those of HTTP. */
	req->flags &= ~EVHTTP_PROXY_REQUEST;
	evtimer_assign(&txn->deadline_ev, w->base, on_deadline, txn);
	w->inflight++;
	pick_request_id(txn);
	if (txn->cc)
		gw_client_conn_request_begins(txn->cc, txn);

	q.method = txn->method;
	q.path = uri;
	q.path_len = query ? (size_t)(query - uri) : strlen(uri);
	q.host = host;
	q.host_len = host ? strlen(host) : 0;
	q.headers = in;
	if (!gw_path_is_safe(q.path, q.path_len)) {
		fail_request(txn, 400, "bad_request", NULL, true);
		return;
	}
	txn->route = gw_router_match(txn->config, &q, &allow);
	if (!txn->route) {
		if (allow) {
			char methods[96];
			gw_methods_format(allow, methods, sizeof(methods));
			fail_request(txn, 405, "method_not_allowed", methods, false);
		} else {
			fail_request(txn, 404, "no_route", NULL, false);
		}
		return;
	}
	txn->pool = w->pools[txn->route->upstream->index];
	txn->deadline_ms = gw_clock_now_ms() + txn->route->timeout_ms;
	set_deadline(txn, txn->route->timeout_ms);
	gw_client_conn_watch_close(txn->cc, true);
	start_try(txn);
}

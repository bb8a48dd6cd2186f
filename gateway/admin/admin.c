#include "admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "../../modules/circuit_breaker/breaker.h"
#include "../../modules/flags/flag_sync.h"
#include "../server.h"
#include "../util/alloc.h"
#include "../util/errlist.h"
#include "../util/log.h"
#include "inspect.h"
#include "json_out.h"
#include "status_page.h"

/* Ownership: the server's; owns its evhttp (and through it the listener) and the token copy. */
struct gw_admin {
	struct gw_server *server;
	struct evhttp *http;
	char *token; /* NULL: no token configured */
	size_t token_len;
};

/*
 * Equal in time that depends on the lengths only, never on where the
 * first difference is: a byte-by-byte early exit would let a client
 * guess the token one byte at a time by timing the 401s.
 */
static bool token_equal(const char *given, size_t given_len, const char *token, size_t token_len)
{
	unsigned diff = (unsigned)(given_len ^ token_len);

	for (size_t i = 0; i < given_len; i++)
		diff |= (unsigned char)given[i] ^ (unsigned char)token[i % token_len];
	return diff == 0;
}

static bool authorized(const struct gw_admin *a, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");

	if (!a->token)
		return true;
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return false;
	h += 7;
	while (*h == ' ')
		h++;
	return token_equal(h, strlen(h), a->token, a->token_len);
}

static void send_body(struct evhttp_request *req, int status, const char *type,
                      struct evbuffer *body)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	int one = 1;

	/* An answer leaves in several writes: without this, Nagle holds the
	 * last one for the client's delayed ACK (40 ms per scrape on a
	 * kept-alive connection, as Prometheus keeps them). */
	if (bev && bufferevent_getfd(bev) >= 0)
		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	evhttp_add_header(out, "Content-Type", type);
	evhttp_add_header(out, "Cache-Control", "no-store");
	evhttp_send_reply(req, status, NULL, body);
}

static void send_json(struct evhttp_request *req, int status, struct evbuffer *body)
{
	send_body(req, status, "application/json", body);
}

/* {"error":code,"message":text} */
static void send_error(struct evhttp_request *req, int status, const char *code,
                       const char *message)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add(b, "{", 1);
	gw_json_key(b, "error", true);
	gw_json_str(b, code);
	gw_json_key(b, "message", false);
	gw_json_str(b, message);
	evbuffer_add(b, "}\n", 2);
	send_json(req, status, b);
	evbuffer_free(b);
}

static void send_status_line(struct evhttp_request *req, int status, const char *field,
                             const char *value)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add(b, "{", 1);
	gw_json_key(b, field, true);
	gw_json_str(b, value);
	evbuffer_add(b, "}\n", 2);
	send_json(req, status, b);
	evbuffer_free(b);
}

/* ---- actions ------------------------------------------------------------ */

static void do_reload(struct gw_admin *a, struct evhttp_request *req)
{
	struct gw_errlist errs = {0};
	struct evbuffer *b = evbuffer_new();
	int rc;

	if (!a->server->started) {
		send_error(req, 503, "starting", "the gateway is still starting: try again");
		evbuffer_free(b);
		return;
	}
	gw_log_info("admin API: POST /reload of %s", a->server->config->file);
	rc = gw_server_reload(a->server, &errs);
	evbuffer_add(b, "{", 1);
	gw_json_key(b, "ok", true);
	gw_json_bool(b, rc == 0);
	if (rc == 0) {
		gw_json_key(b, "config", false);
		gw_admin_config_json(a->server, b);
	} else {
		gw_json_key(b, "errors", false);
		evbuffer_add(b, "[", 1);
		for (size_t i = 0; i < errs.count; i++) {
			if (i)
				evbuffer_add(b, ",", 1);
			gw_json_str(b, errs.items[i]);
		}
		evbuffer_add(b, "]", 1);
	}
	evbuffer_add(b, "}\n", 2);
	send_json(req, rc == 0 ? 200 : 400, b);
	evbuffer_free(b);
	gw_errlist_free(&errs);
}

static int route_index(const struct gw_config *c, const char *name)
{
	for (size_t r = 0; r < c->nroutes; r++)
		if (strcmp(c->routes[r].name, name) == 0)
			return (int)r;
	return -1;
}

static void do_breaker(struct gw_admin *a, struct evhttp_request *req, const char *route,
                       const char *state)
{
	int r = route_index(a->server->config, route);
	enum gw_breaker_force f;
	struct evbuffer *b;

	if (r < 0) {
		send_error(req, 404, "unknown_route", "no route by that name");
		return;
	}
	if (!state) {
		send_error(req, 400, "bad_request", "state=open|closed|auto is required");
		return;
	}
	if (strcmp(state, "open") == 0)
		f = GW_BREAKER_FORCE_OPEN;
	else if (strcmp(state, "closed") == 0)
		f = GW_BREAKER_FORCE_CLOSED;
	else if (strcmp(state, "auto") == 0)
		f = GW_BREAKER_FORCE_AUTO;
	else {
		send_error(req, 400, "bad_request", "state must be open, closed or auto");
		return;
	}
	gw_log_info("admin API: breaker %s forced %s", route, state);
	gw_flags_sync_override_breaker(a->server->flags, (size_t)r, f);
	b = evbuffer_new();
	evbuffer_add(b, "{\"ok\":true", 10);
	gw_json_key(b, "route", false);
	gw_json_str(b, route);
	gw_json_key(b, "forced", false);
	gw_json_str(b, f == GW_BREAKER_FORCE_AUTO ? NULL : state);
	evbuffer_add(b, "}\n", 2);
	send_json(req, 200, b);
	evbuffer_free(b);
}

static void do_shed(struct gw_admin *a, struct evhttp_request *req, const char *level_text)
{
	int level;
	struct evbuffer *b;

	if (!level_text || gw_shed_level_parse(level_text, strlen(level_text), &level) < 0) {
		send_error(req, 400, "bad_request", "level must be auto, 0, 1 or 2");
		return;
	}
	gw_log_info("admin API: overload level forced %s", level_text);
	gw_flags_sync_override_shed(a->server->flags, level);
	b = evbuffer_new();
	evbuffer_add(b, "{\"ok\":true", 10);
	gw_json_key(b, "forced", false);
	if (level == GW_SHED_LEVEL_AUTO)
		evbuffer_add(b, "null", 4);
	else
		gw_json_u64(b, (uint64_t)level);
	evbuffer_add(b, "}\n", 2);
	send_json(req, 200, b);
	evbuffer_free(b);
}

static void do_flag(struct gw_admin *a, struct evhttp_request *req, const char *name,
                    const char *value)
{
	const struct gw_config *c = a->server->config;
	int f = gw_config_find_flag(c, name);
	struct gw_flag_value v;
	const struct gw_flags_snap *s;
	char text[GW_FLAG_VALUE_TEXT];
	struct evbuffer *b;
	bool is_auto = value && strcmp(value, "auto") == 0;

	if (f < 0) {
		send_error(req, 404, "unknown_flag", "no flag by that name in the flags section");
		return;
	}
	if (!value ||
	    (!is_auto && gw_flag_value_parse(value, strlen(value), &v) != GW_FLAG_PARSE_OK)) {
		send_error(req, 400, "bad_request", "value must be on, off, N% (0-100) or auto");
		return;
	}
	gw_log_info("admin API: flag %s overridden: %s", name, value);
	gw_flags_sync_override_flag(a->server->flags, (size_t)f, is_auto ? NULL : &v);
	s = gw_flags_sync_current(a->server->flags);
	b = evbuffer_new();
	evbuffer_add(b, "{\"ok\":true", 10);
	gw_json_key(b, "flag", false);
	gw_json_str(b, name);
	gw_json_key(b, "value", false);
	gw_json_str(b, gw_flag_value_format(s->flags[f].value, text, sizeof(text)));
	gw_json_key(b, "source", false);
	gw_json_str(b, gw_flag_source_name(s->flags[f].source));
	evbuffer_add(b, "}\n", 2);
	send_json(req, 200, b);
	evbuffer_free(b);
}

/* ---- routing ------------------------------------------------------------ */

enum endpoint_method { GET_ONLY, POST_ONLY };

/* Whether the method suits the endpoint; else a 405 naming the one that does. */
static bool method_ok(struct evhttp_request *req, enum endpoint_method m)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (m == GET_ONLY && (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD))
		return true;
	if (m == POST_ONLY && cmd == EVHTTP_REQ_POST)
		return true;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
	                  m == GET_ONLY ? "GET, HEAD" : "POST");
	send_error(req, 405, "method_not_allowed",
	           m == GET_ONLY ? "use GET on this endpoint" : "use POST on this endpoint");
	return false;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct gw_admin *a = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	struct evkeyvalq params;
	struct evbuffer *b;
	char *name = NULL;

	if (!path || !*path)
		path = "/";
	if (strcmp(path, "/healthz") == 0) {
		if (method_ok(req, GET_ONLY))
			send_status_line(req, 200, "status", "ok");
		return;
	}
	if (strcmp(path, "/readyz") == 0) {
		if (!method_ok(req, GET_ONLY))
			return;
		if (atomic_load(&a->server->draining))
			send_status_line(req, 503, "status", "draining");
		else
			send_status_line(req, 200, "status", "ready");
		return;
	}
	/* The page holds no data (its script asks /status, with the token): a
	 * browser must be able to open it before it knows the token. */
	if (strcmp(path, "/") == 0) {
		if (method_ok(req, GET_ONLY)) {
			b = evbuffer_new();
			evbuffer_add_reference(b, gw_status_page, gw_status_page_len, NULL, NULL);
			send_body(req, 200, "text/html; charset=utf-8", b);
			evbuffer_free(b);
		}
		return;
	}
	if (!authorized(a, req)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
		                  "Bearer realm=\"gateway admin\"");
		send_error(req, 401, "unauthorized",
		           "this endpoint needs Authorization: Bearer TOKEN (admin.token_env)");
		return;
	}
	TAILQ_INIT(&params);
	if (query && evhttp_parse_query_str(query, &params) < 0) {
		send_error(req, 400, "bad_request", "malformed query string");
		return;
	}
	if (strcmp(path, "/status") == 0) {
		if (method_ok(req, GET_ONLY)) {
			b = evbuffer_new();
			gw_admin_status_json(a->server, b);
			send_json(req, 200, b);
			evbuffer_free(b);
		}
	} else if (strcmp(path, "/metrics") == 0) {
		if (method_ok(req, GET_ONLY)) {
			b = evbuffer_new();
			gw_admin_metrics(a->server, b);
			send_body(req, 200, "text/plain; version=0.0.4; charset=utf-8", b);
			evbuffer_free(b);
		}
	} else if (strcmp(path, "/reload") == 0) {
		if (method_ok(req, POST_ONLY))
			do_reload(a, req);
	} else if (strcmp(path, "/shed") == 0) {
		if (method_ok(req, POST_ONLY))
			do_shed(a, req, evhttp_find_header(&params, "level"));
	} else if (strncmp(path, "/breakers/", 10) == 0 && path[10]) {
		name = evhttp_uridecode(path + 10, 0, NULL);
		if (method_ok(req, POST_ONLY))
			do_breaker(a, req, name, evhttp_find_header(&params, "state"));
	} else if (strncmp(path, "/flags/", 7) == 0 && path[7]) {
		name = evhttp_uridecode(path + 7, 0, NULL);
		if (method_ok(req, POST_ONLY))
			do_flag(a, req, name, evhttp_find_header(&params, "value"));
	} else {
		send_error(req, 404, "not_found", "no such admin endpoint");
	}
	free(name);
	evhttp_clear_headers(&params);
}

struct gw_admin *gw_admin_start(struct gw_server *server, char *err, size_t errlen)
{
	const struct gw_admin_conf *ac = &server->config->admin;
	struct gw_admin *a = gw_calloc(1, sizeof(*a));
	struct gw_sockaddr addr = ac->addr;
	struct evconnlistener *l;
	char text[80];

	a->server = server;
	if (ac->token_env) {
		const char *t = getenv(ac->token_env);

		if (!t || !*t) {
			snprintf(
			    err, errlen,
			    "admin.token_env: the environment variable %s is not set (it must hold "
			    "the admin API's bearer token)",
			    ac->token_env);
			free(a);
			return NULL;
		}
		a->token = gw_strdup(t);
		a->token_len = strlen(t);
	}
	a->http = evhttp_new(server->main_base);
	evhttp_set_gencb(a->http, on_request, a);
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
	evhttp_set_max_headers_size(a->http, 16384);
	evhttp_set_max_body_size(a->http, 65536);
	evhttp_set_timeout(a->http, 10);
	l = evconnlistener_new_bind(server->main_base, NULL, NULL,
	                            LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
	                                LEV_OPT_CLOSE_ON_EXEC,
	                            128, (const struct sockaddr *)&addr.ss, (int)addr.len);
	if (!l) {
		snprintf(err, errlen, "cannot listen on %s (admin.listen): %s", ac->listen,
		         strerror(errno));
		gw_admin_free(a);
		return NULL;
	}
	getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&addr.ss, &addr.len);
	evhttp_bind_listener(a->http, l);
	gw_format_sockaddr(&addr, text, sizeof(text));
	gw_log_info("admin API on %s%s", text, a->token ? " (bearer token required)" : "");
	return a;
}

void gw_admin_free(struct gw_admin *a)
{
	if (!a)
		return;
	if (a->http)
		evhttp_free(a->http);
	free(a->token);
	free(a);
}

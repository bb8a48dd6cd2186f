#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "access_log.h"
#include "client_conn.h"
#include "pipeline.h"
#include "server.h"
#include "txn.h"
#include "upstream/pool.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"

#define GW_LISTEN_BACKLOG 4096
#define GW_TICK_MS        100

static void close_idle_connections(struct gw_worker *w)
{
	struct gw_client_conn *cc, *next;

	for (cc = TAILQ_FIRST(&w->conns); cc; cc = next) {
		next = TAILQ_NEXT(cc, link);
		gw_client_conn_close_if_idle(cc);
	}
}

static void stop_listening(struct gw_worker *w)
{
	pthread_mutex_lock(&w->server->pause_lock);
	for (size_t i = 0; i < w->nlisteners; i++)
		if (w->bound[i])
			evhttp_del_accept_socket(w->http, w->bound[i]); /* closes it */
	w->nlisteners = 0;
	pthread_mutex_unlock(&w->server->pause_lock);
}

static void drain_step(struct gw_worker *w)
{
	close_idle_connections(w);
	if (w->nconns == 0)
		event_base_loopexit(w->base, NULL);
}

static void on_wakeup(evutil_socket_t fd, short what, void *arg)
{
	struct gw_worker *w = arg;

	if (!w->draining && atomic_load(&w->server->draining)) {
		w->draining = true;
		stop_listening(w);
	}
	if (w->draining)
		drain_step(w);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct gw_worker *w = arg;

	uint64_t now = gw_clock_now_ms();

	struct gw_client_conn *cc;

	gw_access_log_flush(w->log_buf);
	TAILQ_FOREACH(cc, &w->conns, link)
	gw_client_conn_tick(cc, now);
	for (size_t i = 0; i < w->config->nupstreams; i++)
		gw_pool_sweep(w->pools[i], now);
	if (w->draining)
		drain_step(w);
}

uint64_t gw_worker_random(struct gw_worker *w)
{
	/* xorshift64* */
	uint64_t x = w->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	w->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static int bind_listeners(struct gw_worker *w, char *err, size_t errlen)
{
	struct gw_server *server = w->server;
	const struct gw_config *config = w->config;
	const unsigned flags = LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_FREE |
	                       LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_THREADSAFE;

	w->listeners = gw_calloc(config->nlistens, sizeof(*w->listeners));
	w->bound = gw_calloc(config->nlistens, sizeof(*w->bound));
	for (size_t i = 0; i < config->nlistens; i++) {
		struct gw_sockaddr *addr = &server->bound_addrs[i];
		struct evconnlistener *l =
		    evconnlistener_new_bind(w->base, NULL, NULL, flags, GW_LISTEN_BACKLOG,
		                            (const struct sockaddr *)&addr->ss, (int)addr->len);
		if (!l) {
			snprintf(err, errlen, "cannot listen on %s: %s", config->listens[i].address,
			         strerror(errno));
			return -1;
		}
		/* Port 0 (tests): every worker shares the port the first one got. */
		getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&addr->ss, &addr->len);
		w->listeners[i] = l;
		w->bound[i] = evhttp_bind_listener(w->http, l);
		w->nlisteners++;
	}
	return 0;
}

struct gw_worker *gw_worker_new(struct gw_server *server, unsigned id, char *err, size_t errlen)
{
	struct gw_worker *w = gw_calloc(1, sizeof(*w));
	const struct gw_config *config = server->config;
	struct event_config *ec = event_config_new();
	struct timeval tick = {.tv_sec = 0, .tv_usec = GW_TICK_MS * 1000};
	/* evhttp's inactivity timer only catches a client that stops reading:
	 * the head, body and idle deadlines are the connection guard's own
	 * (client_conn.c), so evhttp's must never fire before them. */
	uint64_t stall_ms = config->limits.idle_timeout_ms;
	struct timeval idle;

	if (config->limits.header_timeout_ms > stall_ms)
		stall_ms = config->limits.header_timeout_ms;
	if (config->limits.body_timeout_ms > stall_ms)
		stall_ms = config->limits.body_timeout_ms;
	stall_ms += 1000;
	idle.tv_sec = (time_t)(stall_ms / 1000);
	idle.tv_usec = (suseconds_t)(stall_ms % 1000) * 1000;

	w->id = id;
	w->server = server;
	w->config = gw_config_ref(server->config);
	w->rng = 0x9E3779B97F4A7C15ULL * (id + 1) ^ (uint64_t)(uintptr_t)w;
	TAILQ_INIT(&w->conns);
	/* Half the epoll_ctl calls: changes are batched per loop iteration. */
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	w->base = event_base_new_with_config(ec);
	event_config_free(ec);

	w->http = evhttp_new(w->base);
	evhttp_set_bevcb(w->http, gw_client_conn_bevcb, w);
	evhttp_set_gencb(w->http, gw_txn_handle, w);
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	                                        EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	                                        EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(w->http, NULL);
	/* The gateway's own checks run first; these are backstops. */
	evhttp_set_max_headers_size(w->http,
	                            (ev_ssize_t)config->limits.max_header_bytes * 2 + 4096);
	evhttp_set_max_body_size(w->http, (ev_ssize_t)config->limits.max_body_bytes + 1);
	/* evhttp's single inactivity timer bounds a client that stops reading. */
	evhttp_set_timeout_tv(w->http, &idle);

	if (bind_listeners(w, err, errlen) < 0) {
		gw_worker_free(w);
		return NULL;
	}
	w->pools = gw_calloc(config->nupstreams, sizeof(*w->pools));
	for (size_t i = 0; i < config->nupstreams; i++)
		w->pools[i] =
		    gw_pool_new(w, &config->upstreams[i], server->nworkers, server->health);
	gw_pipeline_worker_new(server->pipeline, w);
	w->wakeup_ev = event_new(w->base, -1, 0, on_wakeup, w);
	w->tick_ev = event_new(w->base, -1, EV_PERSIST, on_tick, w);
	event_add(w->tick_ev, &tick);
	w->log_buf = gw_access_log_buf_new(server->access_log);
	w->scratch = evbuffer_new();
	return w;
}

static void *worker_main(void *arg)
{
	struct gw_worker *w = arg;
	struct gw_server *server = w->server;

	event_base_dispatch(w->base);
	/* Whatever is still open (drain deadline passed) is closed now, in
	 * this thread, before the loop goes away. */
	evhttp_free(w->http);
	w->http = NULL;
	gw_access_log_flush(w->log_buf);
	if (atomic_fetch_sub(&server->workers_running, 1) == 1)
		event_active(server->workers_done_ev, EV_TIMEOUT, 1);
	return NULL;
}

int gw_worker_start(struct gw_worker *w)
{
	return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

void gw_worker_join(struct gw_worker *w)
{
	pthread_join(w->thread, NULL);
}

void gw_worker_free(struct gw_worker *w)
{
	if (!w)
		return;
	if (w->http)
		evhttp_free(w->http);
	gw_pipeline_worker_free(w);
	for (size_t i = 0; w->pools && i < w->config->nupstreams; i++)
		if (w->pools[i])
			gw_pool_free(w->pools[i]);
	free(w->pools);
	free(w->listeners);
	free(w->bound);
	if (w->wakeup_ev)
		event_free(w->wakeup_ev);
	if (w->tick_ev)
		event_free(w->tick_ev);
	gw_access_log_buf_free(w->log_buf);
	if (w->scratch)
		evbuffer_free(w->scratch);
	event_base_free(w->base);
	gw_config_unref(w->config);
	free(w);
}

void gw_worker_request_drain(struct gw_worker *w)
{
	event_active(w->wakeup_ev, EV_TIMEOUT, 1);
}

void gw_worker_request_stop(struct gw_worker *w)
{
	event_base_loopbreak(w->base);
}

void gw_worker_set_accepting(struct gw_worker *w, bool accepting)
{
	/* Called with server->pause_lock held. */
	for (size_t i = 0; i < w->nlisteners; i++) {
		if (accepting)
			evconnlistener_enable(w->listeners[i]);
		else
			evconnlistener_disable(w->listeners[i]);
	}
}

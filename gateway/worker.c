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
#include "generation.h"
#include "../modules/concurrency/concurrency.h"
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

/* The evhttp a listener's connections go to. */
static struct evhttp *http_of(struct gw_worker *w, const struct gw_worker_listener *l)
{
	return l->tls ? l->tls->http : w->http;
}

static void stop_listening(struct gw_worker *w)
{
	gw_conn_cap_lock(w->conn_cap);
	for (size_t i = 0; i < w->nlisteners; i++)
		if (w->listeners[i].bound) /* closes it */
			evhttp_del_accept_socket(http_of(w, &w->listeners[i]),
			                         w->listeners[i].bound);
	w->nlisteners = 0;
	gw_conn_cap_unlock(w->conn_cap);
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

static void reap_retired(struct gw_worker *w);

/* What /status shows of this worker's pools and queues (generation.h). */
static void publish_stats(struct gw_worker *w)
{
	struct gw_worker_gen *wg = w->wg;
	struct gw_gen *g = wg->gen;
	const struct gw_config *config = g->config;

	for (size_t u = 0; u < config->nupstreams; u++) {
		struct gw_published_upstream *pu = gw_gen_pub_up(g, w->id, u);
		struct gw_concurrency_stats cs;
		struct gw_pool *pool = wg->pools[u];

		gw_concurrency_stats(w, u, &cs);
		atomic_store_explicit(&pu->limit, cs.limit, memory_order_relaxed);
		atomic_store_explicit(&pu->inflight, cs.inflight, memory_order_relaxed);
		for (unsigned r = 0; r < GW_PRIORITY_COUNT; r++)
			atomic_store_explicit(&pu->queued[r], cs.queued[r], memory_order_relaxed);
		for (size_t i = 0; i < pool->nservers; i++) {
			struct gw_published_server *ps = gw_gen_pub_srv(g, w->id, u, i);

			atomic_store_explicit(&ps->inflight, pool->inflight[i],
			                      memory_order_relaxed);
			atomic_store_explicit(&ps->open, pool->servers[i].nopen,
			                      memory_order_relaxed);
		}
	}
}

static void sweep_pools(struct gw_worker_gen *wg, uint64_t now)
{
	for (size_t i = 0; i < wg->gen->config->nupstreams; i++)
		gw_pool_sweep(wg->pools[i], now);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct gw_worker *w = arg;
	uint64_t now = gw_clock_now_ms();
	struct gw_client_conn *cc;
	struct gw_worker_gen *wg;

	gw_access_log_flush(w->log_buf);
	TAILQ_FOREACH(cc, &w->conns, link)
	gw_client_conn_tick(cc, now);
	sweep_pools(w->wg, now);
	TAILQ_FOREACH(wg, &w->retired, link)
	sweep_pools(wg, now);
	reap_retired(w);
	publish_stats(w);
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

static const unsigned listen_flags = LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT |
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
                                     LEV_OPT_THREADSAFE;

/* What every evhttp of the worker does with a request, whatever listener. */
static struct evhttp *http_new(struct gw_worker *w)
{
	struct evhttp *http = evhttp_new(w->base);

	evhttp_set_gencb(http, gw_txn_handle, w);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	                                     EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	                                     EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(http, NULL);
	return http;
}

static void set_limits(struct evhttp *http, const struct gw_config *config);

static struct gw_tls_listener *tls_listener_new(struct gw_worker *w,
                                                const struct gw_tls_listen_conf *conf)
{
	struct gw_tls_listener *t = gw_calloc(1, sizeof(*t));

	t->worker = w;
	t->conf = conf;
	t->http = http_new(w);
	evhttp_set_bevcb(t->http, gw_client_conn_bevcb_tls, t);
	set_limits(t->http, w->config);
	TAILQ_INSERT_TAIL(&w->tls_listeners, t, link);
	return t;
}

/* Binds the listen entry lc at addr (filled in with the port bound when it
 * asked for port 0). */
static int bind_one(struct gw_worker *w, struct gw_worker_listener *l,
                    const struct gw_listen_conf *lc, struct gw_sockaddr *addr, char *err,
                    size_t errlen)
{
	l->listener = evconnlistener_new_bind(w->base, NULL, NULL, listen_flags, GW_LISTEN_BACKLOG,
	                                      (const struct sockaddr *)&addr->ss, (int)addr->len);
	if (!l->listener) {
		snprintf(err, errlen, "cannot listen on %s: %s", lc->address, strerror(errno));
		return -1;
	}
	/* Port 0 (tests): every worker shares the port the first one got. */
	getsockname(evconnlistener_get_fd(l->listener), (struct sockaddr *)&addr->ss, &addr->len);
	l->tls = lc->tls ? tls_listener_new(w, lc->tls) : NULL;
	l->bound = evhttp_bind_listener(http_of(w, l), l->listener);
	return 0;
}

static int bind_listeners(struct gw_worker *w, char *err, size_t errlen)
{
	const struct gw_config *config = w->config;

	w->listeners = gw_calloc(config->nlistens ? config->nlistens : 1, sizeof(*w->listeners));
	for (size_t i = 0; i < config->nlistens; i++) {
		w->listeners[i].conf_addr = config->listens[i].addr;
		if (bind_one(w, &w->listeners[i], &config->listens[i], &w->server->bound_addrs[i],
		             err, errlen) < 0)
			return -1;
		w->nlisteners++;
	}
	return 0;
}

static bool same_addr(const struct gw_sockaddr *a, const struct gw_sockaddr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/*
 * A reload's listen list: the sockets of addresses it keeps stay as they
 * are (their connections and backlog untouched), new addresses are bound,
 * the others closed. The main thread made sure the new ports are free.
 */
static void update_listeners(struct gw_worker *w, const struct gw_config *config)
{
	struct gw_worker_listener *next;
	bool paused;
	size_t n = 0;
	char err[256];

	if (w->draining)
		return;
	next = gw_calloc(config->nlistens ? config->nlistens : 1, sizeof(*next));
	paused = gw_conn_cap_lock(w->conn_cap);
	for (size_t i = 0; i < config->nlistens; i++) {
		struct gw_sockaddr addr = config->listens[i].addr;
		bool kept = false;

		/* A listener switching between plain and TLS is a new one (its
		 * socket shares the port with the old one, SO_REUSEPORT, until
		 * the old one closes below). */
		for (size_t j = 0; j < w->nlisteners && !kept; j++) {
			struct gw_worker_listener *old = &w->listeners[j];

			if (old->listener && same_addr(&old->conf_addr, &addr) &&
			    !old->tls == !config->listens[i].tls) {
				if (old->tls) /* new certificates for new connections */
					old->tls->conf = config->listens[i].tls;
				next[n++] = *old;
				old->listener = NULL;
				kept = true;
			}
		}
		if (kept)
			continue;
		next[n].conf_addr = addr;
		if (bind_one(w, &next[n], &config->listens[i], &addr, err, sizeof(err)) < 0) {
			gw_log_error("reload: %s", err);
			continue;
		}
		if (paused)
			evconnlistener_disable(next[n].listener);
		n++;
	}
	for (size_t j = 0; j < w->nlisteners; j++)
		if (w->listeners[j].listener && w->listeners[j].bound)
			evhttp_del_accept_socket(http_of(w, &w->listeners[j]),
			                         w->listeners[j].bound);
	free(w->listeners);
	w->listeners = next;
	w->nlisteners = n;
	gw_conn_cap_unlock(w->conn_cap);
}

/* evhttp's own limits, backstops behind the gateway's checks. */
static void set_limits(struct evhttp *http, const struct gw_config *config)
{
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
	evhttp_set_max_headers_size(http, (ev_ssize_t)config->limits.max_header_bytes * 2 + 4096);
	evhttp_set_max_body_size(http, (ev_ssize_t)config->limits.max_body_bytes + 1);
	evhttp_set_timeout_tv(http, &idle);
}

static void apply_limits(struct gw_worker *w, const struct gw_config *config)
{
	struct gw_tls_listener *t;

	set_limits(w->http, config);
	TAILQ_FOREACH(t, &w->tls_listeners, link)
	set_limits(t->http, config);
}

/* This worker's part of gen (a reference it takes over), after old (or NULL). */
static struct gw_worker_gen *worker_gen_new(struct gw_worker *w, struct gw_gen *gen,
                                            const struct gw_worker_gen *old)
{
	struct gw_worker_gen *wg = gw_calloc(1, sizeof(*wg));
	const struct gw_config *config = gen->config;

	wg->gen = gen;
	w->config = gen->config; /* module states are made for it */
	wg->pools = gw_calloc(config->nupstreams ? config->nupstreams : 1, sizeof(*wg->pools));
	for (size_t i = 0; i < config->nupstreams; i++) {
		struct gw_pool_env env = {
		    .base = w->base,
		    .draining = &w->draining,
		    .seed = gw_worker_random(w),
		};
		wg->pools[i] =
		    gw_pool_new(&env, &config->upstreams[i], w->server->nworkers, gen->health);
	}
	gw_pipeline_worker_new(gen->pipeline, w, wg->mod_state, old ? old->mod_state : NULL);
	return wg;
}

static void worker_gen_free(struct gw_worker_gen *wg)
{
	gw_pipeline_worker_free(wg->mod_state);
	for (size_t i = 0; i < wg->gen->config->nupstreams; i++)
		gw_pool_free(wg->pools[i]);
	free(wg->pools);
	gw_gen_unref(wg->gen);
	free(wg);
}

void gw_worker_gen_leave(struct gw_worker *w, struct gw_worker_gen *wg)
{
	/* Never freed here: this runs deep inside callbacks of the generation's
	 * own connections (a response completes, the transaction ends), which
	 * go on using them after it returns. The tick frees it. */
	wg->users--;
}

/* Frees the retired generations whose last transaction has ended. */
static void reap_retired(struct gw_worker *w)
{
	struct gw_worker_gen *wg, *next;

	for (wg = TAILQ_FIRST(&w->retired); wg; wg = next) {
		next = TAILQ_NEXT(wg, link);
		if (wg->users == 0) {
			TAILQ_REMOVE(&w->retired, wg, link);
			worker_gen_free(wg);
		}
	}
}

void *gw_worker_mod_state(struct gw_worker *w, const struct gw_module *m)
{
	return w->wg ? w->wg->mod_state[gw_module_index(m)] : NULL;
}

/* A new generation, on the worker's thread (generation.h). */
static void on_new_gen(evutil_socket_t fd, short what, void *arg)
{
	struct gw_worker *w = arg;
	struct gw_gen *gen = atomic_exchange(&w->next_gen, NULL);
	struct gw_worker_gen *old = w->wg;

	if (!gen)
		return;
	w->wg = worker_gen_new(w, gen, old);
	update_listeners(w, gen->config);
	apply_limits(w, gen->config);
	/* Idle connections of the old pools go now; busy ones close when
	 * their request ends and the old part is freed. */
	for (size_t i = 0; i < old->gen->config->nupstreams; i++)
		for (size_t s = 0; s < old->pools[i]->nservers; s++)
			gw_pool_drop_idle(old->pools[i], s);
	TAILQ_INSERT_TAIL(&w->retired, old, link); /* freed by the tick once unused */
	publish_stats(w);
}

void gw_worker_install_gen(struct gw_worker *w, struct gw_gen *gen)
{
	struct gw_gen *skipped = atomic_exchange(&w->next_gen, gen);

	gw_gen_unref(skipped); /* a generation the worker never took */
	event_active(w->gen_ev, EV_TIMEOUT, 1);
}

struct gw_worker *gw_worker_new(struct gw_server *server, unsigned id, struct gw_gen *gen,
                                char *err, size_t errlen)
{
	struct gw_worker *w = gw_calloc(1, sizeof(*w));
	struct event_config *ec = event_config_new();
	struct timeval tick = {.tv_sec = 0, .tv_usec = GW_TICK_MS * 1000};

	w->id = id;
	w->server = server;
	w->conn_cap = &server->conn_cap;
	w->config = gen->config;
	w->rng = 0x9E3779B97F4A7C15ULL * (id + 1) ^ (uint64_t)(uintptr_t)w;
	TAILQ_INIT(&w->conns);
	TAILQ_INIT(&w->retired);
	TAILQ_INIT(&w->tls_listeners);
	atomic_init(&w->next_gen, NULL);
	/*
	 * No EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST: it defers event_del's
	 * EPOLL_CTL_DEL to the next dispatch, after the fd was closed, and
	 * libevent documents it as unsafe with dup()ed fds, which the gateway
	 * has (a refused connection lingers on a dup, client_conn.c): the
	 * deferred DEL then fails (EBADF), the closed fd's registration stays in
	 * the epoll set, and its events reach whatever connection gets that fd
	 * number next. It also made a worker's epoll_ctl land on fd numbers
	 * another thread had meanwhile opened (ThreadSanitizer reported those
	 * as races on file descriptors).
	 */
	w->base = event_base_new_with_config(ec);
	event_config_free(ec);

	w->http = http_new(w);
	evhttp_set_bevcb(w->http, gw_client_conn_bevcb, w);
	apply_limits(w, gen->config);

	w->wg = worker_gen_new(w, gw_gen_ref(gen), NULL);
	w->gen_ev = event_new(w->base, -1, 0, on_new_gen, w);
	w->wakeup_ev = event_new(w->base, -1, 0, on_wakeup, w);
	w->tick_ev = event_new(w->base, -1, EV_PERSIST, on_tick, w);
	event_add(w->tick_ev, &tick);
	w->log_buf = gw_access_log_buf_new(server->access_log);
	w->scratch = evbuffer_new();
	if (bind_listeners(w, err, errlen) < 0) {
		gw_worker_free(w);
		return NULL;
	}
	return w;
}

/* Frees every evhttp of the worker, and with them their connections. */
static void free_https(struct gw_worker *w)
{
	struct gw_tls_listener *t;

	if (w->http)
		evhttp_free(w->http);
	w->http = NULL;
	while ((t = TAILQ_FIRST(&w->tls_listeners))) {
		TAILQ_REMOVE(&w->tls_listeners, t, link);
		evhttp_free(t->http);
		free(t);
	}
}

static void *worker_main(void *arg)
{
	struct gw_worker *w = arg;
	struct gw_server *server = w->server;

	publish_stats(w);
	event_base_dispatch(w->base);
	/* Whatever is still open (drain deadline passed) is closed now, in
	 * this thread, before the loop goes away. */
	free_https(w);
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
	struct gw_worker_gen *wg;

	if (!w)
		return;
	free_https(w); /* ends the transactions still running */
	while ((wg = TAILQ_FIRST(&w->retired))) {
		TAILQ_REMOVE(&w->retired, wg, link);
		worker_gen_free(wg);
	}
	if (w->wg)
		worker_gen_free(w->wg);
	gw_gen_unref(atomic_exchange(&w->next_gen, NULL));
	free(w->listeners);
	if (w->gen_ev)
		event_free(w->gen_ev);
	if (w->wakeup_ev)
		event_free(w->wakeup_ev);
	if (w->tick_ev)
		event_free(w->tick_ev);
	gw_access_log_buf_free(w->log_buf);
	if (w->scratch)
		evbuffer_free(w->scratch);
	event_base_free(w->base);
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
	/* Called with the connection cap's lock held. */
	for (size_t i = 0; i < w->nlisteners; i++) {
		if (accepting)
			evconnlistener_enable(w->listeners[i].listener);
		else
			evconnlistener_disable(w->listeners[i].listener);
	}
}

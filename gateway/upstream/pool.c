#include "pool.h"
#include "balancer.h"
#include "health.h"

#include <stdlib.h>

#include <event2/event.h>

#include "../util/alloc.h"
#include "../util/clock.h"

struct gw_pool *gw_pool_new(const struct gw_pool_env *env, const struct gw_upstream_conf *conf,
                            unsigned nworkers, struct gw_health *health)
{
	struct gw_pool *pool = gw_calloc(1, sizeof(*pool));

	pool->env = *env;
	pool->conf = conf;
	pool->health = health;
	pool->nservers = conf->nservers;
	pool->servers = gw_calloc(conf->nservers, sizeof(*pool->servers));
	pool->usable = gw_calloc(conf->nservers, sizeof(*pool->usable));
	pool->share = gw_calloc(conf->nservers, sizeof(*pool->share));
	pool->inflight = gw_calloc(conf->nservers, sizeof(*pool->inflight));
	/* The process-wide limit, split evenly: no lock on the request path. */
	pool->max_open = (conf->max_connections + nworkers - 1) / nworkers;
	pool->balancer = gw_balancer_new(conf, env->seed);
	for (size_t i = 0; i < conf->nservers; i++) {
		struct gw_pool_server *s = &pool->servers[i];
		s->pool = pool;
		s->index = i;
		s->conf = &conf->servers[i];
		TAILQ_INIT(&s->idle);
		for (unsigned r = 0; r < GW_PRIORITY_COUNT; r++)
			TAILQ_INIT(&s->waiters[r]);
		if (conf->tls)
			s->tls = gw_tls_peer_new(conf->tls, s->conf->address);
		pool->usable[i] = true;
	}
	return pool;
}

void gw_pool_free(struct gw_pool *pool)
{
	for (size_t i = 0; i < pool->nservers; i++) {
		struct gw_upconn *c;
		while ((c = TAILQ_FIRST(&pool->servers[i].idle)) != NULL)
			gw_upconn_close(c);
		gw_tls_session_slot_free(&pool->servers[i].tls_session);
		gw_tls_peer_free(pool->servers[i].tls);
	}
	gw_balancer_free(pool->balancer);
	free(pool->servers);
	free(pool->usable);
	free(pool->share);
	free(pool->inflight);
	free(pool);
}

int gw_pool_pick(struct gw_pool *pool, uint64_t tried, uint64_t now_ms)
{
	size_t up = pool->conf->index;
	size_t usable = 0, untried = 0;

	for (size_t i = 0; i < pool->nservers; i++) {
		bool ok = !pool->health || gw_health_usable(pool->health, up, i, now_ms);
		bool fresh = i >= 64 || !(tried & (1ull << i));

		pool->usable[i] = ok;
		pool->share[i] =
		    (uint16_t)(ok && pool->health ? gw_health_share(pool->health, up, i, now_ms)
		                                  : GW_HEALTH_SHARE_FULL);
		usable += ok;
		untried += ok && fresh;
	}
	if (usable == 0)
		return -1;
	if (untried > 0 && untried < usable)
		for (size_t i = 0; i < pool->nservers && i < 64; i++)
			if (tried & (1ull << i))
				pool->usable[i] = false;
	if (pool->nservers == 1)
		return 0;
	return gw_balancer_pick(pool->balancer, pool->usable, pool->inflight, pool->share);
}

struct gw_upconn *gw_pool_get(struct gw_pool *pool, size_t idx, struct gw_pool_waiter *waiter)
{
	struct gw_pool_server *s = &pool->servers[idx];
	struct gw_upconn *c = TAILQ_FIRST(&s->idle);

	if (c) {
		TAILQ_REMOVE(&s->idle, c, link);
		s->nidle--;
		c->state = GW_UPCONN_WAITING;
		return c;
	}
	if (s->nopen < pool->max_open) {
		c = gw_upconn_connect(s);
		if (c)
			return c;
		/* socket() or connect() failed at once: let the caller see a
		 * connect failure through a connection that is never made. */
		return NULL;
	}
	if (waiter->rank >= GW_PRIORITY_COUNT)
		waiter->rank = GW_PRIORITY_COUNT - 1;
	waiter->queued = true;
	TAILQ_INSERT_TAIL(&s->waiters[waiter->rank], waiter, link);
	s->nwaiters++;
	return NULL;
}

void gw_pool_cancel_wait(struct gw_pool *pool, size_t idx, struct gw_pool_waiter *waiter)
{
	if (!waiter->queued)
		return;
	TAILQ_REMOVE(&pool->servers[idx].waiters[waiter->rank], waiter, link);
	pool->servers[idx].nwaiters--;
	waiter->queued = false;
}

/* A waiter with less time left than this gets no connection: it could not
 * use it before its deadline, and the connection would be opened for nothing. */
#define GW_POOL_MIN_WAIT_LEFT_MS 10

/* The first waiter of the most important rank that still has time to use
 * a connection. */
static struct gw_pool_waiter *next_waiter(struct gw_pool_server *s)
{
	uint64_t now;
	struct gw_pool_waiter *w;

	if (s->nwaiters == 0)
		return NULL;
	now = gw_clock_now_ms() + GW_POOL_MIN_WAIT_LEFT_MS;
	for (unsigned r = 0; r < GW_PRIORITY_COUNT; r++) {
		TAILQ_FOREACH(w, &s->waiters[r], link)
		{
			if (w->deadline_ms > now) {
				TAILQ_REMOVE(&s->waiters[r], w, link);
				s->nwaiters--;
				w->queued = false;
				return w;
			}
		}
	}
	return NULL;
}

void gw_pool_release(struct gw_upconn *c)
{
	struct gw_pool_server *s = c->server;
	struct gw_pool_waiter *w = next_waiter(s);

	if (w) {
		c->state = GW_UPCONN_WAITING;
		w->ready(w, c);
		return;
	}
	if (s->nidle >= s->pool->conf->keepalive || *s->pool->env.draining) {
		gw_upconn_close(c);
		return;
	}
	gw_upconn_make_idle(c);
	TAILQ_INSERT_HEAD(&s->idle, c, link); /* most recently used first: warmest */
	s->nidle++;
}

void gw_pool_closed(struct gw_pool_server *s)
{
	struct gw_pool_waiter *w;
	struct gw_upconn *c;

	if (s->nwaiters == 0 || s->nopen >= s->pool->max_open)
		return;
	w = next_waiter(s);
	if (!w)
		return;
	c = gw_upconn_connect(s);
	w->ready(w, c); /* c may be NULL: the waiter reports a connect failure */
}

/*
 * Closes idle connections unused for GW_UPSTREAM_IDLE_MS. The idle list is
 * kept most recently used first, so the expired ones are at its tail: the
 * sweep stops at the first fresh one. Run from the worker's tick, it costs
 * no timer operation per request.
 */
void gw_pool_sweep(struct gw_pool *pool, uint64_t now_ms)
{
	for (size_t i = 0; i < pool->nservers; i++) {
		struct gw_pool_server *s = &pool->servers[i];
		struct gw_upconn *c;

		while ((c = TAILQ_LAST(&s->idle, gw_upconn_list)) != NULL &&
		       now_ms - c->idle_since_ms >= GW_UPSTREAM_IDLE_MS)
			gw_upconn_close(c);
	}
}

void gw_pool_drop_idle(struct gw_pool *pool, size_t idx)
{
	struct gw_upconn *c;

	while ((c = TAILQ_FIRST(&pool->servers[idx].idle)) != NULL)
		gw_upconn_close(c);
}

/*
 * Per-worker connection pools, one per upstream.
 *
 * Each server slot keeps its idle keep-alive connections (at most
 * `keepalive`), counts its open ones (at most its share of
 * `max_connections`: the limit is per server for the whole process and is
 * split evenly over workers so that no lock is needed), and queues the
 * requests waiting for a connection when the limit is reached: critical
 * before normal before sheddable, FIFO within a priority. A waiting
 * request is bounded by its route timeout.
 *
 * TLS upstreams: each server slot keeps what its connections need to
 * speak TLS to that server (context, SNI, the name to check) and the
 * newest TLS session it gave, which the next new connection offers so that
 * its handshake is an abbreviated one. A session never leaves the pool,
 * so never its worker nor its config generation: a reload starts with
 * full handshakes under the new contexts.
 *
 * Ownership: the worker owns its pools; a pool owns its servers' connections,
 * TLS peers and sessions, and balancer. Waiters belong to their transactions.
 * The config snapshot (and so each SSL_CTX) outlives the pools made from
 * it: a pool lives in a worker generation, which holds its config; peers
 * and sessions hold their own SSL_CTX references anyway.
 */
#ifndef GW_UPSTREAM_POOL_H
#define GW_UPSTREAM_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "../config/config.h"
#include "../tls/tls_client.h"
#include "../tls/tls_io.h"
#include "../util/log_limit.h"
#include "upconn.h"

struct event_base;
struct gw_balancer;
struct gw_pool;
struct gw_health;

struct gw_pool_waiter {
	void (*ready)(struct gw_pool_waiter *w, struct gw_upconn *c);
	uint64_t deadline_ms; /* past it the waiter is skipped: its own timer ends it */
	unsigned rank;        /* its route's priority: lower ranks are served first */
	bool queued;
	TAILQ_ENTRY(gw_pool_waiter) link;
};

TAILQ_HEAD(gw_upconn_list, gw_upconn);
TAILQ_HEAD(gw_waiter_list, gw_pool_waiter);

struct gw_pool_server {
	struct gw_pool *pool;
	size_t index;
	const struct gw_server_conf *conf;
	struct gw_upconn_list idle;
	unsigned nidle;
	unsigned nopen;                                   /* connecting, idle and busy */
	struct gw_waiter_list waiters[GW_PRIORITY_COUNT]; /* by rank, FIFO within */
	unsigned nwaiters;
	/* TLS upstreams only (tls is NULL for plain TCP): */
	struct gw_tls_peer *tls;                /* owned */
	struct gw_tls_session_slot tls_session; /* owned: offered to the next connection */
	struct gw_log_limit tls_log; /* used when the pool has no health state to share one */
};

/* What a pool needs from the thread it runs on, given at creation. */
struct gw_pool_env {
	struct event_base *base; /* every connection's events */
	const bool *draining;    /* true: no connection is kept idle */
	uint64_t seed;           /* of the balancer's random choices */
};

struct gw_pool {
	struct gw_pool_env env;
	const struct gw_upstream_conf *conf;
	struct gw_pool_server *servers;
	size_t nservers;
	unsigned max_open; /* per server, this worker's share */
	struct gw_balancer *balancer;
	struct gw_health *health; /* process-wide, shared: up/ejected per server */
	bool *usable;             /* per server, scratch for gw_pool_pick */
	uint16_t *share;          /* per server, scratch for gw_pool_pick: slow start */
	uint32_t *inflight;       /* per server: tries in progress from this worker */
};

/* nworkers: how many pools (one per worker) share conf's limits. */
struct gw_pool *gw_pool_new(const struct gw_pool_env *env, const struct gw_upstream_conf *conf,
                            unsigned nworkers, struct gw_health *health);
void gw_pool_free(struct gw_pool *pool);

/*
 * Server index for a new try, or -1 when no server can take it (all down or
 * ejected). Servers whose bit is set in tried are avoided while another
 * usable one exists: a retry goes to a different server when the pool has one.
 * A server in its slow start (upstream/health.h) weighs its share less.
 */
int gw_pool_pick(struct gw_pool *pool, uint64_t tried, uint64_t now_ms);
/*
 * A connection to server idx: an idle one, or a new one while under the
 * limit (returned still connecting: requests written to it go out once
 * connected). NULL when at the limit: the waiter is queued and its ready
 * callback gets a connection later, unless gw_pool_cancel_wait comes first.
 */
struct gw_upconn *gw_pool_get(struct gw_pool *pool, size_t idx, struct gw_pool_waiter *waiter);
void gw_pool_cancel_wait(struct gw_pool *pool, size_t idx, struct gw_pool_waiter *waiter);

/* Called by upconn: a response completed and the connection can carry
 * another request; it goes to a waiter, to the idle list, or is closed. */
void gw_pool_release(struct gw_upconn *c);
/* Closes every idle connection of server idx (they are believed dead). */
void gw_pool_drop_idle(struct gw_pool *pool, size_t idx);
/* Closes idle connections past their time (called every worker tick). */
void gw_pool_sweep(struct gw_pool *pool, uint64_t now_ms);
/* Called by upconn when a connection closes: frees a slot for a waiter. */
void gw_pool_closed(struct gw_pool_server *server);

#endif

/*
 * A generation: everything built from one config snapshot that requests
 * run on, so that a reload can put a new one in place while requests in
 * flight finish on theirs.
 *
 *   gw_gen          process-wide: the config, the modules' states
 *                   (pipeline), the health of the upstream servers, and
 *                   what workers publish for /status;
 *   gw_worker_gen   per worker (worker.h): connection pools and the
 *                   modules' worker states.
 *
 * A new generation takes over what must outlive a reload from the one it
 * replaces, by name: breaker, retry budget and other module state of the
 * routes that keep their names (the modules' carry hooks), health checks
 * and ejections of the servers that keep their upstream and address,
 * adaptive concurrency limits. Counters live in the stats registry
 * (stats.h), which is keyed by name already.
 *
 * Ownership and threads: the server holds one reference to the current
 * generation; each worker generation holds one. Generations are made and
 * freed on the main thread only (their process states own timers on the
 * main loop): gw_gen_unref never frees, the server frees a retired
 * generation once gw_gen_unused says nobody holds it.
 */
#ifndef GW_GENERATION_H
#define GW_GENERATION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

struct event_base;
struct gw_pipeline;
struct gw_health;
struct gw_stats;
struct gw_upstream_stats;

/* What a worker publishes every tick about one upstream, for /status. */
struct gw_published_upstream {
	_Atomic uint32_t limit; /* concurrency limit; 0: off */
	_Atomic uint32_t inflight;
	_Atomic uint32_t queued[GW_PRIORITY_COUNT];
};

/* ... and about one server of it. */
struct gw_published_server {
	_Atomic uint32_t inflight; /* tries in progress */
	_Atomic uint32_t open;     /* connections open: connecting, idle or busy */
};

struct gw_gen {
	atomic_int refs;
	unsigned serial;                           /* 1 for the first config, +1 per reload */
	struct gw_config *config;                  /* reference */
	struct gw_pipeline *pipeline;              /* owned */
	struct gw_health *health;                  /* owned */
	struct gw_upstream_stats **upstream_stats; /* per upstream; the registry's */
	unsigned nworkers;
	/* Published by workers: [worker * nupstreams + upstream] and
	 * [worker * nservers + server_base[upstream] + server]. Owned. */
	struct gw_published_upstream *pub_up;
	struct gw_published_server *pub_srv;
	size_t *server_base;
	size_t nservers;
};

/*
 * Builds the generation of config (a reference is taken) for nworkers
 * workers, taking over the state of old (NULL at start-up) by name.
 * main_base: the main loop, for the modules' process timers.
 */
struct gw_gen *gw_gen_new(struct gw_config *config, const struct gw_gen *old,
                          struct event_base *main_base, struct gw_stats *stats, unsigned nworkers);
struct gw_gen *gw_gen_ref(struct gw_gen *g);
/* Drops a reference; never frees (any thread). */
void gw_gen_unref(struct gw_gen *g);
/* Nobody holds a reference any more: it may be freed (main thread). */
bool gw_gen_unused(struct gw_gen *g);
void gw_gen_free(struct gw_gen *g);

static inline struct gw_published_upstream *gw_gen_pub_up(struct gw_gen *g, unsigned worker,
                                                          size_t up)
{
	return &g->pub_up[(size_t)worker * g->config->nupstreams + up];
}

static inline struct gw_published_server *gw_gen_pub_srv(struct gw_gen *g, unsigned worker,
                                                         size_t up, size_t srv)
{
	return &g->pub_srv[(size_t)worker * g->nservers + g->server_base[up] + srv];
}

#endif

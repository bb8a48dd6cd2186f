/*
 * The counters behind /metrics and /status: what happened to the requests
 * of each route and the waits at each upstream's queue, since the process
 * started.
 *
 * Counting costs the request path no lock and no shared cache line: every
 * block holds one set of counters per worker, written only by that worker
 * (relaxed atomic stores, so that a scrape on the main thread reads whole
 * values), and a scrape sums them. Blocks are kept by name in a registry
 * that lives as long as the process: a reload hands a route that keeps its
 * name the same block, so counters never go backwards.
 *
 * Ownership: the server owns the registry (gw_stats_new / gw_stats_free,
 * after the workers stopped); blocks belong to the registry and are never
 * freed before it. gw_stats_route / gw_stats_upstream run on the main
 * thread (config load and reload); the counting calls run on the worker
 * whose id they name.
 */
#ifndef GW_STATS_H
#define GW_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "try_result.h"

/* Upper bounds of the latency histograms, in seconds (then +Inf). */
#define GW_LATENCY_BUCKETS 14
extern const double gw_latency_bucket_le[GW_LATENCY_BUCKETS];

/* Distinct status codes kept per route and worker; further ones count as "other". */
#define GW_STATS_CODES 24

/* What a module or the request path counts for a route, besides the answer. */
enum gw_route_event {
	GW_EV_RETRY = 0,        /* a retry started (a stale re-send included) */
	GW_EV_BUDGET_EXHAUSTED, /* a retry refused by the retry budget */
	GW_EV_SHED,             /* shed (503 shed) */
	GW_EV_SHED_DRY_RUN,     /* would have been shed (shedding.dry_run) */
	GW_EV_RATE_LIMITED,     /* refused by the rate limit (429) */
	GW_EV_HEDGE,            /* a hedged try started (retry.hedge) */
	GW_EV_COUNT,
};

/* Try outcomes as labelled in gateway_upstream_tries_total{result}. */
#define GW_TRY_RESULTS 6
const char *gw_try_result_label(enum gw_try_result r);

struct gw_histogram {
	_Atomic uint64_t
	    bucket[GW_LATENCY_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
	_Atomic uint64_t sum_us;
};

/* One worker's counters for one route. */
struct gw_route_counters {
	_Alignas(64) _Atomic uint32_t code[GW_STATS_CODES]; /* 0: free slot */
	_Atomic uint64_t by_code[GW_STATS_CODES];
	_Atomic uint64_t other_code;
	struct gw_histogram latency;
	_Atomic uint64_t events[GW_EV_COUNT];
	/* [0] the route's upstream, [1] its flag's when_off upstream */
	_Atomic uint64_t tries[2][GW_TRY_RESULTS];
};

struct gw_route_stats {
	char *name; /* owned; "" for requests that matched no route */
	/* The upstream names the tries are labelled with, as of the latest
	 * config (main thread only). */
	char *upstream[2];
	struct gw_route_counters *w; /* one per worker, cache-line aligned */
	unsigned nworkers;
};

/* One worker's queue waits at one upstream, per priority. */
struct gw_upstream_counters {
	_Alignas(64) struct gw_histogram wait[GW_PRIORITY_COUNT];
};

struct gw_upstream_stats {
	char *name;                     /* owned */
	struct gw_upstream_counters *w; /* one per worker, cache-line aligned */
	unsigned nworkers;
};

struct gw_stats {
	unsigned nworkers;
	struct gw_route_stats **routes; /* in order of first appearance */
	size_t nroutes, route_cap;
	struct gw_upstream_stats **upstreams;
	size_t nupstreams, upstream_cap;
	struct gw_route_stats *unrouted; /* route "" */
};

struct gw_stats *gw_stats_new(unsigned nworkers);
void gw_stats_free(struct gw_stats *s);

/* The block of route (or upstream) name, made on first use. Main thread. */
struct gw_route_stats *gw_stats_route(struct gw_stats *s, const struct gw_route_conf *route);
struct gw_upstream_stats *gw_stats_upstream(struct gw_stats *s, const char *name);

/* ---- counting, on worker `worker` -------------------------------------- */

static inline void gw_stats_bump(_Atomic uint64_t *c, uint64_t n)
{
	/* one writer: a load and a store, no locked instruction */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
	                      memory_order_relaxed);
}

void gw_stats_answer(struct gw_route_stats *rs, unsigned worker, int status, uint64_t duration_us);
void gw_histogram_observe(struct gw_histogram *h, uint64_t us);

static inline void gw_stats_event(struct gw_route_stats *rs, unsigned worker,
                                  enum gw_route_event ev)
{
	if (rs)
		gw_stats_bump(&rs->w[worker].events[ev], 1);
}

static inline void gw_stats_try(struct gw_route_stats *rs, unsigned worker, int which,
                                enum gw_try_result result)
{
	if (rs)
		gw_stats_bump(&rs->w[worker].tries[which][result], 1);
}

/* ---- reading, on the main thread --------------------------------------- */

/* The sum over workers of a route's event counter. */
uint64_t gw_stats_route_event(const struct gw_route_stats *rs, enum gw_route_event ev);
/* Answers by status class: out[0] 1xx .. out[4] 5xx. */
void gw_stats_route_classes(const struct gw_route_stats *rs, uint64_t out[5]);

#endif

#include "stats.h"

#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

/* Latencies from half a millisecond (a cached answer on loopback) to ten
 * seconds (past any sane route timeout), about three buckets a decade. */
const double gw_latency_bucket_le[GW_LATENCY_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

/* The same bounds in microseconds, for the request path. */
static const uint64_t bucket_us[GW_LATENCY_BUCKETS] = {
    500,    1000,   2500,   5000,    10000,   25000,   50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

const char *gw_try_result_label(enum gw_try_result r)
{
	static const char *const names[GW_TRY_RESULTS] = {
	    "success", "connect_failure", "reset", "timeout", "invalid_response", "http_5xx",
	};

	return (unsigned)r < GW_TRY_RESULTS ? names[r] : "other";
}

/* n zeroed blocks on their own cache lines (each is written by one worker). */
static void *per_worker(unsigned n, size_t size)
{
	void *p = NULL;

	if (posix_memalign(&p, 64, n * size) != 0)
		abort();
	memset(p, 0, n * size);
	return p;
}

struct gw_stats *gw_stats_new(unsigned nworkers)
{
	struct gw_stats *s = gw_calloc(1, sizeof(*s));

	s->nworkers = nworkers ? nworkers : 1;
	s->unrouted = gw_calloc(1, sizeof(*s->unrouted));
	s->unrouted->name = gw_strdup("");
	s->unrouted->w = per_worker(s->nworkers, sizeof(*s->unrouted->w));
	s->unrouted->nworkers = s->nworkers;
	return s;
}

static void route_stats_free(struct gw_route_stats *rs)
{
	free(rs->name);
	free(rs->upstream[0]);
	free(rs->upstream[1]);
	free(rs->w);
	free(rs);
}

void gw_stats_free(struct gw_stats *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nroutes; i++)
		route_stats_free(s->routes[i]);
	for (size_t i = 0; i < s->nupstreams; i++) {
		free(s->upstreams[i]->name);
		free(s->upstreams[i]->w);
		free(s->upstreams[i]);
	}
	route_stats_free(s->unrouted);
	free(s->routes);
	free(s->upstreams);
	free(s);
}

static void set_name(char **slot, const char *name)
{
	if (*slot && name && strcmp(*slot, name) == 0)
		return;
	free(*slot);
	*slot = name ? gw_strdup(name) : NULL;
}

struct gw_route_stats *gw_stats_route(struct gw_stats *s, const struct gw_route_conf *route)
{
	struct gw_route_stats *rs = NULL;
	const struct gw_upstream_conf *off = route->flag ? route->flag->when_off_upstream : NULL;

	for (size_t i = 0; i < s->nroutes && !rs; i++)
		if (strcmp(s->routes[i]->name, route->name) == 0)
			rs = s->routes[i];
	if (!rs) {
		if (s->nroutes == s->route_cap) {
			s->route_cap = s->route_cap ? s->route_cap * 2 : 16;
			s->routes = gw_realloc(s->routes, s->route_cap * sizeof(*s->routes));
		}
		rs = gw_calloc(1, sizeof(*rs));
		rs->name = gw_strdup(route->name);
		rs->w = per_worker(s->nworkers, sizeof(*rs->w));
		rs->nworkers = s->nworkers;
		s->routes[s->nroutes++] = rs;
	}
	set_name(&rs->upstream[0], route->upstream->name);
	set_name(&rs->upstream[1], off ? off->name : NULL);
	return rs;
}

struct gw_upstream_stats *gw_stats_upstream(struct gw_stats *s, const char *name)
{
	struct gw_upstream_stats *us;

	for (size_t i = 0; i < s->nupstreams; i++)
		if (strcmp(s->upstreams[i]->name, name) == 0)
			return s->upstreams[i];
	if (s->nupstreams == s->upstream_cap) {
		s->upstream_cap = s->upstream_cap ? s->upstream_cap * 2 : 16;
		s->upstreams = gw_realloc(s->upstreams, s->upstream_cap * sizeof(*s->upstreams));
	}
	us = gw_calloc(1, sizeof(*us));
	us->name = gw_strdup(name);
	us->w = per_worker(s->nworkers, sizeof(*us->w));
	us->nworkers = s->nworkers;
	s->upstreams[s->nupstreams++] = us;
	return us;
}

void gw_histogram_observe(struct gw_histogram *h, uint64_t us)
{
	unsigned b = 0;

	while (b < GW_LATENCY_BUCKETS && us > bucket_us[b])
		b++;
	gw_stats_bump(&h->bucket[b], 1);
	gw_stats_bump(&h->sum_us, us);
}

/*
 * A route sees a handful of distinct statuses: each takes the first free
 * slot the first time it is seen, and later answers find it in a short
 * scan (the common ones early, since they come first). Only this worker
 * writes the slots.
 */
void gw_stats_answer(struct gw_route_stats *rs, unsigned worker, int status, uint64_t duration_us)
{
	struct gw_route_counters *c;

	if (!rs)
		return;
	c = &rs->w[worker];
	gw_histogram_observe(&c->latency, duration_us);
	for (unsigned i = 0; i < GW_STATS_CODES; i++) {
		uint32_t code = atomic_load_explicit(&c->code[i], memory_order_relaxed);

		if (code == (uint32_t)status) {
			gw_stats_bump(&c->by_code[i], 1);
			return;
		}
		if (code == 0) {
			/* the count first: a scrape that sees the code sees its count */
			gw_stats_bump(&c->by_code[i], 1);
			atomic_store_explicit(&c->code[i], (uint32_t)status, memory_order_release);
			return;
		}
	}
	gw_stats_bump(&c->other_code, 1);
}

uint64_t gw_stats_route_event(const struct gw_route_stats *rs, enum gw_route_event ev)
{
	uint64_t n = 0;

	for (unsigned w = 0; rs && w < rs->nworkers; w++)
		n += atomic_load_explicit(&rs->w[w].events[ev], memory_order_relaxed);
	return n;
}

void gw_stats_route_classes(const struct gw_route_stats *rs, uint64_t out[5])
{
	memset(out, 0, 5 * sizeof(*out));
	for (unsigned w = 0; rs && w < rs->nworkers; w++) {
		const struct gw_route_counters *c = &rs->w[w];

		for (unsigned i = 0; i < GW_STATS_CODES; i++) {
			uint32_t code = atomic_load_explicit(&c->code[i], memory_order_acquire);

			if (code >= 100 && code <= 599)
				out[code / 100 - 1] +=
				    atomic_load_explicit(&c->by_code[i], memory_order_relaxed);
		}
	}
}

/*
 * GET /metrics: Prometheus text exposition format 0.0.4 (SPEC section 10).
 *
 * Counters come from the stats registry (stats.h), summed over workers at
 * scrape time; they are kept by route and upstream name for the life of
 * the process, so a reload never makes one go backwards. Series of routes
 * a reload removed stay, frozen, until restart: a counter that vanished
 * and came back would read as a reset. Gauges (breaker state, server up,
 * queue lengths) describe the current config only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "../../modules/circuit_breaker/breaker.h"
#include "../../modules/flags/flag_sync.h"
#include "../../modules/shedding/shedding.h"
#include "../generation.h"
#include "../pipeline.h"
#include "../server.h"
#include "../stats.h"
#include "../upstream/health.h"
#include "../util/clock.h"
#include "inspect.h"

/* A label value: backslash, double quote and newline escaped (text format 0.0.4). */
static void label(struct evbuffer *out, const char *name, const char *value, bool first)
{
	char buf[256];
	size_t n = 0;

	evbuffer_add_printf(out, "%s%s=\"", first ? "" : ",", name);
	for (const char *p = value ? value : ""; *p; p++) {
		if (n > sizeof(buf) - 4) {
			evbuffer_add(out, buf, n);
			n = 0;
		}
		if (*p == '\\' || *p == '"') {
			buf[n++] = '\\';
			buf[n++] = *p;
		} else if (*p == '\n') {
			buf[n++] = '\\';
			buf[n++] = 'n';
		} else {
			buf[n++] = *p;
		}
	}
	evbuffer_add(out, buf, n);
	evbuffer_add(out, "\"", 1);
}

static void family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A histogram's series for one label set (labels already written as "a=\"x\""). */
static void histogram(struct evbuffer *out, const char *name, const char *labels,
                      const uint64_t bucket[GW_LATENCY_BUCKETS + 1], uint64_t sum_us)
{
	uint64_t cum = 0;

	for (unsigned b = 0; b < GW_LATENCY_BUCKETS; b++) {
		cum += bucket[b];
		evbuffer_add_printf(out, "%s_bucket{%s,le=\"%g\"} %" PRIu64 "\n", name, labels,
		                    gw_latency_bucket_le[b], cum);
	}
	cum += bucket[GW_LATENCY_BUCKETS];
	evbuffer_add_printf(out, "%s_bucket{%s,le=\"+Inf\"} %" PRIu64 "\n", name, labels, cum);
	evbuffer_add_printf(out, "%s_sum{%s} %.6f\n", name, labels, (double)sum_us / 1e6);
	evbuffer_add_printf(out, "%s_count{%s} %" PRIu64 "\n", name, labels, cum);
}

static void sum_histogram(const struct gw_histogram *h, uint64_t bucket[GW_LATENCY_BUCKETS + 1],
                          uint64_t *sum_us)
{
	for (unsigned b = 0; b <= GW_LATENCY_BUCKETS; b++)
		bucket[b] += atomic_load_explicit(&h->bucket[b], memory_order_relaxed);
	*sum_us += atomic_load_explicit(&h->sum_us, memory_order_relaxed);
}

/* The labels of a route in a scratch buffer, escaped, for histogram(). */
static const char *labels_of(struct evbuffer *scratch, const char *k1, const char *v1,
                             const char *k2, const char *v2)
{
	evbuffer_drain(scratch, evbuffer_get_length(scratch));
	label(scratch, k1, v1, true);
	if (k2)
		label(scratch, k2, v2, false);
	evbuffer_add(scratch, "", 1);
	return (const char *)evbuffer_pullup(scratch, -1);
}

static void requests(struct evbuffer *out, const struct gw_route_stats *rs)
{
	/* status -> count, summed over workers (each worker has its own slots) */
	uint32_t codes[GW_STATS_CODES * 4];
	uint64_t counts[GW_STATS_CODES * 4], other = 0;
	size_t n = 0;

	for (unsigned w = 0; w < rs->nworkers; w++) {
		const struct gw_route_counters *c = &rs->w[w];

		for (unsigned i = 0; i < GW_STATS_CODES; i++) {
			uint32_t code = atomic_load_explicit(&c->code[i], memory_order_acquire);
			uint64_t v = atomic_load_explicit(&c->by_code[i], memory_order_relaxed);
			size_t j = 0;

			if (code == 0)
				break;
			while (j < n && codes[j] != code)
				j++;
			if (j == n) {
				if (n == sizeof(codes) / sizeof(codes[0])) {
					other += v;
					continue;
				}
				codes[n] = code;
				counts[n++] = 0;
			}
			counts[j] += v;
		}
		other += atomic_load_explicit(&c->other_code, memory_order_relaxed);
	}
	for (size_t j = 0; j < n; j++) {
		char code[8];

		snprintf(code, sizeof(code), "%u", codes[j]);
		evbuffer_add(out, "gateway_requests_total{", 23);
		label(out, "route", rs->name, true);
		label(out, "code", code, false);
		evbuffer_add_printf(out, "} %" PRIu64 "\n", counts[j]);
	}
	if (other) {
		evbuffer_add(out, "gateway_requests_total{", 23);
		label(out, "route", rs->name, true);
		label(out, "code", "other", false);
		evbuffer_add_printf(out, "} %" PRIu64 "\n", other);
	}
}

static void route_counter(struct evbuffer *out, const char *metric, const struct gw_route_stats *rs,
                          enum gw_route_event ev)
{
	evbuffer_add_printf(out, "%s{", metric);
	label(out, "route", rs->name, true);
	evbuffer_add_printf(out, "} %" PRIu64 "\n", gw_stats_route_event(rs, ev));
}

static void route_families(struct evbuffer *out, struct gw_stats *st, struct evbuffer *scratch)
{
	size_t n = st->nroutes;

	family(out, "gateway_requests_total", "counter",
	       "Requests answered, by route and status code (route \"\": no route matched).");
	requests(out, st->unrouted);
	for (size_t i = 0; i < n; i++)
		requests(out, st->routes[i]);

	family(out, "gateway_request_duration_seconds", "histogram",
	       "Time from the request to the end of its answer, by route.");
	for (size_t i = 0; i <= n; i++) {
		const struct gw_route_stats *rs = i < n ? st->routes[i] : st->unrouted;
		uint64_t bucket[GW_LATENCY_BUCKETS + 1] = {0}, sum = 0;

		for (unsigned w = 0; w < rs->nworkers; w++)
			sum_histogram(&rs->w[w].latency, bucket, &sum);
		histogram(out, "gateway_request_duration_seconds",
		          labels_of(scratch, "route", rs->name, NULL, NULL), bucket, sum);
	}

	family(out, "gateway_upstream_tries_total", "counter",
	       "Tries sent to upstream servers, by route, upstream and result.");
	for (size_t i = 0; i < n; i++) {
		const struct gw_route_stats *rs = st->routes[i];

		for (int which = 0; which < 2; which++) {
			if (!rs->upstream[which])
				continue;
			for (unsigned r = 0; r < GW_TRY_RESULTS; r++) {
				uint64_t v = 0;

				for (unsigned w = 0; w < rs->nworkers; w++)
					v += atomic_load_explicit(&rs->w[w].tries[which][r],
					                          memory_order_relaxed);
				evbuffer_add(out, "gateway_upstream_tries_total{", 29);
				label(out, "route", rs->name, true);
				label(out, "upstream", rs->upstream[which], false);
				label(out, "result", gw_try_result_label(r), false);
				evbuffer_add_printf(out, "} %" PRIu64 "\n", v);
			}
		}
	}

	family(out, "gateway_retries_total", "counter", "Retries started, by route.");
	for (size_t i = 0; i < n; i++)
		route_counter(out, "gateway_retries_total", st->routes[i], GW_EV_RETRY);
	family(out, "gateway_retry_budget_exhausted_total", "counter",
	       "Retries refused by the route's retry budget.");
	for (size_t i = 0; i < n; i++)
		route_counter(out, "gateway_retry_budget_exhausted_total", st->routes[i],
		              GW_EV_BUDGET_EXHAUSTED);
	family(out, "gateway_hedges_total", "counter",
	       "Hedged tries sent (retry.hedge): no head after the hedge delay.");
	for (size_t i = 0; i < n; i++)
		route_counter(out, "gateway_hedges_total", st->routes[i], GW_EV_HEDGE);
	family(out, "gateway_rate_limited_total", "counter",
	       "Requests refused by the route's rate limit (429).");
	for (size_t i = 0; i < n; i++)
		route_counter(out, "gateway_rate_limited_total", st->routes[i], GW_EV_RATE_LIMITED);
}

static void shed_family(struct evbuffer *out, struct gw_server *server)
{
	const struct gw_config *c = server->config;
	struct gw_stats *st = server->stats;

	family(out, "gateway_shed_total", "counter",
	       "Requests shed (503 shed), by route and the route's priority.");
	for (size_t i = 0; i < st->nroutes; i++) {
		const struct gw_route_stats *rs = st->routes[i];
		const char *prio = NULL;

		for (size_t r = 0; r < c->nroutes && !prio; r++)
			if (strcmp(c->routes[r].name, rs->name) == 0)
				prio = gw_priority_name(c->routes[r].priority);
		if (!prio)
			continue; /* a route the config no longer has */
		evbuffer_add(out, "gateway_shed_total{", 19);
		label(out, "route", rs->name, true);
		label(out, "priority", prio, false);
		evbuffer_add_printf(out, "} %" PRIu64 "\n", gw_stats_route_event(rs, GW_EV_SHED));
	}
}

static void gauge(struct evbuffer *out, const char *name, const char *help, double v)
{
	family(out, name, "gauge", help);
	evbuffer_add_printf(out, "%s %g\n", name, v);
}

static void current_families(struct evbuffer *out, struct gw_server *server,
                             struct evbuffer *scratch)
{
	struct gw_gen *g = server->gen;
	const struct gw_config *c = g->config;
	const struct gw_flags_snap *fs = gw_flags_sync_current(server->flags);
	const void *ps = gw_pipeline_process_state(g->pipeline, &gw_shedding_module);
	struct gw_shed_stats shed = {0};
	uint64_t now = gw_clock_now_ms();
	unsigned level;

	if (ps)
		gw_shed_stats(ps, &shed);
	level = fs && fs->shed_level != GW_SHED_LEVEL_AUTO ? (unsigned)fs->shed_level : shed.level;

	family(out, "gateway_circuit_state", "gauge",
	       "Circuit breaker state by route: 0 closed, 1 open, 2 half-open.");
	for (size_t r = 0; r < c->nroutes; r++) {
		const struct gw_breaker *b =
		    g->pipeline->routes[r].mod[gw_module_index(&gw_breaker_module)];

		if (!b)
			continue;
		evbuffer_add(out, "gateway_circuit_state{", 22);
		label(out, "route", c->routes[r].name, true);
		evbuffer_add_printf(out, "} %d\n", (int)gw_breaker_state(b, now));
	}
	gauge(out, "gateway_overload_level", "Overload level in force: 0 normal, 1, 2.", level);
	gauge(out, "gateway_inflight_requests", "Requests in flight in this process.",
	      shed.inflight);
	gauge(out, "gateway_redis_connected", "1 while the Redis connection is up.",
	      gw_flags_sync_redis_connected(server->flags) ? 1 : 0);
	family(out, "gateway_config_info", "gauge", "The config running: its file's hash.");
	evbuffer_add(out, "gateway_config_info{", 20);
	label(out, "hash", c->hash, true);
	evbuffer_add(out, "} 1\n", 4);
	family(out, "gateway_reloads_total", "counter", "Config reloads, by result.");
	evbuffer_add_printf(out, "gateway_reloads_total{result=\"ok\"} %u\n", server->reloads_ok);
	evbuffer_add_printf(out, "gateway_reloads_total{result=\"error\"} %u\n",
	                    server->reloads_failed);

	family(out, "gateway_upstream_server_up", "gauge",
	       "1 when the server may take tries: up by health checks and not ejected.");
	for (size_t u = 0; u < c->nupstreams; u++)
		for (size_t s = 0; s < c->upstreams[u].nservers; s++) {
			evbuffer_add(out, "gateway_upstream_server_up{", 27);
			label(out, "upstream", c->upstreams[u].name, true);
			label(out, "server", c->upstreams[u].servers[s].address, false);
			evbuffer_add_printf(out, "} %d\n", gw_health_usable(g->health, u, s, now));
		}

	family(out, "gateway_flag_enabled", "gauge",
	       "Share of users a feature flag is on for: 0 off, 1 on, N% as N/100.");
	for (size_t f = 0; fs && f < fs->nflags; f++) {
		struct gw_flag_value v = fs->flags[f].value;
		double on = v.kind == GW_FLAG_ON        ? 1
		            : v.kind == GW_FLAG_PERCENT ? (double)v.percent / 100
		                                        : 0;

		evbuffer_add(out, "gateway_flag_enabled{", 21);
		label(out, "flag", fs->config->flags[f].name, true);
		evbuffer_add_printf(out, "} %g\n", on);
	}

	family(out, "gateway_upstream_concurrency_limit", "gauge",
	       "Requests the upstream may have in flight (adaptive or fixed limit).");
	for (size_t u = 0; u < c->nupstreams; u++) {
		uint64_t limit = 0;

		if (c->upstreams[u].climit_mode == GW_CLIMIT_OFF)
			continue;
		for (unsigned w = 0; w < g->nworkers; w++)
			limit += atomic_load_explicit(&gw_gen_pub_up(g, w, u)->limit,
			                              memory_order_relaxed);
		if (c->upstreams[u].climit_mode == GW_CLIMIT_FIXED)
			limit = c->upstreams[u].climit_fixed;
		evbuffer_add(out, "gateway_upstream_concurrency_limit{", 35);
		label(out, "upstream", c->upstreams[u].name, true);
		evbuffer_add_printf(out, "} %" PRIu64 "\n", limit);
	}
	family(out, "gateway_upstream_queue_length", "gauge",
	       "Requests waiting in the upstream's priority queue, by priority.");
	for (size_t u = 0; u < c->nupstreams; u++)
		for (unsigned p = 0; p < GW_PRIORITY_COUNT; p++) {
			uint64_t q = 0;

			for (unsigned w = 0; w < g->nworkers; w++)
				q += atomic_load_explicit(&gw_gen_pub_up(g, w, u)->queued[p],
				                          memory_order_relaxed);
			evbuffer_add(out, "gateway_upstream_queue_length{", 30);
			label(out, "upstream", c->upstreams[u].name, true);
			label(out, "priority", gw_priority_name(p), false);
			evbuffer_add_printf(out, "} %" PRIu64 "\n", q);
		}

	family(out, "gateway_upstream_queue_wait_seconds", "histogram",
	       "Time requests waited in the upstream's priority queue, by priority.");
	for (size_t u = 0; u < c->nupstreams; u++) {
		const struct gw_upstream_stats *us = g->upstream_stats[u];

		if (!us || c->upstreams[u].climit_mode == GW_CLIMIT_OFF)
			continue; /* no queue: nothing ever waits there */
		for (unsigned p = 0; p < GW_PRIORITY_COUNT; p++) {
			uint64_t bucket[GW_LATENCY_BUCKETS + 1] = {0}, sum = 0;

			for (unsigned w = 0; w < us->nworkers; w++)
				sum_histogram(&us->w[w].wait[p], bucket, &sum);
			histogram(out, "gateway_upstream_queue_wait_seconds",
			          labels_of(scratch, "upstream", us->name, "priority",
			                    gw_priority_name(p)),
			          bucket, sum);
		}
	}
}

void gw_admin_metrics(struct gw_server *server, struct evbuffer *out)
{
	struct evbuffer *scratch = evbuffer_new();

	route_families(out, server->stats, scratch);
	shed_family(out, server);
	current_families(out, server, scratch);
	evbuffer_free(scratch);
}

/*
 * GET /status: the operator's view of one gateway, as JSON.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
#include "json_out.h"

static void iso8601(int64_t wall_ms, char *buf, size_t size)
{
	time_t t = (time_t)(wall_ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void gw_admin_config_json(struct gw_server *server, struct evbuffer *out)
{
	char when[32];

	iso8601(server->loaded_wall_ms, when, sizeof(when));
	evbuffer_add(out, "{", 1);
	gw_json_key(out, "file", true);
	gw_json_str(out, server->config->file);
	gw_json_key(out, "hash", false);
	gw_json_str(out, server->config->hash);
	gw_json_key(out, "loaded_at", false);
	gw_json_str(out, when);
	gw_json_key(out, "generation", false);
	gw_json_u64(out, server->gen->serial);
	gw_json_key(out, "reloads", false);
	gw_json_u64(out, server->reloads_ok);
	gw_json_key(out, "reloads_failed", false);
	gw_json_u64(out, server->reloads_failed);
	gw_json_key(out, "last_reload_error", false);
	gw_json_str(out, server->last_reload_error);
	evbuffer_add(out, "}", 1);
}

static void by_priority(struct evbuffer *out, const uint64_t v[GW_PRIORITY_COUNT])
{
	evbuffer_add(out, "{", 1);
	for (unsigned p = 0; p < GW_PRIORITY_COUNT; p++) {
		gw_json_key(out, gw_priority_name(p), p == 0);
		gw_json_u64(out, v[p]);
	}
	evbuffer_add(out, "}", 1);
}

static const char *breaker_state_text(enum gw_breaker_state s)
{
	return s == GW_BREAKER_OPEN ? "open" : s == GW_BREAKER_HALF_OPEN ? "half_open" : "closed";
}

static const char *force_text(enum gw_breaker_force f)
{
	return f == GW_BREAKER_FORCE_OPEN ? "open" : f == GW_BREAKER_FORCE_CLOSED ? "closed" : NULL;
}

static void route_json(struct evbuffer *out, const struct gw_route_conf *r,
                       const struct gw_route_state *rs, uint64_t now)
{
	const struct gw_breaker *b = rs->mod[gw_module_index(&gw_breaker_module)];
	struct gw_breaker_counts bc = {0};
	uint64_t classes[5];
	static const char *const class_names[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
	uint64_t total = 0;

	gw_stats_route_classes(rs->stats, classes);
	for (unsigned i = 0; i < 5; i++)
		total += classes[i];
	if (b)
		gw_breaker_counts(b, now, &bc);
	evbuffer_add(out, "{", 1);
	gw_json_key(out, "name", true);
	gw_json_str(out, r->name);
	gw_json_key(out, "priority", false);
	gw_json_str(out, gw_priority_name(r->priority));
	gw_json_key(out, "upstream", false);
	gw_json_str(out, r->upstream->name);
	gw_json_key(out, "breaker", false);
	evbuffer_add(out, "{", 1);
	gw_json_key(out, "state", true);
	/* "none": no automatic breaker, and not forced open. */
	gw_json_str(out,
	            b && !(gw_breaker_is_manual(b) && gw_breaker_state(b, now) == GW_BREAKER_CLOSED)
	                ? breaker_state_text(gw_breaker_state(b, now))
	                : "none");
	gw_json_key(out, "forced", false);
	gw_json_str(out, b ? force_text(gw_breaker_forced(b)) : NULL);
	gw_json_key(out, "window_tries", false);
	gw_json_u64(out, bc.tries);
	gw_json_key(out, "window_failures", false);
	gw_json_u64(out, bc.failures);
	gw_json_key(out, "consecutive_failures", false);
	gw_json_u64(out, bc.consecutive_failures);
	evbuffer_add(out, "}", 1);
	gw_json_key(out, "requests", false);
	gw_json_u64(out, total);
	gw_json_key(out, "responses", false);
	evbuffer_add(out, "{", 1);
	for (unsigned i = 0; i < 5; i++) {
		gw_json_key(out, class_names[i], i == 0);
		gw_json_u64(out, classes[i]);
	}
	evbuffer_add(out, "}", 1);
	gw_json_key(out, "retries", false);
	gw_json_u64(out, gw_stats_route_event(rs->stats, GW_EV_RETRY));
	gw_json_key(out, "hedges", false);
	gw_json_u64(out, gw_stats_route_event(rs->stats, GW_EV_HEDGE));
	gw_json_key(out, "budget_exhausted", false);
	gw_json_u64(out, gw_stats_route_event(rs->stats, GW_EV_BUDGET_EXHAUSTED));
	gw_json_key(out, "shed", false);
	gw_json_u64(out, gw_stats_route_event(rs->stats, GW_EV_SHED));
	gw_json_key(out, "rate_limited", false);
	gw_json_u64(out, gw_stats_route_event(rs->stats, GW_EV_RATE_LIMITED));
	evbuffer_add(out, "}", 1);
}

static void upstream_json(struct evbuffer *out, struct gw_gen *g, size_t u, uint64_t now)
{
	const struct gw_upstream_conf *uc = &g->config->upstreams[u];
	static const char *const balance_names[] = {"round_robin", "least_request", "random"};
	uint64_t queued[GW_PRIORITY_COUNT] = {0};
	uint64_t limit = 0, inflight = 0;

	for (unsigned w = 0; w < g->nworkers; w++) {
		struct gw_published_upstream *pu = gw_gen_pub_up(g, w, u);

		limit += atomic_load_explicit(&pu->limit, memory_order_relaxed);
		inflight += atomic_load_explicit(&pu->inflight, memory_order_relaxed);
		for (unsigned r = 0; r < GW_PRIORITY_COUNT; r++)
			queued[r] += atomic_load_explicit(&pu->queued[r], memory_order_relaxed);
	}
	evbuffer_add(out, "{", 1);
	gw_json_key(out, "name", true);
	gw_json_str(out, uc->name);
	gw_json_key(out, "balance", false);
	gw_json_str(out, balance_names[uc->balance]);
	gw_json_key(out, "concurrency_limit", false);
	if (uc->climit_mode == GW_CLIMIT_OFF)
		evbuffer_add(out, "null", 4);
	else
		gw_json_u64(out, uc->climit_mode == GW_CLIMIT_FIXED ? uc->climit_fixed : limit);
	gw_json_key(out, "inflight", false);
	gw_json_u64(out, inflight);
	gw_json_key(out, "queue", false);
	by_priority(out, queued);
	gw_json_key(out, "servers", false);
	evbuffer_add(out, "[", 1);
	for (size_t s = 0; s < uc->nservers; s++) {
		uint64_t sin = 0, open = 0;

		for (unsigned w = 0; w < g->nworkers; w++) {
			struct gw_published_server *ps = gw_gen_pub_srv(g, w, u, s);

			sin += atomic_load_explicit(&ps->inflight, memory_order_relaxed);
			open += atomic_load_explicit(&ps->open, memory_order_relaxed);
		}
		if (s)
			evbuffer_add(out, ",", 1);
		evbuffer_add(out, "{", 1);
		gw_json_key(out, "address", true);
		gw_json_str(out, uc->servers[s].address);
		gw_json_key(out, "healthy", false);
		gw_json_bool(out, gw_health_is_up(g->health, u, s));
		gw_json_key(out, "ejected", false);
		gw_json_bool(out, gw_health_is_ejected(g->health, u, s, now));
		gw_json_key(out, "ejections", false);
		gw_json_u64(out, gw_health_ejections(g->health, u, s));
		gw_json_key(out, "inflight", false);
		gw_json_u64(out, sin);
		gw_json_key(out, "open_connections", false);
		gw_json_u64(out, open);
		evbuffer_add(out, "}", 1);
	}
	evbuffer_add(out, "]}", 2);
}

static void flags_json(struct evbuffer *out, const struct gw_flags_snap *fs)
{
	char text[GW_FLAG_VALUE_TEXT];

	evbuffer_add(out, "[", 1);
	for (size_t i = 0; fs && i < fs->nflags; i++) {
		if (i)
			evbuffer_add(out, ",", 1);
		evbuffer_add(out, "{", 1);
		gw_json_key(out, "name", true);
		gw_json_str(out, fs->config->flags[i].name);
		gw_json_key(out, "value", false);
		gw_json_str(out, gw_flag_value_format(fs->flags[i].value, text, sizeof(text)));
		gw_json_key(out, "source", false);
		gw_json_str(out, gw_flag_source_name(fs->flags[i].source));
		evbuffer_add(out, "}", 1);
	}
	evbuffer_add(out, "]", 1);
}

static void overload_json(struct evbuffer *out, struct gw_server *server,
                          const struct gw_flags_snap *fs)
{
	const void *ps = gw_pipeline_process_state(server->gen->pipeline, &gw_shedding_module);
	struct gw_shed_stats st = {0};
	bool forced = fs && fs->shed_level != GW_SHED_LEVEL_AUTO;
	char reason[200];

	if (ps)
		gw_shed_stats(ps, &st);
	if (forced)
		snprintf(reason, sizeof(reason), "forced to %d (%s)", fs->shed_level,
		         gw_flag_source_name(fs->shed_source));
	else
		snprintf(reason, sizeof(reason), "%s", st.reason);
	evbuffer_add(out, "{", 1);
	gw_json_key(out, "level", true);
	gw_json_u64(out, forced ? (uint64_t)fs->shed_level : st.level);
	gw_json_key(out, "source", false);
	gw_json_str(out, forced ? gw_flag_source_name(fs->shed_source) : "auto");
	gw_json_key(out, "reason", false);
	gw_json_str(out, reason);
	gw_json_key(out, "max_inflight", false);
	gw_json_u64(out, server->config->shedding.max_inflight);
	gw_json_key(out, "dry_run", false);
	gw_json_bool(out, server->config->shedding.dry_run);
	gw_json_key(out, "shed", false);
	by_priority(out, st.shed);
	evbuffer_add(out, "}", 1);
}

static uint64_t inflight_requests(struct gw_server *server)
{
	const void *ps = gw_pipeline_process_state(server->gen->pipeline, &gw_shedding_module);
	struct gw_shed_stats st = {0};
	uint64_t n = 0;

	/* the current generation's count, plus what older ones still run */
	if (ps)
		gw_shed_stats(ps, &st);
	n = st.inflight;
	for (size_t i = 0; i < server->nretired; i++) {
		ps = gw_pipeline_process_state(server->retired[i]->pipeline, &gw_shedding_module);
		if (ps) {
			gw_shed_stats(ps, &st);
			n += st.inflight;
		}
	}
	return n;
}

void gw_admin_status_json(struct gw_server *server, struct evbuffer *out)
{
	struct gw_gen *g = server->gen;
	const struct gw_flags_snap *fs = gw_flags_sync_current(server->flags);
	uint64_t now = gw_clock_now_ms();

	evbuffer_add(out, "{", 1);
	gw_json_key(out, "version", true);
	gw_json_str(out, GW_VERSION);
	gw_json_key(out, "pid", false);
	gw_json_u64(out, (uint64_t)getpid());
	gw_json_key(out, "uptime_seconds", false);
	gw_json_num(out, (double)(now - server->started_ms) / 1000.0);
	gw_json_key(out, "draining", false);
	gw_json_bool(out, atomic_load(&server->draining));
	gw_json_key(out, "config", false);
	gw_admin_config_json(server, out);
	gw_json_key(out, "inflight", false);
	gw_json_u64(out, inflight_requests(server));
	gw_json_key(out, "connections", false);
	gw_json_u64(out, gw_conn_cap_count(&server->conn_cap));
	gw_json_key(out, "overload", false);
	overload_json(out, server, fs);
	gw_json_key(out, "redis", false);
	evbuffer_add(out, "{", 1);
	gw_json_key(out, "configured", true);
	gw_json_bool(out, server->config->has_redis);
	gw_json_key(out, "connected", false);
	gw_json_bool(out, gw_flags_sync_redis_connected(server->flags));
	evbuffer_add(out, "}", 1);
	gw_json_key(out, "routes", false);
	evbuffer_add(out, "[", 1);
	for (size_t r = 0; r < g->config->nroutes; r++) {
		if (r)
			evbuffer_add(out, ",", 1);
		route_json(out, &g->config->routes[r], &g->pipeline->routes[r], now);
	}
	evbuffer_add(out, "]", 1);
	gw_json_key(out, "upstreams", false);
	evbuffer_add(out, "[", 1);
	for (size_t u = 0; u < g->config->nupstreams; u++) {
		if (u)
			evbuffer_add(out, ",", 1);
		upstream_json(out, g, u, now);
	}
	evbuffer_add(out, "]", 1);
	gw_json_key(out, "flags", false);
	flags_json(out, fs);
	evbuffer_add(out, "}\n", 2);
}

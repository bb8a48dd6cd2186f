/*
 * libFuzzer harness for the configuration loader, from a string
 * (gw_config_load_string: libyaml, the YAML tree, every key of the file
 * and the modules' route keys).
 *
 * The input is the file's text. Invariants checked beyond the sanitizers:
 * a refused file says why (at least one non-empty message), an accepted one
 * adds no message; an accepted snapshot is consistent (every route points
 * at one of its upstreams, indexes match positions, values are in their
 * documented ranges, names are found again by their lookups).
 *
 * No DNS: the loader resolves host names ("localhost:9001") with
 * getaddrinfo; run.sh links every harness with -Wl,--wrap=getaddrinfo and
 * no_dns.c, which answers "localhost" with a loopback address and every
 * other name with EAI_NONAME, without asking any resolver. A fuzzed file
 * never sends a packet and gets the same answer on every machine.
 *
 * Dictionary: config.dict
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config/config.h"
#include "gateway/util/errlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant: when it does not hold, say which and crash for libFuzzer. */
#define require(cond) require_at((cond), #cond, __LINE__)

static void require_at(int cond, const char *what, int line)
{
	if (!cond) {
		fprintf(stderr, "invariant failed at line %d: %s\n", line, what);
		abort();
	}
}

static void check_config(const struct gw_config *cfg)
{
	require(cfg->nlistens >= 1);
	for (size_t i = 0; i < cfg->nlistens; i++)
		require(cfg->listens[i].address && cfg->listens[i].addr.len > 0);
	require(cfg->workers >= 1);
	require(cfg->access_log != NULL);
	require(cfg->nupstreams >= 1 && cfg->nroutes >= 1);
	for (size_t u = 0; u < cfg->nupstreams; u++) {
		const struct gw_upstream_conf *up = &cfg->upstreams[u];

		require(up->index == u && up->name && up->name[0]);
		require(gw_config_find_upstream(cfg, up->name) == up);
		require(up->nservers >= 1);
		for (size_t s = 0; s < up->nservers; s++) {
			require(up->servers[s].address && up->servers[s].addr.len > 0);
			require(up->servers[s].weight >= 1 && up->servers[s].weight <= 1000);
		}
		if (up->has_health_check) {
			require(up->health_check.path && up->health_check.path[0] == '/');
			require(up->health_check.timeout_ms <= up->health_check.interval_ms);
		}
	}
	for (size_t r = 0; r < cfg->nroutes; r++) {
		const struct gw_route_conf *rt = &cfg->routes[r];

		require(rt->index == r && rt->name);
		require(rt->upstream >= cfg->upstreams &&
		        rt->upstream < cfg->upstreams + cfg->nupstreams);
		require(rt->path_prefix && strlen(rt->path_prefix) == rt->path_prefix_len);
		require((unsigned)rt->priority < GW_PRIORITY_COUNT);
		if (rt->flag) {
			require(rt->flag->index < cfg->nflags);
			require(strcmp(cfg->flags[rt->flag->index].name, rt->flag->name) == 0);
			require((rt->flag->when_off_upstream == NULL) ==
			        (rt->flag->when_off_route == NULL));
		}
	}
	for (size_t f = 0; f < cfg->nflags; f++) {
		require(gw_config_find_flag(cfg, cfg->flags[f].name) == (int)f);
		require(cfg->flags[f].seed == gw_flag_seed(cfg->flags[f].name));
		require(cfg->flags[f].def.kind != GW_FLAG_PERCENT ||
		        cfg->flags[f].def.percent <= 100);
	}
	for (size_t p = 0; p < cfg->nprofiles; p++) {
		const struct gw_profile_conf *pr = &cfg->profiles[p];

		require(gw_config_find_profile(cfg, pr->name) == (int)p);
		require(pr->shed_level == GW_SHED_LEVEL_AUTO ||
		        (pr->shed_level >= 0 && pr->shed_level <= GW_SHED_LEVEL_MAX));
		for (size_t i = 0; i < pr->nflags; i++)
			require(pr->flags[i].flag < cfg->nflags);
	}
	if (cfg->has_redis)
		require(cfg->redis.address && cfg->redis.prefix &&
		        (cfg->redis.unix_path != NULL) == (cfg->redis.host == NULL));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_errlist errs = {0};
	struct gw_config *cfg;
	char *yaml;

	if (size > 64 * 1024)
		return 0;
	yaml = malloc(size + 1);
	require(yaml != NULL);
	memcpy(yaml, data, size);
	yaml[size] = '\0'; /* the loader takes a C string: it stops at a NUL */

	cfg = gw_config_load_string("fuzz.yaml", yaml, &errs);
	if (cfg) {
		require(errs.count == 0);
		check_config(cfg);
		require(gw_config_ref(cfg) == cfg);
		gw_config_unref(cfg);
		gw_config_unref(cfg);
	} else {
		require(errs.count > 0);
		for (size_t i = 0; i < errs.count; i++)
			require(errs.items[i] && errs.items[i][0]);
	}
	gw_errlist_free(&errs);
	free(yaml);
	return 0;
}

#include "generation.h"

#include <stdlib.h>

#include "pipeline.h"
#include "stats.h"
#include "upstream/health.h"
#include "util/alloc.h"

struct gw_gen *gw_gen_new(struct gw_config *config, const struct gw_gen *old,
                          struct event_base *main_base, struct gw_stats *stats, unsigned nworkers)
{
	struct gw_gen *g = gw_calloc(1, sizeof(*g));
	size_t nups = config->nupstreams;

	atomic_init(&g->refs, 1);
	g->serial = old ? old->serial + 1 : 1;
	g->config = gw_config_ref(config);
	g->nworkers = nworkers ? nworkers : 1;
	g->pipeline = gw_pipeline_new(config, main_base, stats, old ? old->pipeline : NULL);
	g->health = gw_health_new(config);
	if (old)
		gw_health_carry(g->health, old->health);
	g->server_base = gw_calloc(nups ? nups : 1, sizeof(*g->server_base));
	for (size_t i = 0; i < nups; i++) {
		g->server_base[i] = g->nservers;
		g->nservers += config->upstreams[i].nservers;
	}
	g->pub_up = gw_calloc((size_t)g->nworkers * (nups ? nups : 1), sizeof(*g->pub_up));
	g->pub_srv =
	    gw_calloc((size_t)g->nworkers * (g->nservers ? g->nservers : 1), sizeof(*g->pub_srv));
	g->upstream_stats = gw_calloc(nups ? nups : 1, sizeof(*g->upstream_stats));
	for (size_t i = 0; stats && i < nups; i++)
		g->upstream_stats[i] = gw_stats_upstream(stats, config->upstreams[i].name);
	return g;
}

struct gw_gen *gw_gen_ref(struct gw_gen *g)
{
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
	return g;
}

void gw_gen_unref(struct gw_gen *g)
{
	/* release: the main thread that frees it must see every write made through it */
	if (g)
		atomic_fetch_sub_explicit(&g->refs, 1, memory_order_release);
}

bool gw_gen_unused(struct gw_gen *g)
{
	return atomic_load_explicit(&g->refs, memory_order_acquire) == 0;
}

void gw_gen_free(struct gw_gen *g)
{
	if (!g)
		return;
	gw_pipeline_free(g->pipeline);
	gw_health_free(g->health);
	free(g->server_base);
	free(g->pub_up);
	free(g->pub_srv);
	free(g->upstream_stats);
	gw_config_unref(g->config);
	free(g);
}

#include "pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "../modules/module.h"
#include "reply.h"
#include "stats.h"
#include "txn.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "worker.h"

static bool module_runs(const struct gw_module *m, size_t idx, const struct gw_route_conf *route)
{
	if (m->active)
		return m->active(route);
	return route->module_conf[idx] != NULL;
}

/* Appends module idx to a hook's list when it has that hook. */
#define ADD_IF(rs, list, n, has, idx)                                                              \
	do {                                                                                       \
		if (has)                                                                           \
			(rs)->list[(rs)->n++] = (uint8_t)(idx);                                    \
	} while (0)

static void route_state_init(struct gw_route_state *rs, const struct gw_route_conf *route,
                             struct gw_stats *stats, const struct gw_route_state *old)
{
	rs->name = gw_strdup(route->name);
	rs->stats = stats ? gw_stats_route(stats, route) : NULL;
	for (size_t i = 0; i < gw_modules_count; i++) {
		const struct gw_module *m = gw_modules[i];

		if (!module_runs(m, i, route))
			continue;
		if (m->route_state_new)
			rs->mod[i] = m->route_state_new(route->module_conf[i], route);
		if (rs->mod[i] && old && old->mod[i] && m->route_state_carry)
			m->route_state_carry(rs->mod[i], old->mod[i]);
		ADD_IF(rs, admit, nadmit, m->on_admit, i);
		ADD_IF(rs, try_done, ntry_done, m->on_try_done, i);
		ADD_IF(rs, retry, nretry, m->may_retry, i);
		ADD_IF(rs, answer, nanswer, m->on_answer, i);
		ADD_IF(rs, end, nend, m->on_end, i);
	}
}

static const struct gw_route_state *find_route(const struct gw_pipeline *p, const char *name)
{
	for (size_t r = 0; p && r < p->nroutes; r++)
		if (strcmp(p->routes[r].name, name) == 0)
			return &p->routes[r];
	return NULL;
}

struct gw_pipeline *gw_pipeline_new(const struct gw_config *config, struct event_base *main_base,
                                    struct gw_stats *stats, const struct gw_pipeline *old)
{
	struct gw_pipeline *p = gw_calloc(1, sizeof(*p));

	gw_modules_init();
	for (size_t i = 0; i < gw_modules_count; i++) {
		const struct gw_module *m = gw_modules[i];

		if (m->process_state_new)
			p->process[i] = m->process_state_new(config, main_base);
		if (p->process[i] && old && old->process[i] && m->process_state_carry)
			m->process_state_carry(p->process[i], old->process[i]);
	}
	p->nroutes = config->nroutes;
	p->routes = gw_calloc(config->nroutes ? config->nroutes : 1, sizeof(*p->routes));
	for (size_t r = 0; r < config->nroutes; r++)
		route_state_init(&p->routes[r], &config->routes[r], stats,
		                 find_route(old, config->routes[r].name));
	return p;
}

void gw_pipeline_free(struct gw_pipeline *p)
{
	if (!p)
		return;
	for (size_t r = 0; r < p->nroutes; r++) {
		for (size_t i = 0; i < gw_modules_count; i++)
			if (p->routes[r].mod[i] && gw_modules[i]->route_state_free)
				gw_modules[i]->route_state_free(p->routes[r].mod[i]);
		free(p->routes[r].name);
	}
	for (size_t i = 0; i < gw_modules_count; i++)
		if (p->process[i] && gw_modules[i]->process_state_free)
			gw_modules[i]->process_state_free(p->process[i]);
	free(p->routes);
	free(p);
}

void *gw_pipeline_route_state(const struct gw_pipeline *p, size_t route, const struct gw_module *m)
{
	if (!p || route >= p->nroutes)
		return NULL;
	return p->routes[route].mod[gw_module_index(m)];
}

void *gw_pipeline_process_state(const struct gw_pipeline *p, const struct gw_module *m)
{
	return p ? p->process[gw_module_index(m)] : NULL;
}

void gw_pipeline_worker_new(struct gw_pipeline *p, struct gw_worker *w, void **mod_state,
                            void *const *old)
{
	for (size_t i = 0; i < gw_modules_count; i++) {
		const struct gw_module *m = gw_modules[i];

		if (m->worker_state_new)
			mod_state[i] = m->worker_state_new(p ? p->process[i] : NULL, w);
		if (mod_state[i] && old && old[i] && m->worker_state_carry)
			m->worker_state_carry(mod_state[i], old[i]);
	}
}

void gw_pipeline_worker_free(void **mod_state)
{
	for (size_t i = 0; i < gw_modules_count; i++) {
		if (mod_state[i] && gw_modules[i]->worker_state_free)
			gw_modules[i]->worker_state_free(mod_state[i]);
		mod_state[i] = NULL;
	}
}

/* ---- the request path ---------------------------------------------------- */

static void env_for(struct gw_mod_env *env, struct gw_txn *txn, size_t i, uint64_t now)
{
	env->txn = txn;
	env->worker = txn->worker;
	env->route = txn->route;
	env->now_ms = now;
	env->conf = txn->route->module_conf[i];
	env->route_state = txn->rs->mod[i];
	env->worker_state = txn->wg->mod_state[i];
	env->slot = txn->mod_slots + gw_module_slot_offset[i];
}

enum gw_pipeline_verdict gw_pipeline_admit(struct gw_txn *txn, size_t from,
                                           struct gw_admit_answer *answer)
{
	const struct gw_route_state *rs = txn->rs;
	uint64_t now = gw_clock_now_ms();
	struct gw_mod_env env;

	for (size_t k = from; k < rs->nadmit; k++) {
		size_t i = rs->admit[k];

		env_for(&env, txn, i, now);
		switch (gw_modules[i]->on_admit(&env)) {
		case GW_ADMIT_NEXT:
			break;
		case GW_ADMIT_ANSWER:
			*answer = env.answer;
			return GW_PIPELINE_ANSWER;
		case GW_ADMIT_PARK:
			txn->park_pos = k;
			return GW_PIPELINE_PARKED;
		case GW_ADMIT_REROUTE:
			gw_txn_reroute(txn, env.reroute);
			break;
		}
	}
	return GW_PIPELINE_GO;
}

void gw_pipeline_try_done(struct gw_txn *txn, const struct gw_try *t)
{
	const struct gw_route_state *rs = txn->rs;
	uint64_t now = gw_clock_now_ms();
	struct gw_mod_env env;

	for (size_t k = 0; k < rs->ntry_done; k++) {
		env_for(&env, txn, rs->try_done[k], now);
		gw_modules[rs->try_done[k]]->on_try_done(&env, t);
	}
}

bool gw_pipeline_may_retry(struct gw_txn *txn, const struct gw_try *t, uint64_t *backoff_ms)
{
	const struct gw_route_state *rs = txn->rs;
	uint64_t now = gw_clock_now_ms();
	struct gw_mod_env env;

	*backoff_ms = 0;
	if (rs->nretry == 0)
		return false; /* nobody to say yes */
	for (size_t k = 0; k < rs->nretry; k++) {
		uint64_t wait = 0;

		env_for(&env, txn, rs->retry[k], now);
		if (!gw_modules[rs->retry[k]]->may_retry(&env, t, &wait))
			return false;
		if (wait > *backoff_ms)
			*backoff_ms = wait;
	}
	return true;
}

void gw_pipeline_answer(struct gw_txn *txn, struct gw_error_reply *e)
{
	const struct gw_route_state *rs = txn->rs;
	uint64_t now = gw_clock_now_ms();
	struct gw_mod_env env;

	for (size_t k = 0; k < rs->nanswer; k++) {
		env_for(&env, txn, rs->answer[k], now);
		gw_modules[rs->answer[k]]->on_answer(&env, e);
	}
}

void gw_pipeline_end(struct gw_txn *txn)
{
	const struct gw_route_state *rs = txn->rs;
	uint64_t now = gw_clock_now_ms();
	struct gw_mod_env env;

	for (size_t k = 0; k < rs->nend; k++) {
		env_for(&env, txn, rs->end[k], now);
		gw_modules[rs->end[k]]->on_end(&env);
	}
}

#include "rate_limit.h"
#include "bucket_table.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../../gateway/config/conf_read.h"
#include "../../gateway/config/config.h"
#include "../../gateway/pipeline.h"
#include "../../gateway/stats.h"
#include "../../gateway/txn.h"
#include "../../gateway/worker.h"
#include "../../gateway/util/alloc.h"

#define SEC  1000ull
#define HOUR (3600 * SEC)

/* ---- the `rate_limit` section -------------------------------------------- */

/* client_ip, route or header:NAME; the default (client_ip) is 0. */
static int read_by(const struct gw_conf_ctx *ctx, const struct gw_node *v, const char *key,
                   void *obj)
{
	struct gw_rate_limit_conf *c = obj;

	if (!gw_conf_want_scalar(ctx, v, key, "client_ip, route or header:NAME"))
		return -1;
	if (strcmp(v->value, "client_ip") == 0) {
		c->by = GW_RL_BY_CLIENT_IP;
	} else if (strcmp(v->value, "route") == 0) {
		c->by = GW_RL_BY_ROUTE;
	} else if (strncmp(v->value, "header:", 7) == 0 && v->value[7] &&
	           strspn(v->value + 7, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                                "0123456789-_") == strlen(v->value + 7)) {
		c->by = GW_RL_BY_HEADER;
		free(c->header);
		c->header = gw_strdup(v->value + 7);
	} else {
		gw_conf_bad_value(ctx, v, key, "expected client_ip, route or header:NAME, got '%s'",
		                  v->value);
		return -1;
	}
	return 0;
}

/* burst defaults to the rate, rounded up. */
static void rate_limit_check(const struct gw_conf_section *s)
{
	struct gw_rate_limit_conf *c = s->obj;

	if (!gw_conf_section_value(s, "burst") || gw_conf_section_refused(s, "burst"))
		c->burst = c->rate < 1 ? 1 : (uint32_t)fmin(ceil(c->rate), 100000000);
}

#define CONF struct gw_rate_limit_conf

static const struct gw_conf_field rate_limit_fields[] = {
    {GW_CONF_DOUBLE("rate", CONF, rate, 0, 100000, true, 1), .required = true},
    {GW_CONF_DURATION("per", CONF, per_ms, 1, HOUR, SEC)},
    {GW_CONF_U32("burst", CONF, burst, 1, 100000000, 0)},
    {GW_CONF_CUSTOM("by", read_by)},
    {GW_CONF_U32("max_keys", CONF, max_keys, 1, 10000000, 100000)},
    {.key = NULL, .check = rate_limit_check},
};

#undef CONF

static int rate_limit_conf_parse(void *conf, const struct gw_node *node, const char *where,
                                 const char *file, struct gw_errlist *errs)
{
	return gw_module_conf_read(&gw_rate_limit_module, conf, node, where, file, errs);
}

static void rate_limit_conf_free(void *conf)
{
	struct gw_rate_limit_conf *c = conf;

	free(c->header);
}

/* ---- the admission step -------------------------------------------------- */

/* A route's buckets and what they refused. Owned by the pipeline. */
struct rl_route {
	struct gw_bucket_table *table;
	atomic_ullong refused;
};

static void *rl_route_state_new(const void *conf, const struct gw_route_conf *route)
{
	const struct gw_rate_limit_conf *c = conf;
	struct rl_route *rl = gw_calloc(1, sizeof(*rl));

	/* by: route has one key: no room for more */
	rl->table = gw_bucket_table_new(c->rate, c->per_ms, c->burst,
	                                c->by == GW_RL_BY_ROUTE ? 1 : c->max_keys);
	return rl;
}

static void rl_route_state_free(void *state)
{
	struct rl_route *rl = state;

	gw_bucket_table_free(rl->table);
	free(rl);
}

static enum gw_admit rl_on_admit(struct gw_mod_env *env)
{
	const struct gw_rate_limit_conf *c = env->conf;
	struct rl_route *rl = env->route_state;
	const char *key = "";
	uint64_t wait;

	if (c->by == GW_RL_BY_CLIENT_IP)
		key = gw_txn_client_ip(env->txn);
	else if (c->by == GW_RL_BY_HEADER && !(key = gw_txn_header(env->txn, c->header)))
		key = ""; /* no header: one shared bucket */
	wait = gw_bucket_take(rl->table, key, strlen(key), env->now_ms);
	if (wait == 0)
		return GW_ADMIT_NEXT;
	atomic_fetch_add_explicit(&rl->refused, 1, memory_order_relaxed);
	gw_stats_event(env->txn->rs->stats, env->worker->id, GW_EV_RATE_LIMITED);
	env->answer.status = 429;
	env->answer.code = "rate_limited";
	env->answer.retry_after_ms = wait;
	return GW_ADMIT_ANSWER;
}

uint64_t gw_rate_limit_refused(const void *route_state)
{
	const struct rl_route *rl = route_state;

	return rl ? atomic_load(&((struct rl_route *)rl)->refused) : 0;
}

static void rl_report(const void *state, struct gw_report *out)
{
	struct rl_route *rl = (struct rl_route *)state;

	out->add(out, "rate_limited", (double)gw_rate_limit_refused(state));
	out->add(out, "keys", (double)gw_bucket_table_keys(rl->table));
}

const struct gw_module gw_rate_limit_module = {
    .name = "rate_limit",
    .route_key = "rate_limit",
    .fields = rate_limit_fields,
    .conf_size = sizeof(struct gw_rate_limit_conf),
    .conf_parse = rate_limit_conf_parse,
    .conf_free = rate_limit_conf_free,
    .route_state_new = rl_route_state_new,
    .route_state_free = rl_route_state_free,
    .on_admit = rl_on_admit,
    .report = rl_report,
};
